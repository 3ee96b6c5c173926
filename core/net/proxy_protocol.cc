#include "net/proxy_protocol.hh"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <string_view>

namespace atlas::net::proxy_protocol {

namespace {

constexpr char v1_prefix[] = "PROXY ";
constexpr unsigned char v2_signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
constexpr size_t v2_fixed = 16;  // signature, version/command, family/transport, length

result invalid(std::string why) { return {status::invalid, 0, std::move(why)}; }

// `data` could still become `prefix` (every byte so far matches it).
bool could_be(const char *data, size_t len, const void *prefix, size_t prefix_len) {
    return std::memcmp(data, prefix, len < prefix_len ? len : prefix_len) == 0;
}

address from_v4(const unsigned char *ip, const unsigned char *port) {
    address a;
    auto *v4 = reinterpret_cast<sockaddr_in *>(&a.storage);
    v4->sin_family = AF_INET;
    std::memcpy(&v4->sin_addr, ip, 4);
    std::memcpy(&v4->sin_port, port, 2);  // both in network order already
    a.length = sizeof(sockaddr_in);
    return a;
}

address from_v6(const unsigned char *ip, const unsigned char *port) {
    address a;
    auto *v6 = reinterpret_cast<sockaddr_in6 *>(&a.storage);
    v6->sin6_family = AF_INET6;
    std::memcpy(&v6->sin6_addr, ip, 16);
    std::memcpy(&v6->sin6_port, port, 2);
    a.length = sizeof(sockaddr_in6);
    return a;
}

// One field of a v1 line: an IP of `family` or a port, strictly as the spec writes them.
bool v1_ip(std::string_view text, int family, address &out) {
    if (text.empty() || text.size() > 45 || std::memchr(text.data(), '\0', text.size())) return false;
    char buf[46];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    out = address{};
    if (family == AF_INET) {
        auto *v4 = reinterpret_cast<sockaddr_in *>(&out.storage);
        if (inet_pton(AF_INET, buf, &v4->sin_addr) != 1) return false;
        v4->sin_family = AF_INET;
        out.length = sizeof(sockaddr_in);
    } else {
        auto *v6 = reinterpret_cast<sockaddr_in6 *>(&out.storage);
        if (inet_pton(AF_INET6, buf, &v6->sin6_addr) != 1) return false;
        v6->sin6_family = AF_INET6;
        out.length = sizeof(sockaddr_in6);
    }
    return true;
}

bool v1_port(std::string_view text, address &a) {
    // Decimal, no sign, no leading zero (except "0" itself), at most 65535.
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
    unsigned port = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc() || p != text.data() + text.size() || port > 65535) return false;
    uint16_t n = htons(uint16_t(port));
    if (a.family() == AF_INET) reinterpret_cast<sockaddr_in *>(&a.storage)->sin_port = n;
    else reinterpret_cast<sockaddr_in6 *>(&a.storage)->sin6_port = n;
    return true;
}

result parse_v1(const char *data, size_t len, header &out) {
    const char *end = static_cast<const char *>(std::memchr(data, '\n', len < max_v1 ? len : max_v1));
    if (!end) {
        if (len >= max_v1) return invalid("PROXY v1 line longer than 107 bytes");
        return {status::need_more, 0, {}};
    }
    if (end == data || end[-1] != '\r') return invalid("PROXY v1 line does not end in CRLF");
    std::string_view line(data + 6, size_t(end - 1 - (data + 6)));  // after "PROXY ", before CRLF
    size_t used = size_t(end - data) + 1;
    out = header{};
    out.version = 1;
    if (line == "UNKNOWN" || line.substr(0, 8) == "UNKNOWN ") {
        out.local = true;  // the rest of the line says nothing we may use
        return {status::done, used, {}};
    }
    std::string_view field[5];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= line.size(); ++i) {
        if (i < line.size() && line[i] != ' ') continue;
        if (n == 5) return invalid("PROXY v1 line has more than 6 fields");
        field[n++] = line.substr(start, i - start);
        start = i + 1;
    }
    if (n != 5) return invalid("PROXY v1 line has " + std::to_string(n + 1) + " fields, not 6");
    int family;
    if (field[0] == "TCP4") family = AF_INET;
    else if (field[0] == "TCP6") family = AF_INET6;
    else return invalid("PROXY v1 protocol '" + std::string(field[0]) + "' is not TCP4, TCP6 or UNKNOWN");
    if (!v1_ip(field[1], family, out.source)) return invalid("PROXY v1 source address is not " + std::string(field[0]));
    if (!v1_ip(field[2], family, out.destination))
        return invalid("PROXY v1 destination address is not " + std::string(field[0]));
    if (!v1_port(field[3], out.source) || !v1_port(field[4], out.destination))
        return invalid("PROXY v1 port is not a number from 0 to 65535");
    return {status::done, used, {}};
}

