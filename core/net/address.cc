#include "net/address.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace atlas::net {

bool parse_address(std::string_view text, address &out, std::string &err) {
    std::string host;
    std::string_view port_text;
    if (!text.empty() && text[0] == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            err = "expected [ipv6]:port";
            return false;
        }
        host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            err = "expected ip:port";
            return false;
        }
        host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535 || port_text.empty()) {
        err = "bad port '" + std::string(port_text) + "'";
        return false;
    }
    out = address{};
    auto *v4 = reinterpret_cast<sockaddr_in *>(&out.storage);
    auto *v6 = reinterpret_cast<sockaddr_in6 *>(&out.storage);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(uint16_t(port));
        out.length = sizeof(sockaddr_in);
        return true;
    }
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(uint16_t(port));
        out.length = sizeof(sockaddr_in6);
        return true;
    }
    err = "'" + host + "' is not an IP address";
    return false;
}

bool resolve_address(std::string_view text, std::vector<address> &out, std::string &err) {
    address literal;
    std::string literal_err;
    if (parse_address(text, literal, literal_err)) {
        out.push_back(literal);
        return true;
    }
    bool bracketed = !text.empty() && text[0] == '[';
    size_t colon = text.rfind(':');
    if (bracketed || colon == std::string_view::npos) {
        err = literal_err;
        return false;
    }
    std::string host(text.substr(0, colon));
    std::string port(text.substr(colon + 1));
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo *res = nullptr;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
        err = "cannot resolve '" + host + "': " + gai_strerror(rc);
        return false;
    }
    size_t before = out.size();
    for (addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(sockaddr_storage))
            continue;
        address a;
        std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
        a.length = socklen_t(ai->ai_addrlen);
        bool dup = false;
        for (size_t i = before; i < out.size() && !dup; ++i)
            dup = out[i].length == a.length && std::memcmp(&out[i].storage, &a.storage, a.length) == 0;
        if (!dup) out.push_back(a);
    }
    freeaddrinfo(res);
    if (out.size() == before) {
        err = "'" + host + "' has no IPv4 or IPv6 address";
        return false;
    }
    return true;
}

size_t format_address(const sockaddr *sa, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int n = 0;
    if (sa->sa_family == AF_INET) {
        auto *v4 = reinterpret_cast<const sockaddr_in *>(sa);
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
        n = std::snprintf(out, cap, "%s:%u", ip, unsigned(ntohs(v4->sin_port)));
    } else if (sa->sa_family == AF_INET6) {
        auto *v6 = reinterpret_cast<const sockaddr_in6 *>(sa);
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
        n = std::snprintf(out, cap, "[%s]:%u", ip, unsigned(ntohs(v6->sin6_port)));
    } else {
        n = std::snprintf(out, cap, "unknown");
    }
    if (n < 0) return 0;
    return size_t(n) < cap ? size_t(n) : cap - 1;
}

std::string to_string(const address &a) {
    char b[80];
    size_t n = format_address(a.sa(), b, sizeof b);
    return std::string(b, n);
}

int listen_socket(const address &a, int backlog, std::string &err, bool reuse_port) {
    int fd = socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    // Accepted sockets inherit TCP_NODELAY on Linux: no setsockopt per connection.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (a.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, a.sa(), a.length) != 0) {
        err = "cannot bind " + to_string(a) + ": " + std::strerror(errno);
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) != 0) {
        err = "cannot listen on " + to_string(a) + ": " + std::strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

}  // namespace atlas::net
