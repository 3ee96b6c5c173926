#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "upstream/client_identity.hh"

using namespace atlas::upstream;
using atlas::http::header_field;

namespace {

cidr_set trusted_set(std::initializer_list<const char *> items) {
    cidr_set s;
    std::string err;
    for (const char *i : items) REQUIRE(s.add(i, err));
    return s;
}

// Trusted: 10.0.0.0/8 and 2001:db8:ffff::/48 (the proxies). Everything else is a client.
const cidr_set &proxies() {
    static const cidr_set s = trusted_set({"10.0.0.0/8", "2001:db8:ffff::/48"});
    return s;
}

struct result {
    std::string client;
    bool trusted;
    uint32_t hops;
};

result walk(std::string_view peer, std::vector<header_field> headers,
            client_source source = client_source::x_forwarded_for, const cidr_set &t = proxies()) {
    client_identity id;
    REQUIRE(resolve_client(peer, headers, t, source, id));
    return {std::string(id.client_text()), id.peer_trusted, id.hops};
}

std::string xff(std::string_view peer, std::vector<std::string_view> values) {
    std::vector<header_field> h;
    for (auto v : values) h.push_back({"X-Forwarded-For", v});
    return walk(peer, h).client;
}

std::string fwd(std::string_view peer, std::vector<std::string_view> values) {
    std::vector<header_field> h;
    for (auto v : values) h.push_back({"Forwarded", v});
    return walk(peer, h, client_source::forwarded).client;
}

} // namespace

TEST_CASE("identity: an untrusted peer is the client, whatever it claims") {
    const result r = walk("198.51.100.7:40000", {{"X-Forwarded-For", "1.2.3.4"}});
    CHECK(r.client == "198.51.100.7");
    CHECK_FALSE(r.trusted);
    CHECK(r.hops == 0);
    CHECK(walk("[2001:db8::7]:443", {{"X-Forwarded-For", "1.2.3.4"}}).client == "2001:db8::7");
    // Nobody trusted at all.
    CHECK(walk("10.0.0.1:1", {{"X-Forwarded-For", "1.2.3.4"}}, client_source::x_forwarded_for, cidr_set{}).client ==
          "10.0.0.1");
}

TEST_CASE("identity: a trusted peer without forwarding headers is itself the client") {
    const result r = walk("10.0.0.1:5000", {{"Host", "x"}});
    CHECK(r.client == "10.0.0.1");
    CHECK(r.trusted);
    CHECK(r.hops == 0);
}

TEST_CASE("identity: source none ignores the headers but still reports trust") {
    const result r = walk("10.0.0.1:5000", {{"X-Forwarded-For", "1.2.3.4"}}, client_source::none);
    CHECK(r.client == "10.0.0.1");
    CHECK(r.trusted);
}

TEST_CASE("identity: trusted chain of 3 -> the first untrusted address from the right") {
    // client 203.0.113.9 -> 10.0.0.3 -> 10.0.0.2 -> peer 10.0.0.1; a spoofed entry on the left.
    const result r = walk("10.0.0.1:5000", {{"X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.0.0.3, 10.0.0.2"}});
    CHECK(r.client == "203.0.113.9");
    CHECK(r.trusted);
    CHECK(r.hops == 3);
    // The same chain over several field lines, in order.
    CHECK(xff("10.0.0.1:5000", {"6.6.6.6", "203.0.113.9, 10.0.0.3", "10.0.0.2"}) == "203.0.113.9");
}

TEST_CASE("identity: all trusted -> the leftmost") {
    CHECK(xff("10.0.0.1:5000", {"10.0.0.9, 10.0.0.3"}) == "10.0.0.9");
    CHECK(xff("10.0.0.1:5000", {"10.0.0.9", "10.0.0.8"}) == "10.0.0.9");
}

