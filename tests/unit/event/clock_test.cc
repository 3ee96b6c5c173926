#include <doctest/doctest.h>

#include <string>

#include "event/clock.hh"

TEST_CASE("HTTP dates are IMF-fixdate") {
    char out[30];
    atlas::event::format_http_date(784111777, out);  // RFC 9110's example instant
    CHECK(std::string(out) == "Sun, 06 Nov 1994 08:49:37 GMT");
    atlas::event::format_http_date(0, out);
    CHECK(std::string(out) == "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST_CASE("the monotonic clock does not go backwards") {
    uint64_t a = atlas::event::monotonic_ms();
    uint64_t b = atlas::event::monotonic_ms();
    CHECK(b >= a);
}
