#include <doctest/doctest.h>

#include <string>

#include "net/address.hh"

using namespace atlas::net;

TEST_CASE("listen addresses parse and print back") {
    address a;
    std::string err;
    REQUIRE(parse_address("127.0.0.1:8080", a, err));
    CHECK(to_string(a) == "127.0.0.1:8080");
    REQUIRE(parse_address("[::1]:443", a, err));
    CHECK(to_string(a) == "[::1]:443");
    REQUIRE(parse_address("0.0.0.0:0", a, err));
    CHECK(to_string(a) == "0.0.0.0:0");
}

TEST_CASE("bad listen addresses are refused with a reason") {
    address a;
    std::string err;
    for (const char *bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "localhost:80",
                            "[::1:80", "[::1]80", "1.2.3:80", "127.0.0.1:80x"}) {
        CAPTURE(bad);
        err.clear();
        CHECK_FALSE(parse_address(bad, a, err));
        CHECK_FALSE(err.empty());
    }
}

TEST_CASE("upstream addresses: literals pass through, names resolve, failures say why") {
    std::vector<address> out;
    std::string err;
    REQUIRE(resolve_address("10.0.0.7:3001", out, err));
    REQUIRE(out.size() == 1);
    CHECK(to_string(out[0]) == "10.0.0.7:3001");
    REQUIRE(resolve_address("[::1]:3002", out, err));
    REQUIRE(out.size() == 2);  // appended
    CHECK(to_string(out[1]) == "[::1]:3002");

    out.clear();
    REQUIRE(resolve_address("localhost:8080", out, err));
    REQUIRE_FALSE(out.empty());
    for (const address &a : out) {
        std::string s = to_string(a);
        CAPTURE(s);
        CHECK((s == "127.0.0.1:8080" || s == "[::1]:8080"));
    }
    for (size_t i = 0; i < out.size(); ++i)
        for (size_t j = i + 1; j < out.size(); ++j) CHECK(to_string(out[i]) != to_string(out[j]));

    for (const char *bad : {"no-such-host.invalid:80", "localhost", "localhost:http", "[::1:80"}) {
        CAPTURE(bad);
        out.clear();
        err.clear();
        CHECK_FALSE(resolve_address(bad, out, err));
        CHECK(out.empty());
        CHECK_FALSE(err.empty());
    }
}
