#include "http/response_head.hh"

#include <doctest/doctest.h>

#include <string>

using atlas::http::format_status_line;
using atlas::http::reason_phrase;

TEST_CASE("reason phrases from RFC 9110") {
    CHECK(reason_phrase(100) == "Continue");
    CHECK(reason_phrase(101) == "Switching Protocols");
    CHECK(reason_phrase(200) == "OK");
    CHECK(reason_phrase(204) == "No Content");
    CHECK(reason_phrase(206) == "Partial Content");
    CHECK(reason_phrase(301) == "Moved Permanently");
    CHECK(reason_phrase(304) == "Not Modified");
    CHECK(reason_phrase(308) == "Permanent Redirect");
    CHECK(reason_phrase(400) == "Bad Request");
    CHECK(reason_phrase(404) == "Not Found");
    CHECK(reason_phrase(408) == "Request Timeout");
    CHECK(reason_phrase(413) == "Content Too Large");
    CHECK(reason_phrase(414) == "URI Too Long");
    CHECK(reason_phrase(417) == "Expectation Failed");
    CHECK(reason_phrase(421) == "Misdirected Request");
    CHECK(reason_phrase(422) == "Unprocessable Content");
    CHECK(reason_phrase(426) == "Upgrade Required");
    CHECK(reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(reason_phrase(500) == "Internal Server Error");
    CHECK(reason_phrase(501) == "Not Implemented");
    CHECK(reason_phrase(502) == "Bad Gateway");
    CHECK(reason_phrase(503) == "Service Unavailable");
    CHECK(reason_phrase(504) == "Gateway Timeout");
    CHECK(reason_phrase(505) == "HTTP Version Not Supported");
    CHECK(reason_phrase(0) == "Unknown");
    CHECK(reason_phrase(299) == "Unknown");
    CHECK(reason_phrase(599) == "Unknown");
    CHECK(reason_phrase(100000) == "Unknown");

    // Every code RFC 9110 section 15 defines has a phrase.
    const unsigned rfc9110[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305,
                                306, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411,
                                412, 413, 414, 415, 416, 417, 418, 421, 422, 426, 500, 501, 502, 503, 504, 505};
    for (unsigned s : rfc9110) {
        CAPTURE(s);
        CHECK(reason_phrase(s) != "Unknown");
    }
}

TEST_CASE("status lines") {
    char buf[64];
    size_t n = format_status_line(buf, 200);
    CHECK(std::string(buf, n) == "HTTP/1.1 200 OK\r\n");
    n = format_status_line(buf, 431);
    CHECK(std::string(buf, n) == "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    n = format_status_line(buf, 100);
    CHECK(std::string(buf, n) == "HTTP/1.1 100 Continue\r\n");
    n = format_status_line(buf, 599);
    CHECK(std::string(buf, n) == "HTTP/1.1 599 Unknown\r\n");
    n = format_status_line(buf, 42); // not a three-digit status
    CHECK(std::string(buf, n) == "HTTP/1.1 500 Internal Server Error\r\n");
    n = format_status_line(buf, 1000);
    CHECK(std::string(buf, n) == "HTTP/1.1 500 Internal Server Error\r\n");

    // Every status fits the documented 64-byte buffer and is well-formed.
    for (unsigned s = 0; s < 1100; ++s) {
        char big[128];
        const size_t len = format_status_line(big, s);
        REQUIRE(len <= 64);
        REQUIRE(std::string(big, 9) == "HTTP/1.1 ");
        REQUIRE(big[12] == ' ');
        REQUIRE(std::string(big + len - 2, 2) == "\r\n");
    }
}

TEST_CASE("framing lines: Content-Length in decimal, chunk sizes in hex, at their extremes") {
    char buf[40];
    CHECK(std::string_view(buf, atlas::http::format_content_length(buf, 0)) == "Content-Length: 0\r\n");
    CHECK(std::string_view(buf, atlas::http::format_content_length(buf, 1073741824)) ==
          "Content-Length: 1073741824\r\n");
    CHECK(std::string_view(buf, atlas::http::format_content_length(buf, UINT64_MAX)) ==
          "Content-Length: 18446744073709551615\r\n");
    CHECK(std::string_view(buf, atlas::http::format_chunk_size(buf, 0)) == "0\r\n");
    CHECK(std::string_view(buf, atlas::http::format_chunk_size(buf, 65536)) == "10000\r\n");
    CHECK(std::string_view(buf, atlas::http::format_chunk_size(buf, UINT64_MAX)) == "ffffffffffffffff\r\n");
}
