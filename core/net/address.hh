// Socket addresses: parsing "ip:port" / "[ip6]:port" and formatting peers.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

namespace atlas::net {

struct address {
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family() const { return storage.ss_family; }
    const sockaddr *sa() const { return reinterpret_cast<const sockaddr *>(&storage); }
};

// Literal IPs only (names are resolved elsewhere). false with `err` set on failure.
bool parse_address(std::string_view text, address &out, std::string &err);

// "host:port" with a literal IP or a name, resolved now (getaddrinfo: blocking, for the
// main thread at config load). Every address of a name, in resolver order, duplicates
// dropped. false with `err` set when it does not resolve.
bool resolve_address(std::string_view text, std::vector<address> &out, std::string &err);

// "127.0.0.1:8080" or "[::1]:8080"; writes at most cap bytes, returns the length.
size_t format_address(const sockaddr *sa, char *out, size_t cap);
std::string to_string(const address &a);

// A listening socket with SO_REUSEPORT (one per worker; `reuse_port` false for a socket
// that must be the only one on its address), TCP_NODELAY inherited by accepted sockets.
// Returns the fd or -1 with `err` set.
int listen_socket(const address &a, int backlog, std::string &err, bool reuse_port = true);

}  // namespace atlas::net
