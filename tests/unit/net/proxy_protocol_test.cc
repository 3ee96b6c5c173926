#include "net/proxy_protocol.hh"

#include <doctest/doctest.h>

#include <cstring>
#include <iterator>
#include <memory>
#include <string>

using namespace atlas::net;
namespace pp = atlas::net::proxy_protocol;

namespace {

address addr(const char *text) {
    address a;
    std::string err;
    REQUIRE(parse_address(text, a, err));
    return a;
}

pp::result parse(const std::string &s, pp::header &h) { return pp::parse(s.data(), s.size(), h); }

std::string error_of(const std::string &s) {
    pp::header h;
    pp::result r = parse(s, h);
    CHECK(r.st == pp::status::invalid);
    return r.err;
}

// Every proper prefix of `s` asks for more; the whole of it parses, using `header_len`.
void check_incremental(const std::string &s, size_t header_len) {
    pp::header h;
    for (size_t n = 0; n < header_len; ++n) {
        CAPTURE(n);
        CHECK(pp::parse(s.data(), n, h).st == pp::status::need_more);
    }
    pp::result r = parse(s, h);
    CHECK(r.st == pp::status::done);
    CHECK(r.used == header_len);
}

}  // namespace

TEST_CASE("PROXY v1: TCP4 and TCP6 lines, byte-exact both ways") {
    std::string v4 = pp::build_v1(addr("192.0.2.1:56324"), addr("198.51.100.2:443"));
    CHECK(v4 == "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    std::string v6 = pp::build_v1(addr("[2001:db8::1]:1000"), addr("[2001:db8::2]:80"));
    CHECK(v6 == "PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n");
    CHECK(pp::build_v1(addr("192.0.2.1:1"), addr("[::1]:2")) == "PROXY UNKNOWN\r\n");

    pp::header h;
    pp::result r = parse(v4 + "GET / HTTP/1.1\r\n", h);
    REQUIRE(r.st == pp::status::done);
    CHECK(r.used == v4.size());  // the request after it is not taken
    CHECK(h.version == 1);
    CHECK_FALSE(h.local);
    CHECK(to_string(h.source) == "192.0.2.1:56324");
    CHECK(to_string(h.destination) == "198.51.100.2:443");
    r = parse(v6, h);
    REQUIRE(r.st == pp::status::done);
    CHECK(to_string(h.source) == "[2001:db8::1]:1000");
    CHECK(to_string(h.destination) == "[2001:db8::2]:80");
    check_incremental(v4 + "x", v4.size());
    check_incremental(v6, v6.size());
}

TEST_CASE("PROXY v1: UNKNOWN is local, whatever follows it on the line") {
    pp::header h;
    for (std::string line : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
        pp::result r = parse(line, h);
        REQUIRE(r.st == pp::status::done);
        CHECK(r.used == line.size());
        CHECK(h.local);
    }
}

TEST_CASE("PROXY v1: malformed lines are refused with the reason") {
    CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n") == "PROXY v1 line does not end in CRLF");
    CHECK(error_of("PROXY " + std::string(120, 'A')) == "PROXY v1 line longer than 107 bytes");
    CHECK(error_of("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n") ==
          "PROXY v1 protocol 'UDP4' is not TCP4, TCP6 or UNKNOWN");
    CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n") == "PROXY v1 line has 5 fields, not 6");
    CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n") == "PROXY v1 line has more than 6 fields");
    CHECK(error_of("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n") == "PROXY v1 line has more than 6 fields");
    CHECK(error_of("PROXY TCP4 ::1 5.6.7.8 1 2\r\n") == "PROXY v1 source address is not TCP4");
    CHECK(error_of("PROXY TCP6 ::1 5.6.7.8 1 2\r\n") == "PROXY v1 destination address is not TCP6");
    CHECK(error_of("PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n") == "PROXY v1 source address is not TCP4");
    for (const char *port : {"65536", "080", "-1", "+1", "1a", "123456"}) {
        CAPTURE(port);
        CHECK(error_of(std::string("PROXY TCP4 1.2.3.4 5.6.7.8 ") + port + " 2\r\n") ==
              "PROXY v1 port is not a number from 0 to 65535");
    }
    CHECK(error_of(std::string("PROXY TCP4 1.2.3.4\0x 5.6.7.8 1 2\r\n", 34)) == "PROXY v1 source address is not TCP4");
}

TEST_CASE("PROXY v2: INET and INET6 headers, byte-exact both ways, TLVs skipped") {
    std::string v4 = pp::build_v2(addr("192.0.2.1:56324"), addr("198.51.100.2:443"));
    const unsigned char want[] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
                                  0x21, 0x11, 0x00, 0x0c, 192,  0,    2,    1,    198,  51,   100,  2,
                                  0xdc, 0x04, 0x01, 0xbb};
    CHECK(v4 == std::string(reinterpret_cast<const char *>(want), sizeof want));
    pp::header h;
    pp::result r = parse(v4 + "payload", h);
    REQUIRE(r.st == pp::status::done);
    CHECK(r.used == 28);
    CHECK(h.version == 2);
    CHECK_FALSE(h.local);
    CHECK(to_string(h.source) == "192.0.2.1:56324");
    CHECK(to_string(h.destination) == "198.51.100.2:443");
    check_incremental(v4, v4.size());

    std::string v6 = pp::build_v2(addr("[2001:db8::1]:1000"), addr("[2001:db8::2]:80"));
    CHECK(v6.size() == 16 + 36);
    r = parse(v6, h);
    REQUIRE(r.st == pp::status::done);
    CHECK(to_string(h.source) == "[2001:db8::1]:1000");
    CHECK(to_string(h.destination) == "[2001:db8::2]:80");

    // A TLV (type 0x04 NOOP, 3 bytes) after the addresses: counted in the length, skipped.
    std::string tlv = v4;
    tlv[15] = 0x0c + 6;
    tlv += std::string("\x04\x00\x03xyz", 6);
    r = parse(tlv + "after", h);
    REQUIRE(r.st == pp::status::done);
    CHECK(r.used == 34);
    CHECK(to_string(h.source) == "192.0.2.1:56324");
    check_incremental(tlv, 34);
}

