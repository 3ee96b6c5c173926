// Internal: syntax checks for addresses and names written in the config.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace atlas::config::detail {

struct host_port {
    std::string host;  // without brackets
    uint32_t port = 0;
    bool bracketed = false;  // written as "[v6]:port"
};

// Splits "host:port" / "[v6]:port" (port: 1-5 digits, <= 65535). No validation of host.
std::optional<host_port> split_host_port(std::string_view text);

// A listening address: literal IPv4 "a.b.c.d:port" or "[v6]:port", port 0-65535.
// Returns a canonical form (for duplicate detection) or nullopt.
std::optional<std::string> canonical_listen_address(std::string_view text);

// An upstream server: "hostname:port", "ipv4:port" or "[v6]:port", port 1-65535.
bool valid_server_address(std::string_view text);

// DNS-style name: dot-separated labels of [A-Za-z0-9_-], <= 253 chars.
bool valid_hostname(std::string_view name);

bool is_ipv4(std::string_view text);
bool is_ipv6(std::string_view text);

// "addr:port", bracketing an IPv6 literal that is not bracketed yet.
std::string join_host_port(std::string_view host, uint32_t port);

}  // namespace atlas::config::detail
