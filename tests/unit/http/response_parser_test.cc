#include "http/response_parser.hh"

#include <doctest/doctest.h>

#include "http_describe.hh"

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace atlas::http;
using atlas::test::describe;
using atlas::test::exact_buf;
using namespace std::string_literals;

namespace {

using kind = response_body_kind;
constexpr uint32_t k_rstorage = 128;

std::string rparse_whole(std::string_view in, const response_limits &lim = {}) {
    exact_buf b(in);
    header_field st[k_rstorage];
    response_head h;
    uint32_t scan = 0;
    const parse_result r = parse_response_head(b.view(), lim, h, st, k_rstorage, scan);
    if (r != parse_result::incomplete) CHECK(scan == 0);
    return describe(r, h);
}

// Feeds growing prefixes ending at each cut (the whole input last), carrying scan_from across calls;
// every call gets a fresh exact-size buffer (the parser keeps offsets, never pointers).
std::string rparse_split(std::string_view in, std::vector<size_t> cuts, const response_limits &lim = {}) {
    cuts.push_back(in.size());
    header_field st[k_rstorage];
    response_head h;
    uint32_t scan = 0;
    for (size_t k : cuts) {
        exact_buf b(in.substr(0, k));
        const parse_result r = parse_response_head(b.view(), lim, h, st, k_rstorage, scan);
        if (r != parse_result::incomplete) return describe(r, h);
    }
    return "incomplete";
}

std::string rparse_bytewise(std::string_view in, const response_limits &lim = {}) {
    std::vector<size_t> cuts;
    for (size_t k = 0; k < in.size(); ++k) cuts.push_back(k);
    return rparse_split(in, cuts, lim);
}

std::string rparse_random(std::string_view in, std::mt19937 &rng, const response_limits &lim = {}) {
    std::vector<size_t> cuts;
    if (!in.empty()) {
        const size_t pieces = rng() % 6;
        for (size_t i = 0; i < pieces; ++i) cuts.push_back(rng() % in.size());
        std::sort(cuts.begin(), cuts.end());
    }
    return rparse_split(in, cuts, lim);
}

struct rparsed {
    header_field st[k_rstorage];
    response_head h;
    parse_result r;
    std::string copy; // keeps the views alive
    explicit rparsed(std::string in, const response_limits &lim = {}) : copy(std::move(in)) {
        uint32_t scan = 0;
        r = parse_response_head(copy, lim, h, st, k_rstorage, scan);
    }
};

struct rcase {
    std::string in;
    const char *error;  // nullptr: valid; else the exact error_reason
    int status = 0;
    kind framing = kind::none; // for a GET
    bool keep_alive = false;
    int keep_alive_timeout = -1;
    int64_t content_length = -1;
};

rcase ok(std::string in, int status, kind k, bool ka, int kat = -1, int64_t cl = -1) {
    return {std::move(in), nullptr, status, k, ka, kat, cl};
}
rcase bad(std::string in, const char *why) { return {std::move(in), why}; }

const std::string S200 = "HTTP/1.1 200 OK\r\n";

std::vector<rcase> table() {
    return {
        // ---- valid ---------------------------------------------------------------------------
        ok(S200 + "\r\n", 200, kind::until_close, true),
        ok(S200 + "Content-Length: 5\r\n\r\nhello", 200, kind::length, true, -1, 5),
        ok(S200 + "Content-Length: 0\r\n\r\n", 200, kind::length, true, -1, 0),
        ok(S200 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, kind::chunked, true),
        ok(S200 + "Transfer-Encoding: CHUNKED\r\n\r\n", 200, kind::chunked, true),
        ok(S200 + "Transfer-Encoding: gzip\r\n\r\n", 200, kind::until_close, true),
        ok(S200 + "Transfer-Encoding: chunked, gzip\r\n\r\n", 200, kind::until_close, true),
        ok(S200 + "Transfer-Encoding: gzip;q=1\r\n\r\n", 200, kind::until_close, true),
        ok("HTTP/1.0 200 OK\r\n\r\n", 200, kind::until_close, false),
        ok("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 200, kind::length, true, -1, 0),
        ok("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n\r\n", 200, kind::until_close, false),
        ok(S200 + "Connection: close\r\nContent-Length: 2\r\n\r\nhi", 200, kind::length, false, -1, 2),
        ok(S200 + "Connection: , Keep-Alive ,, CLOSE ,\r\n\r\n", 200, kind::until_close, false),
        ok(S200 + "Connection: keep-alive\r\n\r\n", 200, kind::until_close, true),
        ok("HTTP/1.2 200 OK\r\n\r\n", 200, kind::until_close, true),
        ok("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, kind::length, true, -1, 0), // no SP, no reason
        ok("HTTP/1.1 200 \r\n\r\n", 200, kind::until_close, true),
        ok("HTTP/1.1 200 \xC3\xA9t\xC3\xA9\t ok  \r\n\r\n", 200, kind::until_close, true), // obs-text, HTAB
        ok("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n", 404, kind::length, true, -1, 9),
        ok("HTTP/1.1 999 Whatever\r\n\r\n", 999, kind::until_close, true),
        ok("HTTP/1.1 100 Continue\r\n\r\n", 100, kind::none, true),
        ok("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 103, kind::none, true),
        ok("HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n", 100, kind::none, true),
        ok("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05", 101,
           kind::tunnel, true),
        ok("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 204, kind::none, true, -1, 10),
        ok("HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n", 304, kind::none, true, -1, 1234),
        ok("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 304, kind::none, true),
        ok(S200 + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 200, kind::length, true, -1, 5),
        ok(S200 + "Content-Length: 5, 5\r\n\r\n", 200, kind::length, true, -1, 5),
        ok(S200 + "Content-Length: 9007199254740992\r\n\r\n", 200, kind::length, true, -1, 9007199254740992),
        ok(S200 + "Keep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n", 200, kind::length, true, 5, 0),
        ok(S200 + "Keep-Alive: max=100, timeout=30\r\n\r\n", 200, kind::until_close, true, 30),
        ok(S200 + "keep-alive: TIMEOUT = 7\r\n\r\n", 200, kind::until_close, true, 7),
        ok(S200 + "Keep-Alive: timeout=0\r\n\r\n", 200, kind::until_close, true, 0),
        ok(S200 + "Keep-Alive: timeout=10\r\nKeep-Alive: timeout=3\r\n\r\n", 200, kind::until_close, true, 3),
        ok(S200 + "Keep-Alive: timeout=abc, max=5\r\n\r\n", 200, kind::until_close, true, -1),
        ok(S200 + "Keep-Alive: timeout=\r\n\r\n", 200, kind::until_close, true, -1),
        ok(S200 + "Keep-Alive: timeout=-1\r\n\r\n", 200, kind::until_close, true, -1),
        ok(S200 + "Keep-Alive: timeout=5s\r\n\r\n", 200, kind::until_close, true, -1),
        ok(S200 + "Keep-Alive: timeout=9999999999\r\n\r\n", 200, kind::until_close, true, -1),
        ok(S200 + "Keep-Alive: timeout\r\n\r\n", 200, kind::until_close, true, -1),
        ok(S200 + "Keep-Alive: timeout=bad, timeout=4\r\n\r\n", 200, kind::until_close, true, 4),
        ok(S200 + "Server:   atlas \t\r\nX-Empty:\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n", 200,
           kind::until_close, true),
        ok("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n", 407, kind::length, true, -1, 0),

        // ---- status line ---------------------------------------------------------------------
        bad("HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version"),
        bad("HTTP/0.9 200 OK\r\n\r\n", "unsupported HTTP version"),
        bad("HTTP/2 200 OK\r\n\r\n", "unsupported HTTP version"),
        bad("http/1.1 200 OK\r\n\r\n", "malformed status line"),
        bad("HTTP/1.x 200 OK\r\n\r\n", "malformed status line"),
        bad("HTTP/1.1\r\n\r\n", "malformed status line"),
        bad("\r\nHTTP/1.1 200 OK\r\n\r\n", "malformed status line"),
        bad(" HTTP/1.1 200 OK\r\n\r\n", "malformed status line"),
        bad("HTTP/1.1 200 OK\n\r\n", "bare LF in status line"),
        bad("HTTP/1.1 200\n\r\n", "bare LF in status line"),
        bad("HTTP/1.1 200 OK\rX\r\n\r\n", "bare CR in status line"),
        bad("HTTP/1.1 20 OK\r\n\r\n", "invalid status code"),
        bad("HTTP/1.1 2000 OK\r\n\r\n", "invalid status code"),
        bad("HTTP/1.1 099 OK\r\n\r\n", "invalid status code"),
        bad("HTTP/1.1 abc OK\r\n\r\n", "invalid status code"),
        bad("HTTP/1.1  200 OK\r\n\r\n", "invalid status code"),
        bad("HTTP/1.1 200\tOK\r\n\r\n", "invalid status code"),
        bad("HTTP/1.1 200 O\x01K\r\n\r\n", "control character in reason phrase"),
        bad("HTTP/1.1 200 O\x7FK\r\n\r\n", "control character in reason phrase"),
        bad("HTTP/1.1 200 O"s + '\0' + "K\r\n\r\n", "control character in reason phrase"),

        // ---- field lines (same scanner as requests) ------------------------------------------
        bad(S200 + "X: a\r\n b\r\n\r\n", "obs-fold or leading whitespace in header line"),
        bad(S200 + " X: a\r\n\r\n", "obs-fold or leading whitespace in header line"),
        bad(S200 + "X : a\r\n\r\n", "whitespace between header name and colon"),
        bad(S200 + ": a\r\n\r\n", "empty header name"),
        bad(S200 + "X\r\n\r\n", "header line without colon"),
        bad(S200 + "X: a\nY: b\r\n\r\n", "bare LF in header"),
        bad(S200 + "X: a\rY: b\r\n\r\n", "bare CR in header"),
        bad(S200 + "X: a"s + '\0' + "b\r\n\r\n", "NUL in header value"),
        bad(S200 + "X: a\x7F\r\n\r\n", "control character in header value"),
        bad(S200 + "\n", "bare LF in header section"),
        bad(S200 + "\r\r", "bare CR at end of head"),
        bad(S200 + "Cont\xE9nt: x\r\n\r\n", "invalid character in header name"),

        // ---- framing / smuggling shapes ------------------------------------------------------
        bad(S200 + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both Transfer-Encoding and Content-Length"),
        bad(S200 + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "both Transfer-Encoding and Content-Length"),
        bad(S200 + "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", "both Transfer-Encoding and Content-Length"),
        bad("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Transfer-Encoding and Content-Length"),
        bad(S200 + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting Content-Length values"),
        bad(S200 + "Content-Length: 5, 6\r\n\r\n", "conflicting Content-Length values"),
        bad(S200 + "Content-Length: +5\r\n\r\n", "invalid Content-Length"),
        bad(S200 + "Content-Length: 0x10\r\n\r\n", "invalid Content-Length"),
        bad(S200 + "Content-Length: 5,\r\n\r\n", "invalid Content-Length"),
        bad(S200 + "Content-Length: 1 2\r\n\r\n", "invalid Content-Length"),
        bad(S200 + "Content-Length:\r\n\r\n", "empty Content-Length"),
        bad(S200 + "Content-Length: 99999999999999999999\r\n\r\n", "Content-Length too large"),
        bad("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in HTTP/1.0 response"),
        bad(S200 + "Transfer-Encoding: chunked, chunked\r\n\r\n", "chunked applied more than once"),
        bad(S200 + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked applied more than once"),
        bad(S200 + "Transfer-Encoding: chunked;foo=bar\r\n\r\n", "parameters on chunked"),
        bad(S200 + "Transfer-Encoding:\r\n\r\n", "invalid Transfer-Encoding"),
        bad(S200 + "Transfer-Encoding: ,chunked\r\n\r\n", "invalid Transfer-Encoding"),
        bad(S200 + "Transfer-Encoding: \"chunked\"\r\n\r\n", "invalid Transfer-Encoding"),
        bad(S200 + "Transfer-Encoding: gzip, chunked\r\n\r\n", "unsupported transfer-coding under chunked"),
        bad(S200 + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            "unsupported transfer-coding under chunked"),
        bad(S200 + "Connection: close;x\r\n\r\n", "invalid Connection header"),
    };
}

} // namespace

TEST_CASE("response table: expected result, same outcome whole / byte by byte / random splits") {
    const auto cases = table();
    CHECK(cases.size() >= 40);
    std::mt19937 rng(12345);
    size_t valid = 0;
    for (const rcase &c : cases) {
        CAPTURE(c.in);
        rparsed p(c.in);
        if (c.error) {
            REQUIRE(p.r == parse_result::error);
            CHECK(std::string(p.h.error_reason) == c.error);
        } else {
            ++valid;
            REQUIRE(p.r == parse_result::complete);
            CHECK(p.h.status == c.status);
            CHECK(framing(p.h, false, false) == c.framing);
            CHECK(p.h.keep_alive == c.keep_alive);
            CHECK(p.h.keep_alive_timeout_s == c.keep_alive_timeout);
            CHECK(p.h.content_length == c.content_length);
            CHECK(p.h.error_reason == nullptr);
            // head_length ends exactly after the first CRLF CRLF
            CHECK(p.h.head_length == c.in.find("\r\n\r\n") + 4);
        }
        const std::string whole = rparse_whole(c.in);
        CHECK(rparse_bytewise(c.in) == whole);
        for (int k = 0; k < 5; ++k) CHECK(rparse_random(c.in, rng) == whole);
    }
    CHECK(valid >= 20);
}

TEST_CASE("status line fields") {
    {
        rparsed p("HTTP/1.1 404 Not  Found \r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.version_minor == 1);
        CHECK(p.h.status == 404);
        CHECK(p.h.reason == "Not  Found "); // kept as sent
        CHECK(p.h.header_count == 0);
    }
    {
        rparsed p("HTTP/1.0 503 Service Unavailable\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.version_minor == 0);
        CHECK(p.h.status == 503);
        CHECK(p.h.reason == "Service Unavailable");
    }
    {
        rparsed p("HTTP/1.9 200\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.version_minor == 1);
        CHECK(p.h.reason.empty());
    }
    {
        rparsed p("HTTP/1.1 100 \r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.status == 100);
        CHECK(p.h.reason.empty());
    }
}

TEST_CASE("header fields are stored in order with OWS trimmed, views into the input") {
    rparsed p(S200 + "Server:   atlas \t\r\nX-Empty:\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nBODY");
    REQUIRE(p.r == parse_result::complete);
    REQUIRE(p.h.header_count == 4);
    CHECK(p.h.headers == p.st);
    CHECK(p.h.headers[0].name == "Server");
    CHECK(p.h.headers[0].value == "atlas");
    CHECK(p.h.headers[1].name == "X-Empty");
    CHECK(p.h.headers[1].value.empty());
    CHECK(p.h.headers[2].value == "a=1");
    CHECK(p.h.headers[3].value == "b=2");
    CHECK(p.h.headers[0].name.data() == p.copy.data() + S200.size());
    CHECK(p.copy.substr(p.h.head_length) == "BODY");
}

TEST_CASE("is_interim and framing of 1xx") {
    for (int s : {100, 102, 103, 150, 199}) {
        response_head h;
        h.status = static_cast<uint16_t>(s);
        CHECK(h.is_interim());
        CHECK(framing(h, false, false) == kind::none);
        CHECK(framing(h, true, false) == kind::none);
    }
    for (int s : {101, 200, 204, 304, 404, 500, 999}) {
        response_head h;
        h.status = static_cast<uint16_t>(s);
        CHECK_FALSE(h.is_interim());
    }
}

TEST_CASE("interim 100 and 103 are skipped, then the final 200 (whole and byte by byte)") {
    const std::string in = "HTTP/1.1 100 Continue\r\n\r\n"
                           "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    // Like the proxy: parse, and while the response is interim, drop its head and parse again.
    auto run = [&](bool bytewise) {
        std::vector<int> statuses;
        size_t base = 0, avail = bytewise ? 0 : in.size();
        uint32_t scan = 0;
        header_field st[16];
        response_head h;
        for (;;) {
            exact_buf b(std::string_view(in).substr(base, avail - base));
            const parse_result r = parse_response_head(b.view(), {}, h, st, 16, scan);
            REQUIRE(r != parse_result::error);
            if (r == parse_result::incomplete) {
                REQUIRE(avail < in.size());
                ++avail;
                continue;
            }
            CHECK(scan == 0);
            statuses.push_back(h.status);
            CHECK(framing(h, false, false) == (h.is_interim() ? kind::none : kind::length));
            base += h.head_length;
            if (!h.is_interim()) break;
        }
        CHECK(statuses == std::vector<int>{100, 103, 200});
        CHECK(h.content_length == 5);
        CHECK(in.substr(base) == "hello");
    };
    run(false);
    run(true);
}

TEST_CASE("101 Switching Protocols with Upgrade ends HTTP on the connection") {
    rparsed p("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello");
    REQUIRE(p.r == parse_result::complete);
    CHECK(p.h.status == 101);
    CHECK_FALSE(p.h.is_interim());
    CHECK(p.h.connection_upgrade);
    CHECK(p.h.upgrade == "websocket");
    CHECK(framing(p.h, false, false) == kind::tunnel);
    CHECK_FALSE(connection_reusable(p.h, framing(p.h, false, false)));
    CHECK(p.copy.substr(p.h.head_length) == "\x81\x05hello");

    rparsed q(S200 + "Upgrade: h2c\r\nUpgrade: other\r\n\r\n");
    REQUIRE(q.r == parse_result::complete);
    CHECK_FALSE(q.h.connection_upgrade);
    CHECK(q.h.upgrade == "h2c"); // the first one
    rparsed n(S200 + "\r\n");
    CHECK(n.h.upgrade.empty());
    CHECK_FALSE(n.h.connection_upgrade);
}

TEST_CASE("framing: HEAD, 204, 304, CONNECT") {
    rparsed cl(S200 + "Content-Length: 5\r\n\r\n");
    REQUIRE(cl.r == parse_result::complete);
    CHECK(framing(cl.h, false, false) == kind::length);
    CHECK(framing(cl.h, true, false) == kind::none); // HEAD: CL describes the representation
    CHECK(framing(cl.h, false, true) == kind::tunnel); // 2xx to CONNECT: CL ignored
    CHECK(connection_reusable(cl.h, kind::none));
    CHECK(connection_reusable(cl.h, kind::length));

    rparsed te(S200 + "Transfer-Encoding: chunked\r\n\r\n");
    REQUIRE(te.r == parse_result::complete);
    CHECK(te.h.transfer_encoding);
    CHECK(te.h.chunked);
    CHECK(framing(te.h, false, false) == kind::chunked);
    CHECK(framing(te.h, true, false) == kind::none);
    CHECK(framing(te.h, false, true) == kind::tunnel);
    CHECK(connection_reusable(te.h, kind::chunked));

    rparsed gz(S200 + "Transfer-Encoding: gzip\r\n\r\n");
    REQUIRE(gz.r == parse_result::complete);
    CHECK(gz.h.transfer_encoding);
    CHECK_FALSE(gz.h.chunked);
    CHECK(framing(gz.h, false, false) == kind::until_close);
    CHECK(framing(gz.h, true, false) == kind::none);
    CHECK_FALSE(connection_reusable(gz.h, kind::until_close));

    for (const char *s : {"204 No Content", "304 Not Modified"}) {
        rparsed p("HTTP/1.1 "s + s + "\r\nContent-Length: 42\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        CHECK(p.h.content_length == 42);
        CHECK(framing(p.h, false, false) == kind::none);
        CHECK(framing(p.h, true, false) == kind::none);
        CHECK(connection_reusable(p.h, kind::none));
    }

    // CONNECT: only 2xx opens the tunnel; a refusal is an ordinary response.
    rparsed refused("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\nno!");
    REQUIRE(refused.r == parse_result::complete);
    CHECK(framing(refused.h, false, true) == kind::length);
    rparsed made("HTTP/1.1 200 Connection Established\r\n\r\n");
    REQUIRE(made.r == parse_result::complete);
    CHECK(framing(made.h, false, true) == kind::tunnel);
    CHECK(framing(made.h, false, false) == kind::until_close);
    CHECK_FALSE(connection_reusable(made.h, kind::tunnel));

    // Keep-alive by Connection, but close-delimited: not reusable.
    rparsed plain(S200 + "\r\n");
    CHECK(plain.h.keep_alive);
    CHECK_FALSE(connection_reusable(plain.h, framing(plain.h, false, false)));
    CHECK(connection_reusable(plain.h, framing(plain.h, true, false)));
    rparsed closing(S200 + "Connection: close\r\nContent-Length: 0\r\n\r\n");
    CHECK_FALSE(connection_reusable(closing.h, framing(closing.h, false, false)));
}

TEST_CASE("Content-Length: identical duplicates accepted (RFC 9110 8.6), differing rejected") {
    rparsed a(S200 + "Content-Length: 7\r\nX: y\r\ncontent-length: 7, 7\r\n\r\n");
    REQUIRE(a.r == parse_result::complete);
    CHECK(a.h.content_length == 7);
    rparsed b(S200 + "Content-Length: 7\r\nX: y\r\ncontent-length: 7, 8\r\n\r\n");
    REQUIRE(b.r == parse_result::error);
    CHECK(std::string(b.h.error_reason) == "conflicting Content-Length values");
    rparsed c(S200 + "Content-Length: 007\r\nContent-Length: 7\r\n\r\n"); // same value, different spelling
    REQUIRE(c.r == parse_result::complete);
    CHECK(c.h.content_length == 7);
}

TEST_CASE("Keep-Alive timeout") {
    auto kat = [](const std::string &v) {
        rparsed p(S200 + "Keep-Alive: " + v + "\r\n\r\n");
        REQUIRE(p.r == parse_result::complete);
        return p.h.keep_alive_timeout_s;
    };
    CHECK(kat("timeout=5, max=100") == 5);
    CHECK(kat("max=100,timeout=15") == 15);
    CHECK(kat("Timeout=120") == 120);
    CHECK(kat("timeout=999999999") == 999999999);
    CHECK(kat("timeout=1000000000") == -1); // 10 digits: ignored
    CHECK(kat("timeout=5.5") == -1);
    CHECK(kat("timeout=\"5\"") == -1);
    CHECK(kat("timeouts=5") == -1);
    CHECK(kat("max=100") == -1);
    CHECK(kat("") == -1);
    CHECK(kat(",,") == -1);
    CHECK(kat("timeout=8, timeout=2") == 2);
    rparsed none(S200 + "\r\n");
    CHECK(none.h.keep_alive_timeout_s == -1);
}

TEST_CASE("scan_from resumes where the previous call stopped") {
    const std::string in = S200 + "Server: atlas\r\nContent-Length: 0\r\n\r\n";
    header_field st[8];
    response_head h;
    uint32_t scan = 0;
    for (size_t k : {size_t{3}, size_t{12}, S200.size(), S200.size() + 4, in.size() - 1}) {
        CHECK(parse_response_head(std::string_view(in).substr(0, k), {}, h, st, 8, scan) == parse_result::incomplete);
        CHECK(scan != 0);
    }
    REQUIRE(parse_response_head(in, {}, h, st, 8, scan) == parse_result::complete);
    CHECK(scan == 0);
    CHECK(h.head_length == in.size());
    CHECK(h.header_count == 2);

    // A stale or garbage hint is not trusted to point past the input.
    scan = 0xFFFFFFFFu;
    CHECK(parse_response_head(in, {}, h, st, 8, scan) == parse_result::complete);
    scan = (3u << 27) | 100000u;
    CHECK(parse_response_head(in, {}, h, st, 8, scan) == parse_result::complete);

    // An invalid prefix fails at once, without waiting for the rest of the head.
    scan = 0;
    CHECK(parse_response_head("HTTP/1.1 2x", {}, h, st, 8, scan) == parse_result::error);
    scan = 0;
    CHECK(parse_response_head(S200 + "X: a\nb", {}, h, st, 8, scan) == parse_result::error);
    scan = 0;
    CHECK(parse_response_head("", {}, h, st, 8, scan) == parse_result::incomplete);
    CHECK(scan == 0);
}

TEST_CASE("limits: status line") {
    response_limits lim;
    lim.max_status_line = 20;
    const std::string fits = "HTTP/1.1 200 " + std::string(7, 'x'); // exactly 20 bytes before CR
    REQUIRE(fits.size() == 20);
    for (const std::string &tail : {"\r\n\r\n"s}) {
        CHECK(rparse_whole(fits + tail, lim).rfind("complete", 0) == 0);
        CHECK(rparse_bytewise(fits + tail, lim) == rparse_whole(fits + tail, lim));
        CHECK(rparse_whole(fits + "x" + tail, lim) == "error (status line too long)");
        CHECK(rparse_bytewise(fits + "x" + tail, lim) == "error (status line too long)");
    }
    // Detected before the CR arrives.
    CHECK(rparse_whole(fits + "x", lim) == "error (status line too long)");
    CHECK(rparse_whole(fits, lim) == "incomplete");
    // The lenient form counts the same way.
    lim.max_status_line = 12;
    CHECK(rparse_whole("HTTP/1.1 200\r\n\r\n", lim).rfind("complete", 0) == 0);
    CHECK(rparse_whole("HTTP/1.1 200 \r\n\r\n", lim) == "error (status line too long)");
    lim.max_status_line = 11;
    CHECK(rparse_whole("HTTP/1.1 200\r\n\r\n", lim) == "error (status line too long)");
}

TEST_CASE("limits: head size and field count") {
    response_limits lim;
    lim.max_head_bytes = 64;
    std::string head = S200 + "X: ";
    head += std::string(64 - head.size() - 4, 'v') + "\r\n\r\n";
    REQUIRE(head.size() == 64);
    CHECK(rparse_whole(head, lim).rfind("complete", 0) == 0);
    CHECK(rparse_bytewise(head, lim) == rparse_whole(head, lim));
    CHECK(rparse_whole(head + "body bytes may follow", lim).rfind("complete", 0) == 0);
    std::string over = head;
    over.insert(S200.size() + 3, "v");
    CHECK(rparse_whole(over, lim) == "error (response head too large)");
    CHECK(rparse_bytewise(over, lim) == "error (response head too large)");
    // While incomplete: more than the limit buffered without the end of the head.
    CHECK(rparse_whole(std::string(over, 0, 65), lim) == "error (response head too large)");
    CHECK(rparse_whole(std::string(over, 0, 64), lim) == "incomplete");

    // Defaults: 64 KiB head, 100 fields.
    const response_limits def;
    CHECK(def.max_head_bytes == 65536);
    CHECK(def.max_headers == 100);
    std::string big = S200 + "X: " + std::string(60000, 'a') + "\r\n\r\n";
    CHECK(rparse_whole(big).rfind("complete", 0) == 0);
    big = S200 + "X: " + std::string(70000, 'a') + "\r\n\r\n";
    CHECK(rparse_whole(big) == "error (response head too large)");

    auto with_fields = [](int n) {
        std::string s = S200;
        for (int i = 0; i < n; ++i) s += "F" + std::to_string(i) + ": v\r\n";
        return s + "\r\n";
    };
    CHECK(rparse_whole(with_fields(100)).rfind("complete", 0) == 0);
    CHECK(rparse_whole(with_fields(101)) == "error (too many header fields)");
    CHECK(rparse_bytewise(with_fields(101)) == "error (too many header fields)");
    lim = {};
    lim.max_headers = 3;
    CHECK(rparse_whole(with_fields(3), lim).rfind("complete", 0) == 0);
    CHECK(rparse_whole(with_fields(4), lim) == "error (too many header fields)");
    // Caller storage smaller than max_headers is the limit too.
    {
        header_field st[2];
        response_head h;
        uint32_t scan = 0;
        const std::string s2 = with_fields(2), s3 = with_fields(3);
        CHECK(parse_response_head(s2, {}, h, st, 2, scan) == parse_result::complete);
        CHECK(parse_response_head(s3, {}, h, st, 2, scan) == parse_result::error);
        CHECK(std::string(h.error_reason) == "too many header fields");
        CHECK(parse_response_head(S200 + "\r\n", {}, h, nullptr, 0, scan) == parse_result::complete);
        CHECK(parse_response_head(s2, {}, h, nullptr, 0, scan) == parse_result::error);
    }
}

TEST_CASE("randomized: no out-of-bounds reads, incremental == whole") {
    const auto cases = table();
    std::mt19937 rng(777);
    const char alphabet[] = {'\r', '\n', ' ', '\t', ':', ',', ';', '=', '0', '1', '5', 'H', 'a', '\0', '\x7F', '\x80'};
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s = cases[rng() % cases.size()].in;
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits && !s.empty(); ++e) {
            const size_t at = rng() % s.size();
            switch (rng() % 3) {
            case 0: s[at] = alphabet[rng() % sizeof alphabet]; break;
            case 1: s.insert(s.begin() + static_cast<long>(at), alphabet[rng() % sizeof alphabet]); break;
            default: s.erase(at, 1); break;
            }
        }
        CAPTURE(s);
        const std::string whole = rparse_whole(s);
        CHECK(rparse_random(s, rng) == whole);
        if (iter % 10 == 0) CHECK(rparse_bytewise(s) == whole);
        rparsed p(s);
        if (p.r == parse_result::complete) {
            CHECK(p.h.head_length <= s.size());
            CHECK(s.compare(p.h.head_length - 4, 4, "\r\n\r\n") == 0);
            CHECK(p.h.status >= 100);
            CHECK(p.h.status <= 999);
        }
    }
}