TEST_CASE("identity: an invalid element stops the walk at the last trusted hop") {
    // Right to left: 10.0.0.1 (peer, trusted), 10.0.0.2 (trusted), "garbage" -> stop at 10.0.0.2.
    CHECK(xff("10.0.0.1:5000", {"203.0.113.9, garbage, 10.0.0.2"}) == "10.0.0.2");
    CHECK(xff("10.0.0.1:5000", {"203.0.113.9, 10.0.0.2, garbage"}) == "10.0.0.1");
    CHECK(xff("10.0.0.1:5000", {"garbage, 10.0.0.5"}) == "10.0.0.5");
    CHECK(xff("10.0.0.1:5000", {"1.2.3.4 5.6.7.8"}) == "10.0.0.1");
    CHECK(xff("10.0.0.1:5000", {"unknown"}) == "10.0.0.1");
    CHECK(xff("10.0.0.1:5000", {"fe80::1%eth0"}) == "10.0.0.1");
    // An untrusted address right of the garbage wins, as the walk stops there first.
    CHECK(xff("10.0.0.1:5000", {"garbage, 203.0.113.9, 10.0.0.2"}) == "203.0.113.9");
}

TEST_CASE("identity: X-Forwarded-For element forms") {
    CHECK(xff("10.0.0.1:5000", {" 203.0.113.9 ,\t10.0.0.2 "}) == "203.0.113.9");
    CHECK(xff("10.0.0.1:5000", {"203.0.113.9:1234"}) == "203.0.113.9");
    CHECK(xff("10.0.0.1:5000", {"2001:db8::9"}) == "2001:db8::9");
    CHECK(xff("10.0.0.1:5000", {"[2001:db8::9]:1234"}) == "2001:db8::9");
    CHECK(xff("10.0.0.1:5000", {"::ffff:203.0.113.9"}) == "203.0.113.9");
    CHECK(xff("10.0.0.1:5000", {"2001:DB8::0009"}) == "2001:db8::9"); // canonical text
    // Empty list elements are not elements (RFC 9110 5.6.1).
    CHECK(xff("10.0.0.1:5000", {"203.0.113.9,, 10.0.0.2,"}) == "203.0.113.9");
    CHECK(xff("10.0.0.1:5000", {""}) == "10.0.0.1");
    // Header names match case-insensitively; other fields are ignored.
    CHECK(walk("10.0.0.1:5000", {{"x-forwarded-for", "203.0.113.9"}, {"X-Real-IP", "1.1.1.1"}}).client ==
          "203.0.113.9");
}

TEST_CASE("identity: Forwarded for= with quotes, ports, IPv6") {
    CHECK(fwd("10.0.0.1:5000", {"for=203.0.113.9"}) == "203.0.113.9");
    CHECK(fwd("10.0.0.1:5000", {"for=\"203.0.113.9:8080\""}) == "203.0.113.9");
    CHECK(fwd("10.0.0.1:5000", {"for=\"[2001:db8:cafe::17]\""}) == "2001:db8:cafe::17");
    CHECK(fwd("10.0.0.1:5000", {"for=\"[2001:db8:cafe::17]:4711\""}) == "2001:db8:cafe::17");
    CHECK(fwd("10.0.0.1:5000", {"For=203.0.113.9;proto=https;by=10.0.0.1"}) == "203.0.113.9");
    CHECK(fwd("10.0.0.1:5000", {"proto=https; for=203.0.113.9 ;host=\"a,b\""}) == "203.0.113.9");
    // Chains: elements in one line and over several lines.
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60;proto=http, for=10.0.0.7"}) == "192.0.2.60");
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60", "for=\"[2001:db8:ffff::1]\""}) == "192.0.2.60");
    // A comma inside a quoted string does not split elements.
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60;host=\"x,for=10.0.0.9\""}) == "192.0.2.60");
    // Unquoted IPv6 (non-conforming but common) is still read.
    CHECK(fwd("10.0.0.1:5000", {"for=[2001:db8::5]"}) == "2001:db8::5");
}

