#include <doctest/doctest.h>

#include <string>

#include "validators.hh"

using namespace atlas::static_files;

TEST_CASE("HTTP dates: the three RFC 9110 forms parse to the same instant") {
    time_t t = 0;
    REQUIRE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", t));
    CHECK(t == 784111777);
    REQUIRE(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", t));
    CHECK(t == 784111777);
    REQUIRE(parse_http_date("Sun Nov  6 08:49:37 1994", t));
    CHECK(t == 784111777);
    char out[30];
    format_http_date(784111777, out);
    CHECK(std::string(out) == "Sun, 06 Nov 1994 08:49:37 GMT");
    for (const char *bad : {"", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 GMT junk",
                            "Sun, 32 Nov 1994 08:49:37 GMT"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_http_date(bad, t));
    }
}

TEST_CASE("If-None-Match uses weak comparison over a list") {
    CHECK(none_match("\"a-1\"", "\"a-1\""));
    CHECK(none_match("W/\"a-1\"", "\"a-1\""));
    CHECK(none_match("\"x\", \"a-1\"", "\"a-1\""));
    CHECK(none_match("*", "\"a-1\""));
    CHECK_FALSE(none_match("\"a-2\"", "\"a-1\""));
    CHECK_FALSE(none_match("", "\"a-1\""));
}

TEST_CASE("If-Range needs a strong match") {
    CHECK(strong_match("\"a-1\"", "\"a-1\""));
    CHECK_FALSE(strong_match("W/\"a-1\"", "\"a-1\""));
    CHECK_FALSE(strong_match("\"a-2\"", "\"a-1\""));
}

TEST_CASE("byte ranges against a 1000-byte representation") {
    struct row {
        const char *header;
        range_result want;
        uint64_t first, last;
    };
    const row rows[] = {
        {"bytes=0-99", range_result::satisfiable, 0, 99},
        {"bytes=900-", range_result::satisfiable, 900, 999},
        {"bytes=-100", range_result::satisfiable, 900, 999},
        {"bytes=-5000", range_result::satisfiable, 0, 999},
        {"bytes=990-5000", range_result::satisfiable, 990, 999},
        {"bytes=999-999", range_result::satisfiable, 999, 999},
        {"bytes=1000-", range_result::unsatisfiable, 0, 0},
        {"bytes=-0", range_result::unsatisfiable, 0, 0},
        {"bytes=0-1,5-6", range_result::none, 0, 0},
        {"bytes=5-2", range_result::none, 0, 0},
        {"bytes=a-b", range_result::none, 0, 0},
        {"items=0-1", range_result::none, 0, 0},
        {"bytes=", range_result::none, 0, 0},
        {"bytes=-", range_result::none, 0, 0},
        {"bytes=99999999999999999999-", range_result::none, 0, 0},
    };
    for (const row &r : rows) {
        CAPTURE(r.header);
        uint64_t f = 0, l = 0;
        range_result got = parse_range(r.header, 1000, f, l);
        CHECK(int(got) == int(r.want));
        if (got == range_result::satisfiable) {
            CHECK(f == r.first);
            CHECK(l == r.last);
        }
    }
    uint64_t f, l;
    CHECK(int(parse_range("bytes=0-", 0, f, l)) == int(range_result::unsatisfiable));
}
