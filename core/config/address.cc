// Internal: address and host-name syntax (literal parsing only, no resolution).
#include "config/address.hh"

#include <arpa/inet.h>

#include <cstring>

namespace atlas::config::detail {

namespace {

bool parse_in(int family, std::string_view text, void *out) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    return inet_pton(family, buf, out) == 1;
}

}  // namespace

bool is_ipv4(std::string_view text) {
    in_addr a;
    return parse_in(AF_INET, text, &a);
}

bool is_ipv6(std::string_view text) {
    in6_addr a;
    return parse_in(AF_INET6, text, &a);
}

std::optional<host_port> split_host_port(std::string_view text) {
    host_port hp;
    std::string_view port;
    if (text.starts_with('[')) {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        hp.host = std::string(text.substr(1, close - 1));
        hp.bracketed = true;
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        hp.host = std::string(text.substr(0, colon));
        if (hp.host.find(':') != std::string::npos) return std::nullopt;  // bare IPv6
        port = text.substr(colon + 1);
    }
    if (hp.host.empty() || port.empty() || port.size() > 5) return std::nullopt;
    for (char c : port) {
        if (c < '0' || c > '9') return std::nullopt;
        hp.port = hp.port * 10 + static_cast<uint32_t>(c - '0');
    }
    if (hp.port > 65535) return std::nullopt;
    return hp;
}

std::optional<std::string> canonical_listen_address(std::string_view text) {
    auto hp = split_host_port(text);
    if (!hp) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    if (hp->bracketed) {
        in6_addr a;
        if (!parse_in(AF_INET6, hp->host, &a) || !inet_ntop(AF_INET6, &a, buf, sizeof buf))
            return std::nullopt;
        return "[" + std::string(buf) + "]:" + std::to_string(hp->port);
    }
    in_addr a;
    if (!parse_in(AF_INET, hp->host, &a) || !inet_ntop(AF_INET, &a, buf, sizeof buf))
        return std::nullopt;
    return std::string(buf) + ":" + std::to_string(hp->port);
}

bool valid_server_address(std::string_view text) {
    auto hp = split_host_port(text);
    if (!hp || hp->port == 0) return false;
    return hp->bracketed ? is_ipv6(hp->host) : valid_hostname(hp->host);
}

bool valid_hostname(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    std::size_t label = 0;
    for (char c : name) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63) return false;
    }
    return label != 0;
}

std::string join_host_port(std::string_view host, uint32_t port) {
    bool v6 = host.find(':') != std::string_view::npos && !host.starts_with('[');
    std::string out = v6 ? "[" + std::string(host) + "]" : std::string(host);
    return out + ":" + std::to_string(port);
}

}  // namespace atlas::config::detail
