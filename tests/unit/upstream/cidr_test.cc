#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "upstream/cidr.hh"

using namespace atlas::upstream;

namespace {

cidr_set set_of(std::initializer_list<const char *> items) {
    cidr_set s;
    std::string err;
    for (const char *i : items) REQUIRE_MESSAGE(s.add(i, err), i, ": ", err);
    return s;
}

std::string text_of(std::string_view ip_text) {
    ip_address ip;
    REQUIRE(parse_ip(ip_text, ip));
    char buf[ip_text_max];
    return std::string(buf, format_ip(ip, buf));
}

} // namespace

TEST_CASE("cidr: the accepted forms and their prefix lengths") {
    std::string err;
    cidr c;
    REQUIRE(parse_cidr("10.0.0.0/8", c, err));
    CHECK(c.base.family == AF_INET);
    CHECK(c.prefix == 8);
    REQUIRE(parse_cidr("192.168.1.7", c, err));
    CHECK(c.prefix == 32);
    REQUIRE(parse_cidr("::1", c, err));
    CHECK(c.base.family == AF_INET6);
    CHECK(c.prefix == 128);
    REQUIRE(parse_cidr("fd00::/8", c, err));
    CHECK(c.prefix == 8);
    REQUIRE(parse_cidr("0.0.0.0/0", c, err));
    CHECK(c.prefix == 0);
    REQUIRE(parse_cidr("::/0", c, err));
    CHECK(c.prefix == 0);
    // Written in IPv6 terms but IPv4-mapped: becomes the IPv4 CIDR.
    REQUIRE(parse_cidr("::ffff:10.0.0.0/104", c, err));
    CHECK(c.base.family == AF_INET);
    CHECK(c.prefix == 8);
}

TEST_CASE("cidr: bad input is refused with a message") {
    for (const char *bad : {"", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/8/8", "10.0.0/8", "10.0.0.0/-1",
                            "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/0008", "localhost", "10.0.0.1/8",
                            "fd00::1/8", "fe80::1%eth0", "[::1]", "10.0.0.0/8 ", " 10.0.0.0/8",
                            "::ffff:10.0.0.0/8", "1.2.3.4:80"}) {
        CAPTURE(bad);
        std::string err;
        cidr c;
        CHECK_FALSE(parse_cidr(bad, c, err));
        CHECK_FALSE(err.empty());
    }
    std::string err;
    cidr c;
    CHECK_FALSE(parse_cidr("10.0.0.1/8", c, err));
    CHECK(err.find("host bits") != std::string::npos);
    CHECK_FALSE(parse_cidr("nope/8", c, err));
    CHECK(err == "'nope' is not an IP address");
}

TEST_CASE("cidr: matching at and around the prefix boundary") {
    const cidr_set s = set_of({"10.0.0.0/8", "192.168.1.7", "172.16.0.0/12", "203.0.113.128/25"});
    CHECK(s.contains(std::string_view("10.0.0.0")));
    CHECK(s.contains(std::string_view("10.255.255.255")));
    CHECK_FALSE(s.contains(std::string_view("11.0.0.0")));
    CHECK_FALSE(s.contains(std::string_view("9.255.255.255")));
    CHECK(s.contains(std::string_view("192.168.1.7")));
    CHECK_FALSE(s.contains(std::string_view("192.168.1.8")));
    CHECK(s.contains(std::string_view("172.31.255.255")));
    CHECK_FALSE(s.contains(std::string_view("172.32.0.0")));
    CHECK(s.contains(std::string_view("203.0.113.128")));
    CHECK_FALSE(s.contains(std::string_view("203.0.113.127")));
    CHECK_FALSE(s.contains(std::string_view("::1")));
    CHECK_FALSE(s.contains(std::string_view("not an ip")));
    CHECK_FALSE(s.contains(std::string_view("10.0.0.1:80"))); // text form is a bare IP
}

