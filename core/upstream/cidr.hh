// IP addresses and CIDR sets for trusted_proxies (and anything else that matches client addresses).
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are normalised to IPv4 everywhere, both in addresses
// and in CIDRs, so "10.0.0.0/8" matches a peer that a dual-stack socket reports as ::ffff:10.1.2.3
// and the client identity has one spelling per host. Matching never allocates.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atlas::upstream {

// Longest text form of an address (INET6_ADDRSTRLEN incl. its NUL): a buffer this size always fits.
inline constexpr size_t ip_text_max = 46;

struct ip_address {
    uint8_t family = 0;                 // AF_INET or AF_INET6; 0 = none
    std::array<uint8_t, 16> bytes{};    // network order; IPv4 uses bytes[0..3], the rest stay 0
    bool valid() const { return family != 0; }
    friend bool operator==(const ip_address &, const ip_address &) = default;
};

// A literal IP without port or brackets ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" -> IPv4).
// Zone ids ("fe80::1%eth0") are refused: they mean nothing to another host. No allocation.
bool parse_ip(std::string_view text, ip_address &out);
// AF_INET / AF_INET6 sockaddr (port ignored); false for any other family.
bool parse_ip(const sockaddr *sa, ip_address &out);
// Canonical text (inet_ntop; IPv6 lowercase and compressed). `out` must hold ip_text_max bytes;
// returns the length (no NUL counted), 0 for an invalid address.
size_t format_ip(const ip_address &ip, char *out);

struct cidr {
    ip_address base;     // host bits cleared
    uint8_t prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6
    bool contains(const ip_address &ip) const;
};

// "10.0.0.0/8", "192.168.1.7" (= /32), "::1" (= /128), "fd00::/8". Host bits below the prefix are
// refused ("10.0.0.1/8"): a typo there usually means a wider or narrower trust than intended. On
// failure `err` gets a short message without the key (the config layer prefixes it).
bool parse_cidr(std::string_view text, cidr &out, std::string &err);

// A small list of CIDRs (trusted proxies: a handful), matched linearly with at most 16 byte
// compares each; cheaper than any tree at this size and allocation-free.
class cidr_set {
public:
    bool add(std::string_view text, std::string &err); // parse_cidr + push
    void add(const cidr &c) { items_.push_back(c); }
    bool contains(const ip_address &ip) const;
    bool contains(const sockaddr *sa) const;           // false for non-IP families
    bool contains(std::string_view ip_text) const;     // literal IP, no port; false when unparsable
    bool empty() const { return items_.empty(); }
    size_t size() const { return items_.size(); }
    const std::vector<cidr> &items() const { return items_; }

private:
    std::vector<cidr> items_;
};

} // namespace atlas::upstream
