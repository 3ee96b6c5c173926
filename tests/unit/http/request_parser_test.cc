#include "http/request_parser.hh"

#include <doctest/doctest.h>

#include "alloc_counter.hh"
#include "http_describe.hh"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <iterator>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace atlas::http;
using atlas::test::describe;
using atlas::test::exact_buf;
using namespace std::string_literals;


namespace {

constexpr uint32_t k_storage = 128;

std::string parse_whole(std::string_view in, const parse_limits &lim = {}) {
    exact_buf b(in);
    header_field st[k_storage];
    request_head h;
    uint32_t scan = 0;
    const parse_result r = parse_request_head(b.view(), lim, h, st, k_storage, scan);
    return describe(r, h);
}

// Feeds growing prefixes ending at each cut (ascending; the whole input is fed last), carrying
// scan_from across calls like a connection does. With `copy`, every call gets a fresh exact-size
// buffer (the parser keeps offsets, never pointers, between calls).
std::string parse_split(std::string_view in, std::vector<size_t> cuts, const parse_limits &lim = {},
                        bool copy = true) {
    cuts.push_back(in.size());
    header_field st[k_storage];
    request_head h;
    uint32_t scan = 0;
    for (size_t k : cuts) {
        if (copy) {
            exact_buf b(in.substr(0, k));
            const parse_result r = parse_request_head(b.view(), lim, h, st, k_storage, scan);
            if (r != parse_result::incomplete) return describe(r, h);
        } else {
            const parse_result r = parse_request_head(in.substr(0, k), lim, h, st, k_storage, scan);
            if (r != parse_result::incomplete) return describe(r, h);
        }
    }
    return "incomplete";
}

std::string parse_bytewise(std::string_view in, const parse_limits &lim = {}) {
    std::vector<size_t> cuts;
    for (size_t k = 0; k < in.size(); ++k) cuts.push_back(k);
    return parse_split(in, cuts, lim, in.size() <= 4096);
}

std::string parse_random_splits(std::string_view in, std::mt19937 &rng, const parse_limits &lim = {}) {
    std::vector<size_t> cuts;
    if (!in.empty()) {
        const size_t pieces = rng() % 6;
        for (size_t i = 0; i < pieces; ++i) cuts.push_back(rng() % in.size());
        std::sort(cuts.begin(), cuts.end());
    }
    return parse_split(in, cuts, lim);
}

struct parsed {
    header_field st[k_storage];
    request_head h;
    parse_result r;
    uint32_t scan = 0;
    explicit parsed(std::string_view in, const parse_limits &lim = {}) {
        r = parse_request_head(in, lim, h, st, k_storage, scan);
    }
    std::string_view header(std::string_view name) const {
        for (uint32_t i = 0; i < h.header_count; ++i)
            if (h.headers[i].name == name) return h.headers[i].value;
        return "<none>";
    }
};

struct head_case {
    const char *label;
    std::string input;
    parse_result expect;
    uint16_t status; // for errors
};

const std::string H = "Host: a\r\n";
const std::string R11 = "GET / HTTP/1.1\r\n";

std::vector<head_case> table() {
    using pr = parse_result;
    return {
        // ---- valid ------------------------------------------------------------------------------
        {"minimal 1.1", R11 + H + "\r\n", pr::complete, 0},
        {"query and headers", "GET /index.html?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n",
         pr::complete, 0},
        {"1.0 without Host", "GET / HTTP/1.0\r\n\r\n", pr::complete, 0},
        {"1.2 treated as 1.1", "GET / HTTP/1.2\r\n" + H + "\r\n", pr::complete, 0},
        {"1.9 treated as 1.1", "GET / HTTP/1.9\r\n" + H + "\r\n", pr::complete, 0},
        {"one leading CRLF", "\r\n" + R11 + H + "\r\n", pr::complete, 0},
        {"eight leading CRLFs", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" + R11 + H + "\r\n",
         pr::complete, 0},
        {"absolute-form", "GET http://example.com:8080/a?b HTTP/1.1\r\nHost: other\r\n\r\n", pr::complete, 0},
        {"absolute-form https, empty path", "GET HTTPS://Example.com HTTP/1.1\r\nHost: x\r\n\r\n", pr::complete, 0},
        {"absolute-form query only", "GET http://e.com?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", pr::complete, 0},
        {"asterisk-form", "OPTIONS * HTTP/1.1\r\n" + H + "\r\n", pr::complete, 0},
        {"authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", pr::complete, 0},
        {"OWS around value", R11 + "Host: \t a \t\r\n\r\n", pr::complete, 0},
        {"obs-text value", R11 + H + "X-Bin: \x80\xff\r\n\r\n", pr::complete, 0},
        {"HTAB inside value", R11 + H + "X-Tab: a\tb\r\n\r\n", pr::complete, 0},
        {"Content-Length", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhello", pr::complete, 0},
        {"duplicate equal CL", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
         pr::complete, 0},
        {"CL list of equal values", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5, 5\r\n\r\n", pr::complete, 0},
        {"CL max 2^53", R11 + H + "Content-Length: 9007199254740992\r\n\r\n", pr::complete, 0},
        {"chunked", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n", pr::complete, 0},
        {"chunked uppercase", "POST / HTTP/1.1\r\n" + H + "transfer-encoding: CHUNKED\r\n\r\n", pr::complete, 0},
        {"Connection close", R11 + H + "Connection: close\r\n\r\n", pr::complete, 0},
        {"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", pr::complete, 0},
        {"upgrade", "GET /ws HTTP/1.1\r\n" + H + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", pr::complete,
         0},
        {"expect 100-continue", "PUT / HTTP/1.1\r\n" + H + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n",
         pr::complete, 0},
        {"extension method", "PURGE /x HTTP/1.1\r\n" + H + "\r\n", pr::complete, 0},
        {"lowercase method is a token", "get / HTTP/1.1\r\n" + H + "\r\n", pr::complete, 0},
        {"IPv6 Host", R11 + "Host: [::1]:8080\r\n\r\n", pr::complete, 0},
        {"IPv4 Host", R11 + "Host: 127.0.0.1\r\n\r\n", pr::complete, 0},
        {"IDN Host with max port", R11 + "Host: xn--bcher-kva.example:65535\r\n\r\n", pr::complete, 0},
        {"empty value", R11 + H + "X-Empty:\r\n\r\n", pr::complete, 0},
        {"1.0 empty Host", "GET / HTTP/1.0\r\nHost: \r\n\r\n", pr::complete, 0},
        {"pct-encoded Host", R11 + "Host: a%41b\r\n\r\n", pr::complete, 0},
        {"visible ASCII target", "GET /a\"<>{}|\\^`b HTTP/1.1\r\n" + H + "\r\n", pr::complete, 0},
        // ---- incomplete ---------------------------------------------------------------------------
        {"empty input", "", pr::incomplete, 0},
        {"no final CRLF", R11 + H, pr::incomplete, 0},
        {"final CR only", R11 + H + "\r", pr::incomplete, 0},
        {"only leading CRLFs", "\r\n\r\n", pr::incomplete, 0},
        {"partial method", "GE", pr::incomplete, 0},
        // ---- request line ------------------------------------------------------------------------
        {"lowercase version", "GET / http/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"HTTP/1.10", "GET / HTTP/1.10\r\n" + H + "\r\n", pr::error, 400},
        {"HTTP/1", "GET / HTTP/1\r\n" + H + "\r\n", pr::error, 400},
        {"HTTPS/1.1", "GET / HTTPS/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"two spaces after method", "GET  / HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"two spaces after target", "GET /  HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"space after version", "GET / HTTP/1.1 \r\n" + H + "\r\n", pr::error, 400},
        {"tab as separator", "GET\t/ HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"missing version", "GET /\r\n" + H + "\r\n", pr::error, 400},
        {"empty method", " / HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"bare LF after request line", "GET / HTTP/1.1\n" + H + "\r\n", pr::error, 400},
        {"bare CR after request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", pr::error, 400},
        {"nine leading CRLFs", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" + R11 + H + "\r\n", pr::error, 400},
        {"leading bare LF", "\n" + R11 + H + "\r\n", pr::error, 400},
        {"non-token in method", "G@T / HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"DEL in target", "GET /a\x7f HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"obs-text in target", "GET /\x80 HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"NUL in target", "GET /a\0b HTTP/1.1\r\n"s + H + "\r\n", pr::error, 400},
        {"CTL in target", "GET /a\x01 HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"fragment in target", "GET /a#frag HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"HTTP/2.0", "GET / HTTP/2.0\r\n" + H + "\r\n", pr::error, 505},
        {"HTTP/0.9", "GET / HTTP/0.9\r\n" + H + "\r\n", pr::error, 505},
        {"HTTP/3.0", "GET / HTTP/3.0\r\n" + H + "\r\n", pr::error, 505},
        {"bad prefix fails early: CTL in method", "GE\x01", pr::error, 400},
        {"bad prefix fails early: NUL in target", "GET /\0"s, pr::error, 400},
        {"bad prefix fails early: NUL in value", R11 + "X: \0"s, pr::error, 400},
        // ---- target forms ------------------------------------------------------------------------
        {"authority-form without CONNECT", "GET example.com:80 HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"bare word target", "GET index.html HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"asterisk without OPTIONS", "GET * HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"asterisk with suffix", "OPTIONS *x HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"CONNECT origin-form", "CONNECT / HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"CONNECT without port", "CONNECT example.com HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"CONNECT absolute-form", "CONNECT http://a:1/ HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"other scheme", "GET ftp://x/ HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"absolute-form empty host", "GET http:///path HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"absolute-form userinfo", "GET http://user@host/ HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        {"absolute-form bad port", "GET http://h:99999/ HTTP/1.1\r\n" + H + "\r\n", pr::error, 400},
        // ---- field lines -------------------------------------------------------------------------
        {"space before colon", R11 + "Host : a\r\n\r\n", pr::error, 400},
        {"tab before colon", R11 + "Host\t: a\r\n\r\n", pr::error, 400},
        {"empty name", R11 + H + ": a\r\n\r\n", pr::error, 400},
        {"non-token in name", R11 + H + "X(: a\r\n\r\n", pr::error, 400},
        {"CTL in name", R11 + H + "X\x01: a\r\n\r\n", pr::error, 400},
        {"obs-fold", R11 + H + "X: a\r\n b\r\n\r\n", pr::error, 400},
        {"obs-fold with tab", R11 + H + "X: a\r\n\tb\r\n\r\n", pr::error, 400},
        {"whitespace before first field", R11 + " Host: a\r\n\r\n", pr::error, 400},
        {"NUL in value", R11 + H + "X: a\0b\r\n\r\n"s, pr::error, 400},
        {"DEL in value", R11 + H + "X: a\x7f\r\n\r\n", pr::error, 400},
        {"ESC in value", R11 + H + "X: a\x1b[0m\r\n\r\n", pr::error, 400},
        {"line without colon", R11 + H + "Host\r\n\r\n", pr::error, 400},
        {"bare LF ending a field", R11 + "Host: a\n\r\n", pr::error, 400},
        {"bare LF ending the head", R11 + H + "\n", pr::error, 400},
        {"bare CR ending a field", R11 + "Host: a\rX: b\r\n\r\n", pr::error, 400},
        {"bare CR inside a value", R11 + "X: a\rb\r\n" + H + "\r\n", pr::error, 400},
        {"bare CR ending the head", R11 + H + "\rX", pr::error, 400},
        {"too many fields", [] {
             std::string s = R11 + H;
             for (int i = 0; i < 100; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
             return s + "\r\n";
         }(),
         pr::error, 431},
        // ---- Host --------------------------------------------------------------------------------
        {"missing Host in 1.1", R11 + "X: a\r\n\r\n", pr::error, 400},
        {"two Host fields", R11 + H + H + "\r\n", pr::error, 400},
        {"two Host fields in 1.0", "GET / HTTP/1.0\r\n" + H + H + "\r\n", pr::error, 400},
        {"empty Host in 1.1", R11 + "Host:\r\n\r\n", pr::error, 400},
        {"Host with space", R11 + "Host: a b\r\n\r\n", pr::error, 400},
        {"Host port too big", R11 + "Host: a:99999\r\n\r\n", pr::error, 400},
        {"Host port too long", R11 + "Host: a:012345\r\n\r\n", pr::error, 400},
        {"Host unterminated IPv6", R11 + "Host: [::1\r\n\r\n", pr::error, 400},
        {"Host empty port", R11 + "Host: a:\r\n\r\n", pr::error, 400},
        {"Host userinfo", R11 + "Host: a@b\r\n\r\n", pr::error, 400},
        {"Host bad pct-encoding", R11 + "Host: a%4\r\n\r\n", pr::error, 400},
        {"Host only port", R11 + "Host: :80\r\n\r\n", pr::error, 400},
        {"Host with path", R11 + "Host: a/b\r\n\r\n", pr::error, 400},
        // ---- Content-Length ----------------------------------------------------------------------
        {"CL negative", R11 + H + "Content-Length: -1\r\n\r\n", pr::error, 400},
        {"CL plus sign", R11 + H + "Content-Length: +5\r\n\r\n", pr::error, 400},
        {"CL inner space", R11 + H + "Content-Length: 1 2\r\n\r\n", pr::error, 400},
        {"CL hex", R11 + H + "Content-Length: 0x10\r\n\r\n", pr::error, 400},
        {"CL empty", R11 + H + "Content-Length:\r\n\r\n", pr::error, 400},
        {"CL over 2^53", R11 + H + "Content-Length: 9007199254740993\r\n\r\n", pr::error, 400},
        {"CL huge", R11 + H + "Content-Length: 99999999999999999999999\r\n\r\n", pr::error, 400},
        {"CL list differing", R11 + H + "Content-Length: 5, 6\r\n\r\n", pr::error, 400},
        {"CL fields differing", R11 + H + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", pr::error, 400},
        {"CL trailing comma", R11 + H + "Content-Length: 5,\r\n\r\n", pr::error, 400},
        // ---- Transfer-Encoding -------------------------------------------------------------------
        {"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", pr::error, 400},
        {"TE and CL", R11 + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", pr::error, 400},
        {"TE chunked twice", R11 + H + "Transfer-Encoding: chunked, chunked\r\n\r\n", pr::error, 400},
        {"TE chunked in two fields", R11 + H + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         pr::error, 400},
        {"TE gzip only", R11 + H + "Transfer-Encoding: gzip\r\n\r\n", pr::error, 400},
        {"TE identity", R11 + H + "Transfer-Encoding: identity\r\n\r\n", pr::error, 400},
        {"TE chunkedx", R11 + H + "Transfer-Encoding: chunkedx\r\n\r\n", pr::error, 400},
        {"TE quoted", R11 + H + "Transfer-Encoding: \"chunked\"\r\n\r\n", pr::error, 400},
        {"TE empty", R11 + H + "Transfer-Encoding:\r\n\r\n", pr::error, 400},
        {"TE chunked not last", R11 + H + "Transfer-Encoding: chunked, gzip\r\n\r\n", pr::error, 400},
        {"TE chunked with params", R11 + H + "Transfer-Encoding: chunked;a=b\r\n\r\n", pr::error, 400},
        {"TE empty element", R11 + H + "Transfer-Encoding: , chunked\r\n\r\n", pr::error, 400},
        {"TE gzip then chunked", R11 + H + "Transfer-Encoding: gzip, chunked\r\n\r\n", pr::error, 501},
        {"TE gzip then chunked, two fields", R11 + H + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
         pr::error, 501},
        // ---- Connection / Expect -----------------------------------------------------------------
        {"Connection non-token", R11 + H + "Connection: close;\r\n\r\n", pr::error, 400},
        {"Expect unknown", R11 + H + "Expect: foo\r\n\r\n", pr::error, 417},
        {"Expect in 1.0 unknown", "GET / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n", pr::error, 417},
    };
}

const char *result_name(parse_result r) {
    return r == parse_result::complete ? "complete" : r == parse_result::incomplete ? "incomplete" : "error";
}

} // namespace

TEST_CASE("request table: expected result, same outcome whole / byte by byte / random splits") {
    std::mt19937 rng(1234);
    const auto cases = table();
    CHECK(cases.size() >= 60);
    for (const auto &c : cases) {
        CAPTURE(c.label);
        exact_buf b(c.input);
        header_field st[k_storage];
        request_head h;
        uint32_t scan = 0;
        const parse_result r = parse_request_head(b.view(), parse_limits{}, h, st, k_storage, scan);
        CHECK_MESSAGE(r == c.expect, result_name(r), " ", describe(r, h));
        if (r == parse_result::error) {
            CHECK(h.error_status == c.status);
            CHECK(h.error_reason != nullptr);
        }
        if (r != parse_result::incomplete) CHECK(scan == 0);
        const std::string whole = describe(r, h);
        CHECK(parse_bytewise(c.input) == whole);
        for (int i = 0; i < 3; ++i) CHECK(parse_random_splits(c.input, rng) == whole);
    }
}

TEST_CASE("request line fields") {
    const std::string req = "GET /a/b%20c?x=1&y=?z HTTP/1.1\r\nHost: example.com:8080\r\n\r\nBODY";
    parsed p(req);
    REQUIRE(p.r == parse_result::complete);
    CHECK(p.h.method == "GET");
    CHECK(p.h.target == "/a/b%20c?x=1&y=?z");
    CHECK(p.h.path_raw == "/a/b%20c");
    CHECK(p.h.query == "x=1&y=?z");
    CHECK(p.h.authority.empty());
    CHECK(p.h.host == "example.com:8080");
    CHECK(p.h.version_minor == 1);
    CHECK(p.h.content_length == -1);
    CHECK_FALSE(p.h.chunked);
    CHECK(p.h.keep_alive);
    CHECK_FALSE(p.h.is_head);
    CHECK(p.h.head_length == req.size() - 4);
    CHECK(p.h.error_status == 0);

    parsed q("HEAD /x? HTTP/1.0\r\n\r\n");
    REQUIRE(q.r == parse_result::complete);
    CHECK(q.h.is_head);
    CHECK(q.h.path_raw == "/x");
    CHECK(q.h.query.empty());
    CHECK(q.h.version_minor == 0);
    CHECK(q.h.host.empty());
    CHECK_FALSE(q.h.keep_alive);

    parsed v("GET / HTTP/1.7\r\nHost: a\r\n\r\n");
    REQUIRE(v.r == parse_result::complete);
    CHECK(v.h.version_minor == 1);
}

TEST_CASE("target forms") {
    SUBCASE("absolute-form: authority wins over Host") {
        parsed p("GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.authority == "Example.com:8080");
        CHECK(p.h.host == "Example.com:8080");
        CHECK(p.h.path_raw == "/a/b");
        CHECK(p.h.query == "c=d");
    }
    SUBCASE("absolute-form with empty path") {
        parsed p("GET https://e.com HTTP/1.1\r\nHost: e.com\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.path_raw == "/");
        CHECK(p.h.query.empty());
        parsed q("GET hTTp://e.com?x HTTP/1.1\r\nHost: e.com\r\n\r\n");
        REQUIRE(q.r == parse_result::complete);
        CHECK(q.h.path_raw == "/");
        CHECK(q.h.query == "x");
        CHECK(q.h.authority == "e.com");
    }
    SUBCASE("absolute-form in HTTP/1.0 needs no Host") {
        parsed p("GET http://[::1]:81/ HTTP/1.0\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.host == "[::1]:81");
    }
    SUBCASE("asterisk-form") {
        parsed p("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.path_raw == "*");
        CHECK(p.h.host == "a");
    }
    SUBCASE("authority-form") {
        parsed p("CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.authority == "db.internal:5432");
        CHECK(p.h.path_raw.empty());
        CHECK(p.h.host == "db.internal:5432");
    }
}

TEST_CASE("header fields are stored in order with OWS trimmed") {
    parsed p("GET / HTTP/1.1\r\nHost:a\r\nX-A:  one two  \r\nx-b:\t\r\nX-C: \tv\t \r\nUser-Agent: t/1 (x; y)\r\n\r\n");
    REQUIRE(p.r == parse_result::complete);
    REQUIRE(p.h.header_count == 5);
    CHECK(p.h.headers == p.st);
    CHECK(p.h.headers[0].name == "Host");
    CHECK(p.h.headers[0].value == "a");
    CHECK(p.header("X-A") == "one two");
    CHECK(p.header("x-b") == "");
    CHECK(p.header("X-C") == "v");
    CHECK(p.header("User-Agent") == "t/1 (x; y)");
}

TEST_CASE("framing fields") {
    SUBCASE("Content-Length") {
        parsed p("POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0042\r\nCONTENT-LENGTH: 42, 42\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.content_length == 42);
        CHECK_FALSE(p.h.chunked);
        parsed z("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        REQUIRE(z.r == parse_result::complete);
        CHECK(z.h.content_length == 0);
    }
    SUBCASE("chunked") {
        parsed p("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.chunked);
        CHECK(p.h.content_length == -1);
    }
    SUBCASE("error reasons are specific") {
        parsed p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        REQUIRE(p.r == parse_result::error);
        CHECK(std::string(p.h.error_reason) == "both Transfer-Encoding and Content-Length");
        parsed q("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n");
        REQUIRE(q.r == parse_result::error);
        CHECK(std::string(q.h.error_reason) == "obs-fold or leading whitespace in header line");
    }
}

TEST_CASE("Connection, Upgrade and Expect") {
    struct row {
        std::string req;
        bool keep_alive, upgrade, expect;
    };
    const std::vector<row> rows = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", false, false, false},
        {"GET / HTTP/1.0\r\n\r\n", false, false, false},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false, false},
        {"GET / HTTP/1.0\r\nConnection: foo, , keep-alive\r\n\r\n", true, false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", true, true,
         false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", true, false, false},       // no Upgrade field
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", true, false, false},        // not in Connection
        {"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false, false, false}, // 1.0
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", true, false, true},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", true, false,
         true},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", true, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", true, false, false},
        {"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", false, false, false},
    };
    for (const auto &r : rows) {
        CAPTURE(r.req);
        parsed p(r.req);
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.keep_alive == r.keep_alive);
        CHECK(p.h.upgrade == r.upgrade);
        CHECK(p.h.expect_continue == r.expect);
    }
}

TEST_CASE("pipelined requests: head_length stops exactly at the first head") {
    const std::string first = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
    const std::string second = "POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\n";
    const std::string third = "GET /three HTTP/1.1\r\nHost: c\r\n\r\n";
    const std::string buf = first + second + "hello" + third;

    header_field st[16];
    request_head h;
    uint32_t scan = 0;
    std::string_view in = buf;
    REQUIRE(parse_request_head(in, parse_limits{}, h, st, 16, scan) == parse_result::complete);
    CHECK(h.head_length == first.size());
    CHECK(h.path_raw == "/one");
    CHECK(scan == 0);

    in.remove_prefix(h.head_length);
    REQUIRE(parse_request_head(in, parse_limits{}, h, st, 16, scan) == parse_result::complete);
    CHECK(h.head_length == second.size());
    CHECK(h.path_raw == "/two");
    CHECK(h.content_length == 5);
    CHECK(in.substr(h.head_length, 5) == "hello");

    in.remove_prefix(h.head_length + 5);
    REQUIRE(parse_request_head(in, parse_limits{}, h, st, 16, scan) == parse_result::complete);
    CHECK(h.head_length == third.size());
    CHECK(h.host == "c");
    CHECK(h.head_length == in.size());

    // Incrementally, the first head still ends at the same byte even though more follows.
    CHECK(parse_bytewise(buf) == parse_whole(first));
}

TEST_CASE("scan_from resumes where the previous call stopped") {
    // White-box: the hint carries the resume offset in its low bits, which is what makes a
    // byte-at-a-time client O(n) overall.
    const std::string req = "GET /slow HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(3000, 'v') + "\r\n\r\n";
    header_field st[8];
    request_head h;
    uint32_t scan = 0;
    for (size_t k = 1; k < req.size(); ++k) {
        REQUIRE(parse_request_head(std::string_view(req).substr(0, k), parse_limits{}, h, st, 8, scan) ==
                parse_result::incomplete);
        REQUIRE((scan & 0x7FFFFFFu) == k);
    }
    REQUIRE(parse_request_head(req, parse_limits{}, h, st, 8, scan) == parse_result::complete);
    CHECK(h.head_length == req.size());
    CHECK(h.headers[1].value.size() == 3000);
    CHECK(scan == 0);

    // A stale hint (e.g. the caller forgot to reset it) is detected and parsing starts over.
    scan = 0xFFFFFFFFu;
    CHECK(parse_request_head(req, parse_limits{}, h, st, 8, scan) == parse_result::complete);
}

TEST_CASE("limits: request line (414)") {
    auto line_of = [](size_t len) { // "GET /aaaa HTTP/1.1" with exactly `len` bytes
        return "GET /" + std::string(len - 14, 'a') + " HTTP/1.1";
    };
    CHECK(parse_whole(line_of(8192) + "\r\nHost: a\r\n\r\n").rfind("complete", 0) == 0);
    CHECK(parse_whole(line_of(8193) + "\r\nHost: a\r\n\r\n").rfind("error 414", 0) == 0);
    // Without its CRLF: wait up to the limit, fail as soon as it is exceeded.
    CHECK(parse_whole(("GET /" + std::string(8187, 'a'))) == "incomplete"); // 8192 bytes
    CHECK(parse_whole(line_of(8192) + "\r") == "incomplete");
    CHECK(parse_whole("GET /" + std::string(8188, 'a')).rfind("error 414", 0) == 0); // 8193 bytes
    CHECK(parse_whole(std::string(9000, 'G')).rfind("error 414", 0) == 0);          // in the method
    // Leading empty lines do not count against the request line.
    CHECK(parse_whole("\r\n\r\n" + line_of(8192) + "\r\nHost: a\r\n\r\n").rfind("complete", 0) == 0);
    // Byte by byte gives the same answer at the same byte.
    CHECK(parse_bytewise(line_of(8193) + "\r\n") == parse_whole(line_of(8193) + "\r\n"));
    // A configured limit.
    parse_limits small;
    small.max_request_line = 20;
    CHECK(parse_whole("GET /123456 HTTP/1.1\r\nHost: a\r\n\r\n", small).rfind("complete", 0) == 0); // 20
    CHECK(parse_whole("GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n", small).rfind("error 414", 0) == 0);
}

TEST_CASE("limits: head size and field count (431)") {
    const parse_limits lim{};
    // A head of exactly max_header_bytes (request line and final CRLF CRLF included) fits.
    const std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
    const std::string fit = start + std::string(16384 - start.size() - 4, 'p') + "\r\n\r\n";
    REQUIRE(fit.size() == 16384);
    CHECK(parse_whole(fit).rfind("complete len=16384", 0) == 0);
    const std::string over = start + std::string(16384 - start.size() - 3, 'p') + "\r\n\r\n";
    CHECK(parse_whole(over).rfind("error 431", 0) == 0);
    // Incomplete: more than max_header_bytes buffered without the end of the head.
    CHECK(parse_whole(fit.substr(0, 16384 - 1)) == "incomplete");
    CHECK(parse_whole(start + std::string(16384, 'p')).rfind("error 431", 0) == 0);
    CHECK(parse_bytewise(over) == parse_whole(over));
    // A body after a head that fits does not count.
    CHECK(parse_whole(fit + std::string(100000, 'b')).rfind("complete len=16384", 0) == 0);

    // Field count: max_headers fields are fine, one more is 431.
    std::string hundred = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 99; ++i) hundred += "X-" + std::to_string(i) + ": v\r\n";
    CHECK(parse_whole(hundred + "\r\n").rfind("complete", 0) == 0);
    CHECK(parse_whole(hundred + "X-100: v\r\n\r\n").rfind("error 431", 0) == 0);
    // Caller storage smaller than max_headers is the effective limit.
    header_field st[3];
    request_head h;
    uint32_t scan = 0;
    CHECK(parse_request_head("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", lim, h, st, 3, scan) ==
          parse_result::complete);
    CHECK(parse_request_head("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim, h, st, 3, scan) ==
          parse_result::error);
    CHECK(h.error_status == 431);
    // A malformed head with too many fields is reported as malformed (400), consistently.
    std::string bad = hundred + "X-100: v\r\nX-bad\x01: v\r\n\r\n";
    CHECK(parse_whole(bad).rfind("error 400", 0) == 0);
}

TEST_CASE("the parser does not allocate") {
    const std::string req = "POST http://example.com/upload?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\n"
                            "Connection: keep-alive, Upgrade\r\nUpgrade: h2c\r\nExpect: 100-continue\r\n"
                            "Transfer-Encoding: chunked\r\nCookie: " + std::string(500, 'c') + "\r\n\r\n";
    header_field st[32];
    request_head h;
    uint32_t scan = 0;
    const uint64_t before = atlas::test::allocations();
    int complete = 0;
    for (int i = 0; i < 50; ++i)
        complete += parse_request_head(req, parse_limits{}, h, st, 32, scan) == parse_result::complete;
    for (size_t k = 0; k <= req.size(); ++k)
        complete += parse_request_head(std::string_view(req).substr(0, k), parse_limits{}, h, st, 32, scan) ==
                    parse_result::complete;
    const uint64_t after = atlas::test::allocations();
    CHECK(complete == 51);
    CHECK(after == before);
}

namespace {

// Structural invariants every result must satisfy, whatever the input.
void check_invariants(std::string_view in, parse_result r, const request_head &h, const header_field *st) {
    auto inside = [&](std::string_view v) {
        return v.empty() || v == "/" || (v.data() >= in.data() && v.data() + v.size() <= in.data() + in.size());
    };
    if (r == parse_result::complete) {
        REQUIRE(h.head_length <= in.size());
        REQUIRE(h.head_length >= 16); // shortest: G / HTTP/1.0 CRLF CRLF
        REQUIRE(inside(h.method));
        REQUIRE(inside(h.target));
        REQUIRE(inside(h.path_raw));
        REQUIRE(inside(h.query));
        REQUIRE(inside(h.authority));
        REQUIRE(inside(h.host));
        REQUIRE(h.headers == st);
        for (uint32_t i = 0; i < h.header_count; ++i) {
            REQUIRE(inside(h.headers[i].name));
            REQUIRE(inside(h.headers[i].value));
            REQUIRE(h.headers[i].name.data() + h.headers[i].name.size() <= in.data() + h.head_length);
        }
        REQUIRE(in.substr(h.head_length - 4, 4) == "\r\n\r\n");
    } else if (r == parse_result::error) {
        const uint16_t s = h.error_status;
        REQUIRE((s == 400 || s == 414 || s == 431 || s == 501 || s == 505 || s == 417));
        REQUIRE(h.error_reason != nullptr);
    }
}

std::string random_request(std::mt19937 &rng) {
    static const char *const pieces[] = {
        "GET", "POST", "CONNECT", "OPTIONS", " ", " ", "/", "/a?b", "*", "http://", "h.com:80", "[::1]", "#",
        " HTTP/1.1", " HTTP/1.0", "HTTP/2.0", "\r\n", "\r\n", "\r\n", "\r", "\n", "Host", ": ", ":", "a",
        "Content-Length", "Transfer-Encoding", "chunked", ", ", "5", "-1", "Connection", "close", "Expect",
        "100-continue", "\t", "\x00", "\x7f", "\x80", "\xff", "%", "\r\n\r\n",
    };
    std::string s;
    const size_t n = rng() % 24;
    for (size_t i = 0; i < n; ++i) {
        if (rng() % 4 == 0) {
            s.push_back(static_cast<char>(rng() & 0xFF));
        } else {
            const char *p = pieces[rng() % std::size(pieces)];
            s += (p[0] == 0 && std::strlen(p) == 0) ? std::string(1, '\0') : std::string(p);
        }
    }
    return s;
}

std::string mutate(std::string s, std::mt19937 &rng) {
    static const char interesting[] = {'\r', '\n', ' ', '\t', ':', '\0', '\x7f', '\x80', '#', ',', '/', '?', 'A'};
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
        if (s.empty()) s = "x";
        const size_t at = rng() % s.size();
        switch (rng() % 5) {
        case 0: s[at] = static_cast<char>(rng() & 0xFF); break;
        case 1: s[at] = interesting[rng() % sizeof interesting]; break;
        case 2: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), interesting[rng() % sizeof interesting]); break;
        case 3: s.erase(at, 1 + rng() % 3); break;
        case 4: {
            const size_t len = 1 + rng() % 8;
            s.insert(at, s.substr(at, len));
            break;
        }
        }
    }
    return s;
}

} // namespace

TEST_CASE("randomized: no out-of-bounds reads, invariants hold, incremental == whole") {
    std::mt19937 rng(20240601u);
    std::vector<std::string> seeds;
    for (const auto &c : table())
        if (c.expect == parse_result::complete) seeds.push_back(c.input);
    REQUIRE(!seeds.empty());

    parse_limits small; // small limits so the 414/431 paths are reached too
    small.max_request_line = 40;
    small.max_header_bytes = 120;
    small.max_headers = 4;

    uint64_t counts[3] = {0, 0, 0};
    for (int iter = 0; iter < 6000; ++iter) {
        std::string input;
        if (iter % 3 == 0) input = random_request(rng);
        else input = mutate(seeds[rng() % seeds.size()], rng);
        const parse_limits &lim = (iter % 5 == 0) ? small : parse_limits{};
        CAPTURE(input);

        exact_buf b(input);
        header_field st[k_storage];
        request_head h;
        uint32_t scan = 0;
        const parse_result r = parse_request_head(b.view(), lim, h, st, k_storage, scan);
        check_invariants(b.view(), r, h, st);
        ++counts[static_cast<int>(r)];

        const std::string whole = describe(r, h);
        if (iter % 4 == 0) REQUIRE(parse_bytewise(input, lim) == whole);
        else REQUIRE(parse_random_splits(input, rng, lim) == whole);
    }
    MESSAGE("complete=", counts[0], " incomplete=", counts[1], " error=", counts[2]);
    CHECK(counts[0] > 100); // the mutations must leave some requests valid, or the test proves little
    CHECK(counts[2] > 1000);
}