TEST_CASE("cidr: IPv6 matching") {
    const cidr_set s = set_of({"::1", "fd00::/8", "2001:db8:1::/48"});
    CHECK(s.contains(std::string_view("::1")));
    CHECK_FALSE(s.contains(std::string_view("::2")));
    CHECK(s.contains(std::string_view("fd12:3456::1")));
    CHECK_FALSE(s.contains(std::string_view("fe00::1")));
    CHECK(s.contains(std::string_view("2001:DB8:1:ffff::1"))); // case-insensitive hex
    CHECK_FALSE(s.contains(std::string_view("2001:db8:2::1")));
    CHECK_FALSE(s.contains(std::string_view("127.0.0.1")));
}

TEST_CASE("cidr: IPv4-mapped IPv6 addresses match IPv4 CIDRs, not IPv6 ones") {
    const cidr_set v4 = set_of({"10.0.0.0/8"});
    CHECK(v4.contains(std::string_view("::ffff:10.1.2.3")));
    CHECK(v4.contains(std::string_view("::FFFF:a01:203"))); // same address, hex spelling
    CHECK_FALSE(v4.contains(std::string_view("::ffff:11.1.2.3")));
    CHECK_FALSE(v4.contains(std::string_view("::10.1.2.3"))); // IPv4-compatible is not mapped
    const cidr_set v6 = set_of({"::/0"});
    CHECK_FALSE(v6.contains(std::string_view("::ffff:10.1.2.3")));
    CHECK(v6.contains(std::string_view("2001:db8::1")));
    const cidr_set mapped_cidr = set_of({"::ffff:192.0.2.0/120"});
    CHECK(mapped_cidr.contains(std::string_view("192.0.2.77")));
    CHECK_FALSE(mapped_cidr.contains(std::string_view("192.0.3.77")));
}

TEST_CASE("cidr: sockaddr matching, v4, v6 and mapped") {
    const cidr_set s = set_of({"10.0.0.0/8", "2001:db8::/32"});
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_port = htons(5000);
    inet_pton(AF_INET, "10.9.8.7", &v4.sin_addr);
    CHECK(s.contains(reinterpret_cast<const sockaddr *>(&v4)));
    inet_pton(AF_INET, "192.0.2.1", &v4.sin_addr);
    CHECK_FALSE(s.contains(reinterpret_cast<const sockaddr *>(&v4)));

    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::5", &v6.sin6_addr);
    CHECK(s.contains(reinterpret_cast<const sockaddr *>(&v6)));
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &v6.sin6_addr);
    CHECK(s.contains(reinterpret_cast<const sockaddr *>(&v6)));
    inet_pton(AF_INET6, "2001:db9::5", &v6.sin6_addr);
    CHECK_FALSE(s.contains(reinterpret_cast<const sockaddr *>(&v6)));

    sockaddr un{};
    un.sa_family = AF_UNIX;
    CHECK_FALSE(s.contains(&un));
    CHECK_FALSE(s.contains(static_cast<const sockaddr *>(nullptr)));
}

TEST_CASE("cidr: an empty set trusts nobody; /0 trusts every address of its family") {
    cidr_set none;
    CHECK(none.empty());
    CHECK_FALSE(none.contains(std::string_view("127.0.0.1")));
    const cidr_set all4 = set_of({"0.0.0.0/0"});
    CHECK(all4.contains(std::string_view("255.255.255.255")));
    CHECK_FALSE(all4.contains(std::string_view("::1")));
}

TEST_CASE("ip text is canonical; mapped addresses print as IPv4") {
    CHECK(text_of("2001:DB8:0:0::0001") == "2001:db8::1");
    CHECK(text_of("::ffff:192.0.2.1") == "192.0.2.1");
    CHECK(text_of("192.0.2.1") == "192.0.2.1");
    ip_address ip;
    CHECK_FALSE(parse_ip("", ip));
    CHECK_FALSE(parse_ip("1.2.3.4 ", ip));
    CHECK_FALSE(parse_ip("01234567890123456789012345678901234567890123456789", ip));
}