TEST_CASE("PROXY v2: LOCAL and families we do not carry are local; bad headers are refused") {
    std::string local = pp::build_v2(addr("192.0.2.1:1"), addr("[::1]:2"));
    CHECK(local.size() == 16);
    CHECK(local[12] == '\x20');
    pp::header h;
    pp::result r = parse(local, h);
    REQUIRE(r.st == pp::status::done);
    CHECK(h.local);

    std::string unix_family = pp::build_v2(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
    unix_family[13] = '\x31';  // AF_UNIX, STREAM: 216 bytes of paths
    unix_family[14] = '\x00';
    unix_family[15] = '\xd8';
    unix_family.resize(16 + 216, '\0');
    r = parse(unix_family, h);
    REQUIRE(r.st == pp::status::done);
    CHECK(h.local);

    std::string bad = pp::build_v2(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
    std::string v = bad;
    v[12] = '\x11';
    CHECK(error_of(v) == "PROXY v2 header has version 1");
    v = bad;
    v[12] = '\x22';
    CHECK(error_of(v) == "PROXY v2 header has command 2 (LOCAL or PROXY)");
    v = bad;
    v[15] = '\x04';
    CHECK(error_of(v) == "PROXY v2 INET addresses need 12 bytes, the header has 4");
    v = bad;
    v[14] = '\x10';  // 4096 + 16 bytes
    CHECK(error_of(v) == "PROXY v2 header longer than 4096 bytes");
    v = bad;
    v[13] = '\x51';
    CHECK(error_of(v) == "PROXY v2 header has an unknown address family or transport");
}

TEST_CASE("a connection without a PROXY header is refused at its first byte that cannot be one") {
    CHECK(error_of("GET / HTTP/1.1\r\n") == "the connection does not start with a PROXY protocol header");
    CHECK(error_of("PROXX") == "the connection does not start with a PROXY protocol header");
    CHECK(error_of(std::string("\r\n\r\n\0\r\nQUIX", 12)) == "the connection does not start with a PROXY protocol header");
    pp::header h;
    CHECK(parse("PRO", h).st == pp::status::need_more);
    CHECK(parse(std::string("\r\n\r\n\0", 5), h).st == pp::status::need_more);
}

TEST_CASE("mutated and truncated headers never read past the input and keep the contract") {
    // A fixed-seed walk over byte flips, truncations and length-field changes of valid v1
    // and v2 headers (the ASan build checks every read). Whatever the verdict, `done` uses
    // no more than was given and at most max_header; `invalid` gives a reason.
    const std::string seeds[] = {
        pp::build_v1(addr("192.0.2.1:5000"), addr("198.51.100.2:80")),
        pp::build_v1(addr("[2001:db8::1]:5000"), addr("[2001:db8::2]:443")),
        pp::build_v2(addr("192.0.2.1:5000"), addr("198.51.100.2:80")) + std::string("\x04\x00\x02hi", 5),
        pp::build_v2(addr("[2001:db8::1]:5000"), addr("[2001:db8::2]:443")),
        std::string("PROXY UNKNOWN\r\n"),
    };
    uint32_t x = 2463534242u;  // xorshift32: the same walk every run
    auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return x;
    };
    size_t verdicts[3] = {0, 0, 0};
    for (int i = 0; i < 20000; ++i) {
        std::string s = seeds[next() % std::size(seeds)] + std::string(next() % 8, 'x');
        for (uint32_t k = next() % 4; k > 0; --k) s[next() % s.size()] = char(next());
        if (s.size() > 16 && next() % 4 == 0) {  // v2's length field, anything
            s[14] = char(next());
            s[15] = char(next());
        }
        size_t len = next() % 3 == 0 ? next() % (s.size() + 1) : s.size();
        // A copy of exactly `len` bytes, so that a read past it is one past the allocation.
        std::unique_ptr<char[]> buf(new char[len ? len : 1]);
        std::memcpy(buf.get(), s.data(), len);
        pp::header h;
        pp::result r = pp::parse(buf.get(), len, h);
        ++verdicts[int(r.st)];
        if (r.st == pp::status::done) {
            CHECK(r.used <= len);
            CHECK(r.used <= pp::max_header);
            CHECK((h.version == 1 || h.version == 2));
        } else if (r.st == pp::status::invalid) {
            CHECK(!r.err.empty());
        } else {
            CHECK(len < pp::max_header);
        }
    }
    // The walk reaches all three verdicts.
    CHECK(verdicts[0] > 0);
    CHECK(verdicts[1] > 0);
    CHECK(verdicts[2] > 0);
}
