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
