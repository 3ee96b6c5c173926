#include "upstream/cidr.hh"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace atlas::upstream {
namespace {

bool is_v4_mapped(const uint8_t *b) {
    static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(b, prefix, 12) == 0;
}

void set_v6(const uint8_t *b, ip_address &out) {
    out = ip_address{};
    if (is_v4_mapped(b)) {
        out.family = AF_INET;
        std::memcpy(out.bytes.data(), b + 12, 4);
    } else {
        out.family = AF_INET6;
        std::memcpy(out.bytes.data(), b, 16);
    }
}

// Leading `prefix` bits of a and b are equal.
bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix) {
    const unsigned whole = prefix / 8, rest = prefix % 8;
    if (std::memcmp(a, b, whole) != 0) return false;
    if (rest == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xFF00u >> rest);
    return ((a[whole] ^ b[whole]) & mask) == 0;
}

bool host_bits_clear(const ip_address &ip, unsigned prefix) {
    const unsigned total = ip.family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < total; ++i) {
        const unsigned bit = i * 8;
        uint8_t keep = 0xFF;
        if (bit >= prefix) keep = 0;
        else if (prefix - bit < 8) keep = static_cast<uint8_t>(0xFF00u >> (prefix - bit));
        if (ip.bytes[i] & ~keep) return false;
    }
    return true;
}

} // namespace

bool parse_ip(std::string_view text, ip_address &out) {
    // inet_pton wants a NUL-terminated string: copy to the stack (no heap, bounded length).
    char buf[ip_text_max];
    if (text.empty() || text.size() >= sizeof buf) return false;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    uint8_t b[16];
    if (inet_pton(AF_INET, buf, b) == 1) {
        out = ip_address{};
        out.family = AF_INET;
        std::memcpy(out.bytes.data(), b, 4);
        return true;
    }
    if (inet_pton(AF_INET6, buf, b) == 1) {
        set_v6(b, out);
        return true;
    }
    return false;
}

bool parse_ip(const sockaddr *sa, ip_address &out) {
    if (sa == nullptr) return false;
    if (sa->sa_family == AF_INET) {
        const auto *v4 = reinterpret_cast<const sockaddr_in *>(sa);
        out = ip_address{};
        out.family = AF_INET;
        std::memcpy(out.bytes.data(), &v4->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const auto *v6 = reinterpret_cast<const sockaddr_in6 *>(sa);
        set_v6(reinterpret_cast<const uint8_t *>(&v6->sin6_addr), out);
        return true;
    }
    return false;
}

size_t format_ip(const ip_address &ip, char *out) {
    if (!ip.valid() || inet_ntop(ip.family, ip.bytes.data(), out, ip_text_max) == nullptr) {
        out[0] = '\0';
        return 0;
    }
    return std::strlen(out);
}

bool cidr::contains(const ip_address &ip) const {
    return ip.family == base.family && prefix_equal(ip.bytes.data(), base.bytes.data(), prefix);
}

bool parse_cidr(std::string_view text, cidr &out, std::string &err) {
    const size_t slash = text.find('/');
    const std::string_view addr = text.substr(0, slash);
    ip_address ip;
    if (!parse_ip(addr, ip)) {
        err = "'" + std::string(addr) + "' is not an IP address";
        return false;
    }
    const bool mapped_text = ip.family == AF_INET && addr.find(':') != std::string_view::npos;
    unsigned max = ip.family == AF_INET ? 32 : 128;
    unsigned prefix = max;
    if (slash != std::string_view::npos) {
        const std::string_view p = text.substr(slash + 1);
        // Digits only, at most 3: "+8", " 8", "08x" and "/" alone are typos, not prefixes.
        if (p.empty() || p.size() > 3) {
            err = "bad prefix length '" + std::string(p) + "'";
            return false;
        }
        prefix = 0;
        for (char c : p) {
            if (c < '0' || c > '9') {
                err = "bad prefix length '" + std::string(p) + "'";
                return false;
            }
            prefix = prefix * 10 + unsigned(c - '0');
        }
        // "::ffff:10.0.0.0/104" is written in IPv6 terms; it became an IPv4 address above.
        if (mapped_text) {
            if (prefix < 96 || prefix > 128) {
                err = "prefix length of an IPv4-mapped address must be 96..128";
                return false;
            }
            prefix -= 96;
        }
        if (prefix > max) {
            err = "prefix length " + std::string(p) + " is over " + std::to_string(max);
            return false;
        }
    }
    if (!host_bits_clear(ip, prefix)) {
        err = "'" + std::string(text) + "' has host bits set below the prefix";
        return false;
    }
    out.base = ip;
    out.prefix = static_cast<uint8_t>(prefix);
    return true;
}

bool cidr_set::add(std::string_view text, std::string &err) {
    cidr c;
    if (!parse_cidr(text, c, err)) return false;
    items_.push_back(c);
    return true;
}

bool cidr_set::contains(const ip_address &ip) const {
    for (const cidr &c : items_)
        if (c.contains(ip)) return true;
    return false;
}

bool cidr_set::contains(const sockaddr *sa) const {
    ip_address ip;
    return parse_ip(sa, ip) && contains(ip);
}

bool cidr_set::contains(std::string_view ip_text) const {
    ip_address ip;
    return parse_ip(ip_text, ip) && contains(ip);
}

} // namespace atlas::upstream