result parse_v2(const unsigned char *data, size_t len, header &out) {
    if (len < v2_fixed) return {status::need_more, 0, {}};
    unsigned version = data[12] >> 4, command = data[12] & 0x0f;
    if (version != 2) return invalid("PROXY v2 header has version " + std::to_string(version));
    if (command > 1) return invalid("PROXY v2 header has command " + std::to_string(command) + " (LOCAL or PROXY)");
    size_t body = size_t(data[14]) << 8 | data[15];
    if (v2_fixed + body > max_header) return invalid("PROXY v2 header longer than 4096 bytes");
    if (len < v2_fixed + body) return {status::need_more, 0, {}};
    out = header{};
    out.version = 2;
    result done{status::done, v2_fixed + body, {}};
    unsigned family = data[13] >> 4, transport = data[13] & 0x0f;
    if (command == 0) {  // LOCAL: health checks of the balancer itself; addresses ignored
        out.local = true;
        return done;
    }
    const unsigned char *a = data + v2_fixed;
    // TCP over IPv4 or IPv6 is what a connection here carries; other families and
    // transports (UNIX sockets, UDP, unspecified) are accepted and treated as LOCAL.
    if (transport == 1 && family == 1) {
        if (body < 12) return invalid("PROXY v2 INET addresses need 12 bytes, the header has " + std::to_string(body));
        out.source = from_v4(a, a + 8);
        out.destination = from_v4(a + 4, a + 10);
    } else if (transport == 1 && family == 2) {
        if (body < 36) return invalid("PROXY v2 INET6 addresses need 36 bytes, the header has " + std::to_string(body));
        out.source = from_v6(a, a + 32);
        out.destination = from_v6(a + 16, a + 34);
    } else if (family > 3 || transport > 2) {
        return invalid("PROXY v2 header has an unknown address family or transport");
    } else {
        out.local = true;
    }
    return done;  // TLVs after the addresses are skipped
}

bool is_ip(const address &a) { return a.family() == AF_INET || a.family() == AF_INET6; }

}  // namespace

result parse(const char *data, size_t len, header &out) {
    if (len == 0) return {status::need_more, 0, {}};
    if (could_be(data, len, v1_prefix, 6)) return len < 6 ? result{status::need_more, 0, {}} : parse_v1(data, len, out);
    if (could_be(data, len, v2_signature, sizeof v2_signature)) {
        if (len < sizeof v2_signature) return {status::need_more, 0, {}};
        return parse_v2(reinterpret_cast<const unsigned char *>(data), len, out);
    }
    return invalid("the connection does not start with a PROXY protocol header");
}

namespace {

// The raw IP (4 or 16 bytes) and port (network order) of an IPv4 or IPv6 address.
struct raw_ip {
    const void *ip;
    size_t ip_len;
    const void *port;
};

raw_ip raw(const address &a) {
    if (a.family() == AF_INET) {
        auto *v4 = reinterpret_cast<const sockaddr_in *>(&a.storage);
        return {&v4->sin_addr, 4, &v4->sin_port};
    }
    auto *v6 = reinterpret_cast<const sockaddr_in6 *>(&a.storage);
    return {&v6->sin6_addr, 16, &v6->sin6_port};
}

uint16_t port_of(const raw_ip &r) {
    uint16_t n;
    std::memcpy(&n, r.port, 2);
    return ntohs(n);
}

}  // namespace

std::string build_v1(const address &source, const address &destination) {
    if (!is_ip(source) || source.family() != destination.family()) return "PROXY UNKNOWN\r\n";
    raw_ip s = raw(source), d = raw(destination);
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    inet_ntop(source.family(), s.ip, src, sizeof src);
    inet_ntop(source.family(), d.ip, dst, sizeof dst);
    return std::string("PROXY ") + (source.family() == AF_INET ? "TCP4 " : "TCP6 ") + src + " " + dst + " " +
           std::to_string(port_of(s)) + " " + std::to_string(port_of(d)) + "\r\n";
}

std::string build_v2(const address &source, const address &destination) {
    std::string h(reinterpret_cast<const char *>(v2_signature), sizeof v2_signature);
    if (!is_ip(source) || source.family() != destination.family()) {
        h.append("\x20\x00\x00\x00", 4);  // version 2 LOCAL, UNSPEC, no addresses
        return h;
    }
    raw_ip s = raw(source), d = raw(destination);
    size_t body = 2 * s.ip_len + 4;  // 12 (INET) or 36 (INET6)
    h += '\x21';                     // version 2, PROXY
    h += source.family() == AF_INET ? '\x11' : '\x21';  // INET or INET6, STREAM
    h += char(body >> 8);
    h += char(body & 0xff);
    auto put = [&h](const void *p, size_t n) { h.append(static_cast<const char *>(p), n); };
    put(s.ip, s.ip_len), put(d.ip, d.ip_len), put(s.port, 2), put(d.port, 2);
    return h;
}

}  // namespace atlas::net::proxy_protocol
