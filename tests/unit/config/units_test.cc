// parse_duration / parse_size: the accepted spellings and what is refused.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/loader.hh"

using atlas::config::duration;
using atlas::config::parse_duration;
using atlas::config::parse_size;

TEST_CASE("durations: valid spellings") {
    struct row {
        const char *text;
        int64_t ms;
    };
    const std::vector<row> rows = {
        {"250ms", 250},        {"5s", 5000},           {"2m", 120000},        {"1h", 3600000},
        {"1m30s", 90000},      {"1.5s", 1500},         {"0.25s", 250},        {"1h30m", 5400000},
        {"1h2m3s4ms", 3723004}, {"0", 0},              {"0s", 0},             {"30", 30000},
        {"1.5m", 90000},       {"0.001s", 1},          {"1.500s", 1500},      {"0ms", 0},
        {"90s", 90000},        {"10000ms", 10000},     {"2.5h", 9000000},
    };
    for (const auto &r : rows) {
        const std::string text = r.text;
        CAPTURE(text);
        auto d = parse_duration(r.text);
        REQUIRE(d.has_value());
        CHECK(d->count() == r.ms);
    }
}

TEST_CASE("durations: refused") {
    const std::vector<const char *> bad = {
        "",          "5x",         "-5s",       "-1",       "s",         "ms",       "1.5",   // fraction needs a unit
        "5 s",       " 5s",        "5s ",       "5S",       "1d",        "1us",      "1.s",   ".5s",
        "1.5ms",     // finer than a millisecond
        "0.0001s",   "30s1m",      // units must go from large to small
        "1s1s",      "1m1m",       "1ms1s",     "+5s",      "5s5",       "1e3s",
        "99999999999999999999",      // overflows uint64
        "9223372036854775807",       // seconds overflow the millisecond count
        "2562047788016h",            // > int64 milliseconds
        "1.1234567890s",             // too many fraction digits
    };
    for (const std::string b : bad) {
        CAPTURE(b);
        CHECK_FALSE(parse_duration(b).has_value());
    }
}

TEST_CASE("durations: the largest representable values") {
    CHECK(parse_duration("9223372036854775ms").has_value());
    CHECK(parse_duration("9223372036854775").has_value());          // seconds, just fits
    CHECK_FALSE(parse_duration("9223372036854776").has_value());
    CHECK(parse_duration("2562047788015h").has_value());
}

TEST_CASE("sizes: valid spellings") {
    struct row {
        const char *text;
        uint64_t bytes;
    };
    const std::vector<row> rows = {
        {"512", 512},          {"0", 0},                 {"16k", 16384},       {"16K", 16384},
        {"16KiB", 16384},      {"16kib", 16384},         {"16kb", 16384},      {"16KB", 16384},
        {"1m", 1048576},       {"1MiB", 1048576},        {"1M", 1048576},      {"1g", 1073741824},
        {"1GiB", 1073741824},  {"2t", 2199023255552ull}, {"100b", 100},        {"100B", 100},
        {"18446744073709551615", 18446744073709551615ull},
        {"16777215t", 16777215ull << 40},
    };
    for (const auto &r : rows) {
        const std::string text = r.text;
        CAPTURE(text);
        auto n = parse_size(r.text);
        REQUIRE(n.has_value());
        CHECK(*n == r.bytes);
    }
}

TEST_CASE("sizes: refused") {
    const std::vector<const char *> bad = {
        "",     "k",     "16q",   "-1",    "1.5m",  "16 k",  " 16k",  "16k ",  "16kibb", "16ki",
        "16mk", "0x10",  "+16",   "1e3",   "18446744073709551616",  // overflows uint64
        "16777216t",                                                 // overflows after scaling
    };
    for (const std::string b : bad) {
        CAPTURE(b);
        CHECK_FALSE(parse_size(b).has_value());
    }
}