TEST_CASE("identity: Forwarded unknown, obfuscated and malformed elements stop the walk") {
    CHECK(fwd("10.0.0.1:5000", {"for=unknown"}) == "10.0.0.1");
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60, for=unknown, for=10.0.0.5"}) == "10.0.0.5");
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60, for=_hidden"}) == "10.0.0.1");
    CHECK(fwd("10.0.0.1:5000", {"for=\"_gazonk\""}) == "10.0.0.1");
    // An obfuscated port on a real address is fine.
    CHECK(fwd("10.0.0.1:5000", {"for=\"192.0.2.43:_port1\""}) == "192.0.2.43");
    // No for=, two for=, junk after a value, an unterminated quote, an escaped quote.
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60, proto=https"}) == "10.0.0.1");
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60;for=192.0.2.61"}) == "10.0.0.1");
    CHECK(fwd("10.0.0.1:5000", {"for=\"192.0.2.60\"x"}) == "10.0.0.1");
    CHECK(fwd("10.0.0.1:5000", {"for=192.0.2.60, for=\"10.0.0.5"}) == "10.0.0.1");
    CHECK(fwd("10.0.0.1:5000", {"for=\"192.0.2.\\60\""}) == "10.0.0.1");
    CHECK(fwd("10.0.0.1:5000", {"for=\"[192.0.2.60]\""}) == "10.0.0.1");
    // After a malformed element, parsing resumes at the next comma.
    CHECK(fwd("10.0.0.1:5000", {"=x, for=192.0.2.60"}) == "192.0.2.60");
    CHECK(fwd("10.0.0.1:5000", {"for=\"a,b\"junk, for=192.0.2.61"}) == "192.0.2.61");
    // Empty elements and empty pairs are skipped.
    CHECK(fwd("10.0.0.1:5000", {" , for=192.0.2.60;;proto=http ,"}) == "192.0.2.60");
}

TEST_CASE("identity: the chosen header only") {
    const std::vector<header_field> both = {{"X-Forwarded-For", "192.0.2.1"}, {"Forwarded", "for=192.0.2.2"}};
    CHECK(walk("10.0.0.1:5000", both, client_source::x_forwarded_for).client == "192.0.2.1");
    CHECK(walk("10.0.0.1:5000", both, client_source::forwarded).client == "192.0.2.2");
}

TEST_CASE("identity: IPv6 and mapped peers; a sockaddr peer") {
    CHECK(walk("[2001:db8:ffff::2]:443", {{"X-Forwarded-For", "192.0.2.1"}}).client == "192.0.2.1");
    CHECK(walk("[::ffff:10.0.0.1]:443", {{"X-Forwarded-For", "192.0.2.1"}}).client == "192.0.2.1");
    CHECK(walk("10.0.0.1", {{"X-Forwarded-For", "192.0.2.1"}}).client == "192.0.2.1"); // bare IP

    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &sa.sin6_addr);
    const std::vector<header_field> h = {{"X-Forwarded-For", "192.0.2.1"}};
    client_identity id;
    REQUIRE(resolve_client(reinterpret_cast<const sockaddr *>(&sa), h, proxies(), client_source::x_forwarded_for, id));
    CHECK(id.client_text() == "192.0.2.1");
    CHECK(id.peer_text() == "10.0.0.1");
    CHECK(id.peer.family == AF_INET);
    CHECK(id.peer_trusted);
}

TEST_CASE("identity: a peer that is not an address is refused") {
    client_identity id;
    for (const char *bad : {"", "unix", "host:80", "[10.0.0.1]:80", "[::1]x", "10.0.0.1:99999"}) {
        CAPTURE(bad);
        CHECK_FALSE(resolve_client(std::string_view(bad), {}, proxies(), client_source::x_forwarded_for, id));
    }
}

TEST_CASE("identity: parse_node forms") {
    ip_address ip;
    CHECK(parse_node("192.0.2.1", ip));
    CHECK(parse_node("192.0.2.1:80", ip));
    CHECK(parse_node("[::1]", ip));
    CHECK(parse_node("[::1]:80", ip));
    CHECK(parse_node("[::1]:_x", ip));
    CHECK(parse_node("::1", ip));
    CHECK_FALSE(parse_node("192.0.2.1:", ip));
    CHECK_FALSE(parse_node("192.0.2.1:_", ip));
    CHECK_FALSE(parse_node("192.0.2.1:65536", ip));
    CHECK_FALSE(parse_node("[::1", ip));
    CHECK_FALSE(parse_node("[::1]:", ip));
    CHECK_FALSE(parse_node("unknown", ip));
    CHECK_FALSE(parse_node("_secret", ip));
    CHECK_FALSE(parse_node("example.com", ip));
}
