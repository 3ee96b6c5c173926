#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http/request_parser.hh"
#include "upstream/request_writer.hh"

using namespace atlas::upstream;
namespace http = atlas::http;

namespace {

// A request parsed by the real strict parser, as the proxy will see it.
struct parsed {
    std::string raw;
    std::vector<http::header_field> storage = std::vector<http::header_field>(64);
    http::request_head head;

    explicit parsed(std::string r) : raw(std::move(r)) {
        uint32_t scan = 0;
        const auto res = http::parse_request_head(raw, http::parse_limits{}, head, storage.data(),
                                                   uint32_t(storage.size()), scan);
        REQUIRE_MESSAGE(res == http::parse_result::complete, raw, " -> ",
                        head.error_reason ? head.error_reason : "incomplete");
    }
    std::span<const http::header_field> headers() const { return {head.headers, head.header_count}; }
};

const cidr_set &proxies() {
    static const cidr_set s = [] {
        cidr_set c;
        std::string err;
        c.add("10.0.0.0/8", err);
        return c;
    }();
    return s;
}

client_identity identity(const parsed &p, std::string_view peer) {
    client_identity id;
    REQUIRE(resolve_client(peer, p.headers(), proxies(), client_source::x_forwarded_for, id));
    return id;
}

// Writer with every forwarding header off unless a test turns it on, so outputs stay short.
forward_options bare() {
    forward_options o;
    o.x_forwarded_for = o.x_forwarded_proto = o.x_forwarded_host = o.forwarded = false;
    return o;
}

std::string write(const parsed &p, const forward_options &opt, std::string_view peer = "192.0.2.1:40000",
                  bool https = false) {
    std::string out;
    REQUIRE(write_request_head(p.head, identity(p, peer), https, framing_of(p.head), opt, out));
    return out;
}

std::string req(std::string_view line_and_fields) { return std::string(line_and_fields) + "\r\n"; }

} // namespace

TEST_CASE("writer: exact bytes for a GET") {
    parsed p(req("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n"
                 "Connection: keep-alive\r\n"));
    CHECK(write(p, bare()) == "GET /index.html HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "User-Agent: t/1\r\n"
                              "Accept: */*\r\n"
                              "\r\n");
}

TEST_CASE("writer: exact bytes with the default forwarding headers") {
    parsed p(req("GET / HTTP/1.1\r\nHost: example.com:8080\r\n"));
    CHECK(write(p, forward_options{}, "192.0.2.1:40000", true) == "GET / HTTP/1.1\r\n"
                                                                  "Host: example.com:8080\r\n"
                                                                  "X-Forwarded-For: 192.0.2.1\r\n"
                                                                  "X-Forwarded-Proto: https\r\n"
                                                                  "X-Forwarded-Host: example.com:8080\r\n"
                                                                  "\r\n");
}

TEST_CASE("writer: POST with Content-Length restates it after the fields") {
    parsed p(req("POST /submit HTTP/1.1\r\nContent-Length: 11\r\nHost: a\r\nContent-Type: text/plain\r\n"));
    CHECK(write(p, bare()) == "POST /submit HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Length: 11\r\n"
                              "\r\n");
    parsed zero(req("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"));
    CHECK(write(zero, bare()) == "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("writer: chunked body is re-chunked; the client's TE line is not copied") {
    parsed p(req("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: X-Sum\r\n"));
    CHECK(write(p, bare()) == "POST /up HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "Transfer-Encoding: chunked\r\n"
                              "\r\n");
}

TEST_CASE("writer: explicit framing overrides the client's") {
    parsed p(req("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"));
    std::string out;
    REQUIRE(write_request_head(p.head, identity(p, "192.0.2.1:1"), false, {body_kind::length, 1234}, bare(), out));
    CHECK(out == "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1234\r\n\r\n");
    out.clear();
    REQUIRE(write_request_head(p.head, identity(p, "192.0.2.1:1"), false, {}, bare(), out));
    CHECK(out == "POST /up HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST_CASE("writer: fields named in Connection are removed") {
    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\nX-Secret: s3cr3t\r\nConnection: close, X-Secret\r\n"
                 "X-Keep: 1\r\nconnection: x-other\r\nX-Other: 2\r\nKeep-Alive: timeout=5\r\n"));
    CHECK(write(p, bare()) == "GET / HTTP/1.1\r\nHost: a\r\nX-Keep: 1\r\n\r\n");
}

TEST_CASE("writer: Connection cannot remove what the proxy states itself") {
    parsed p(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                 "Connection: Host, Content-Length, X-Forwarded-For, X-Forwarded-Proto, Forwarded\r\n"));
    forward_options o;
    o.forwarded = true;
    CHECK(write(p, o) == "POST / HTTP/1.1\r\n"
                         "Host: a\r\n"
                         "X-Forwarded-For: 192.0.2.1\r\n"
                         "X-Forwarded-Proto: http\r\n"
                         "X-Forwarded-Host: a\r\n"
                         "Forwarded: for=192.0.2.1;proto=http;host=a\r\n"
                         "Content-Length: 3\r\n"
                         "\r\n");
}

TEST_CASE("writer: Proxy-* fields are all removed") {
    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic Zm9v\r\nProxy-Connection: keep-alive\r\n"
                 "proxy-foo: 1\r\nProxyish: kept\r\n"));
    CHECK(write(p, bare()) == "GET / HTTP/1.1\r\nHost: a\r\nProxyish: kept\r\n\r\n");
}

TEST_CASE("writer: Upgrade kept with the websocket option, dropped without") {
    const std::string ws = req("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
    parsed p(ws);
    forward_options o = bare();
    o.websocket = true;
    CHECK(forwards_upgrade(p.head, o));
    CHECK(write(p, o) == "GET /chat HTTP/1.1\r\n"
                         "Host: a\r\n"
                         "Upgrade: websocket\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "Connection: upgrade\r\n"
                         "\r\n");
    CHECK_FALSE(forwards_upgrade(p.head, bare()));
    CHECK(write(p, bare()) == "GET /chat HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n");
    // Upgrade without Connection: upgrade is not an upgrade request: dropped even with the option.
    parsed lone(req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"));
    CHECK(write(lone, o) == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    // Only WebSocket unless other protocols are listed (h2c would let a client bypass the routes).
    parsed h2c(req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                   "HTTP2-Settings: AAMAAABkAAQAAP__\r\n"));
    CHECK_FALSE(forwards_upgrade(h2c.head, o));
    CHECK(write(h2c, o) == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    parsed versioned(req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo, WebSocket/13\r\nConnection: upgrade\r\n"));
    CHECK(forwards_upgrade(versioned.head, o));
}

TEST_CASE("upgrade: allowed protocols by name, versions ignored; offered ones from every Upgrade field") {
    forward_options o = bare();
    CHECK_FALSE(upgrade_allowed("websocket", o));
    o.websocket = true;
    CHECK(upgrade_allowed("websocket", o));
    CHECK(upgrade_allowed("WebSocket/13", o));
    CHECK_FALSE(upgrade_allowed("websockets", o));
    CHECK_FALSE(upgrade_allowed("", o));
    CHECK_FALSE(upgrade_allowed("/13", o));
    o.upgrade_protocols = "echo, Bulk/2";
    CHECK(upgrade_allowed("ECHO/1", o));
    CHECK(upgrade_allowed("bulk", o));
    CHECK_FALSE(upgrade_allowed("ech", o));
    CHECK_FALSE(upgrade_allowed("h2c", o));

    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo/1, echo\r\nUpgrade: Bulk/3\r\nConnection: upgrade\r\n"));
    CHECK(upgrade_offered(p.head, "foo"));
    CHECK(upgrade_offered(p.head, "ECHO/7"));
    CHECK(upgrade_offered(p.head, "bulk/2"));
    CHECK_FALSE(upgrade_offered(p.head, "websocket"));
    CHECK_FALSE(upgrade_offered(p.head, ""));
    CHECK(forwards_upgrade(p.head, o));
    o.upgrade_protocols = "h2c";
    o.websocket = true;
    CHECK_FALSE(forwards_upgrade(p.head, o));
}

TEST_CASE("writer: strip_prefix table") {
    struct row {
        const char *path, *prefix, *out;
    };
    for (const row &r : {row{"/api/users", "/api", "/users"}, row{"/api", "/api", "/"}, row{"/api/", "/api", "/"},
                         row{"/apix", "/api", "/apix"}, row{"/apix/y", "/api", "/apix/y"},
                         row{"/api/users", "/api/", "/users"}, row{"/api", "/api/", "/"},
                         row{"/a/b/c", "/a/b", "/c"}, row{"/x/api/y", "/api", "/x/api/y"},
                         row{"/API/users", "/api", "/API/users"}, row{"/%61pi/users", "/api", "/%61pi/users"},
                         row{"/api//x", "/api", "//x"}, row{"/users", "", "/users"}, row{"/users", "/", "/users"},
                         row{"/", "/api", "/"}}) {
        CAPTURE(r.path);
        CAPTURE(r.prefix);
        CHECK(apply_strip_prefix(r.path, r.prefix) == r.out);
    }
    parsed p(req("GET /api/users/7?sort=name HTTP/1.1\r\nHost: a\r\n"));
    forward_options o = bare();
    o.strip_prefix = "/api";
    CHECK(write(p, o) == "GET /users/7?sort=name HTTP/1.1\r\nHost: a\r\n\r\n");
    parsed root(req("GET /api?x=1 HTTP/1.1\r\nHost: a\r\n"));
    CHECK(write(root, o) == "GET /?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    parsed star(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n"));
    CHECK(write(star, o) == "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST_CASE("writer: Host preserved by default, replaced when configured") {
    parsed p(req("GET / HTTP/1.1\r\nUser-Agent: u\r\nHost: Example.COM:8443\r\n"));
    CHECK(write(p, bare()) == "GET / HTTP/1.1\r\nHost: Example.COM:8443\r\nUser-Agent: u\r\n\r\n");
    forward_options o = bare();
    o.host = "backend.internal";
    o.x_forwarded_host = true;
    CHECK(write(p, o) == "GET / HTTP/1.1\r\nHost: backend.internal\r\nUser-Agent: u\r\n"
                         "X-Forwarded-Host: Example.COM:8443\r\n\r\n");
    // Absolute-form: the authority is the Host (RFC 9112 3.2.2); the target goes origin-form.
    parsed abs(req("GET http://origin.example/p?q HTTP/1.1\r\nHost: ignored.example\r\n"));
    CHECK(write(abs, bare()) == "GET /p?q HTTP/1.1\r\nHost: origin.example\r\n\r\n");
    // HTTP/1.0 without Host: the fallback; the version goes to 1.1 upstream.
    parsed old(req("GET /x HTTP/1.0\r\n"));
    o = bare();
    o.fallback_host = "10.1.1.1:8080";
    CHECK(write(old, o) == "GET /x HTTP/1.1\r\nHost: 10.1.1.1:8080\r\n\r\n");
    // No fallback either: an empty Host, what RFC 9112 3.2 asks for when the authority is
    // unknown. The parser leaves the absent Host a null view; writing it must not hand
    // memcpy a null pointer (UBSan's nonnull check, found by test_differential).
    CHECK(old.head.host.data() == nullptr);
    CHECK(write(old, bare()) == "GET /x HTTP/1.1\r\nHost: \r\n\r\n");
}

TEST_CASE("writer: X-Forwarded-For replaced from an untrusted peer") {
    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
                 "X-Forwarded-Host: evil\r\nForwarded: for=6.6.6.6\r\n"));
    forward_options o;
    o.forwarded = true;
    CHECK(write(p, o, "192.0.2.1:40000") == "GET / HTTP/1.1\r\n"
                                            "Host: a\r\n"
                                            "X-Forwarded-For: 192.0.2.1\r\n"
                                            "X-Forwarded-Proto: http\r\n"
                                            "X-Forwarded-Host: a\r\n"
                                            "Forwarded: for=192.0.2.1;proto=http;host=a\r\n"
                                            "\r\n");
}

TEST_CASE("writer: X-Forwarded-For appended from a trusted peer; others kept as received") {
    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.3\r\nX-Forwarded-Proto: https\r\n"
                 "x-forwarded-for: 10.0.0.2\r\nX-Forwarded-Host: public.example\r\n"
                 "Forwarded: for=203.0.113.9;proto=https\r\n"));
    forward_options o;
    o.forwarded = true;
    const client_identity id = identity(p, "10.0.0.1:5000");
    CHECK(id.client_text() == "203.0.113.9");
    CHECK(write(p, o, "10.0.0.1:5000") == "GET / HTTP/1.1\r\n"
                                          "Host: a\r\n"
                                          "X-Forwarded-Proto: https\r\n"
                                          "X-Forwarded-Host: public.example\r\n"
                                          "X-Forwarded-For: 203.0.113.9, 10.0.0.3, 10.0.0.2, 10.0.0.1\r\n"
                                          "Forwarded: for=203.0.113.9;proto=https, for=10.0.0.1;proto=http;host=a\r\n"
                                          "\r\n");
}

TEST_CASE("writer: Forwarded formatting for IPv4 and IPv6, host quoting") {
    parsed p(req("GET / HTTP/1.1\r\nHost: [2001:db8::80]:8080\r\n"));
    forward_options o = bare();
    o.forwarded = true;
    CHECK(write(p, o, "[2001:DB8::1]:40000", true) ==
          "GET / HTTP/1.1\r\nHost: [2001:db8::80]:8080\r\n"
          "Forwarded: for=\"[2001:db8::1]\";proto=https;host=\"[2001:db8::80]:8080\"\r\n\r\n");
    parsed v4(req("GET / HTTP/1.1\r\nHost: example.com\r\n"));
    CHECK(write(v4, o, "198.51.100.17:1") ==
          "GET / HTTP/1.1\r\nHost: example.com\r\nForwarded: for=198.51.100.17;proto=http;host=example.com\r\n\r\n");
    o.x_forwarded_for = true;
    CHECK(write(v4, o, "[::1]:1") == "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: ::1\r\n"
                                     "Forwarded: for=\"[::1]\";proto=http;host=example.com\r\n\r\n");
}

TEST_CASE("writer: switches off -> header absent; incoming ones dropped unless from a trusted peer") {
    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
                 "X-Forwarded-Host: h\r\nForwarded: for=6.6.6.6\r\n"));
    const std::string untrusted = write(p, bare(), "192.0.2.1:1");
    CHECK(untrusted == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    // From a trusted peer, with the switches off, they pass untouched and nothing is added.
    CHECK(write(p, bare(), "10.0.0.1:1") == "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n"
                                            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: h\r\n"
                                            "Forwarded: for=6.6.6.6\r\n\r\n");
    // Each switch alone.
    parsed plain(req("GET / HTTP/1.1\r\nHost: a\r\n"));
    forward_options o = bare();
    o.x_forwarded_proto = true;
    CHECK(write(plain, o) == "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n");
    o = bare();
    o.x_forwarded_host = true;
    CHECK(write(plain, o) == "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Host: a\r\n\r\n");
    o = bare();
    o.x_forwarded_for = true;
    CHECK(write(plain, o) == "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n");
}

TEST_CASE("writer: query and percent-encoding preserved byte-exact") {
    parsed p(req("GET /a%2Fb/%7Euser/caf%C3%A9?q=a%20b&x=%2F&&empty=&plus=1+2 HTTP/1.1\r\nHost: a\r\n"));
    CHECK(write(p, bare()) == "GET /a%2Fb/%7Euser/caf%C3%A9?q=a%20b&x=%2F&&empty=&plus=1+2 HTTP/1.1\r\nHost: a\r\n\r\n");
    parsed empty_q(req("GET /x? HTTP/1.1\r\nHost: a\r\n"));
    CHECK(write(empty_q, bare()) == "GET /x? HTTP/1.1\r\nHost: a\r\n\r\n");
    parsed dots(req("GET /a/../b/./c HTTP/1.1\r\nHost: a\r\n"));
    CHECK(write(dots, bare()) == "GET /a/../b/./c HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST_CASE("writer: values that look like framing pass unchanged, names keep their case") {
    parsed p(req("POST / HTTP/1.1\r\nHost: a\r\nX-Note: Content-Length: 0\r\nx-MiXeD: \"Transfer-Encoding: chunked\"\r\n"
                 "X-Bin: caf\xc3\xa9\t \x80\xff end\r\nContent-Length: 5\r\nX-Empty:\r\n"));
    CHECK(write(p, bare()) == "POST / HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "X-Note: Content-Length: 0\r\n"
                              "x-MiXeD: \"Transfer-Encoding: chunked\"\r\n"
                              "X-Bin: caf\xc3\xa9\t \x80\xff end\r\n"
                              "X-Empty: \r\n"
                              "Content-Length: 5\r\n"
                              "\r\n");
}

TEST_CASE("writer: duplicate end-to-end fields keep their order and count") {
    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nAccept: x\r\nCookie: b=2\r\n"));
    CHECK(write(p, bare()) == "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nAccept: x\r\nCookie: b=2\r\n\r\n");
}

TEST_CASE("writer: Expect dropped by default, passed when asked") {
    parsed p(req("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"));
    CHECK(write(p, bare()) == "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n");
    forward_options o = bare();
    o.pass_expect = true;
    CHECK(write(p, o) == "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
}

TEST_CASE("writer: appends to the buffer; a reused buffer stops growing") {
    parsed p(req("GET / HTTP/1.1\r\nHost: a\r\n"));
    const client_identity id = identity(p, "192.0.2.1:1");
    std::string out = "prefix|";
    REQUIRE(write_request_head(p.head, id, false, framing_of(p.head), bare(), out));
    CHECK(out == "prefix|GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    out.clear();
    REQUIRE(write_request_head(p.head, id, false, framing_of(p.head), bare(), out));
    const char *data = out.data();
    for (int i = 0; i < 3; ++i) {
        out.clear();
        REQUIRE(write_request_head(p.head, id, false, framing_of(p.head), bare(), out));
    }
    CHECK(out.data() == data);
}

TEST_CASE("writer: CONNECT (authority-form) is not written") {
    parsed p(req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"));
    std::string out = "x";
    CHECK_FALSE(write_request_head(p.head, identity(p, "192.0.2.1:1"), false, {}, bare(), out));
    CHECK(out == "x");
}

TEST_CASE("writer: more Connection lines than fit inline still all count") {
    std::string r = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 20; ++i) r += "Connection: X-H" + std::to_string(i) + "\r\n";
    for (int i = 0; i < 20; ++i) r += "X-H" + std::to_string(i) + ": v\r\n";
    r += "X-Stay: 1\r\n";
    parsed p(req(r));
    CHECK(write(p, bare()) == "GET / HTTP/1.1\r\nHost: a\r\nX-Stay: 1\r\n\r\n");
}

TEST_CASE("is_hop_by_hop") {
    const std::string_view none[] = {""};
    for (const char *n : {"Connection", "connection", "Keep-Alive", "TE", "te", "Trailer", "Transfer-Encoding",
                          "Upgrade", "Proxy-Authorization", "Proxy-Connection", "PROXY-X"}) {
        CAPTURE(n);
        CHECK(is_hop_by_hop(n, {}));
    }
    for (const char *n : {"Host", "Content-Length", "Trailers", "Proxy", "X-Forwarded-For", "Accept", "TEx"}) {
        CAPTURE(n);
        CHECK_FALSE(is_hop_by_hop(n, none));
    }
    const std::string_view conn[] = {"close, X-Secret", " x-other ,,\tKeep-Alive", "X-Secret2"};
    CHECK(is_hop_by_hop("x-secret", conn));
    CHECK(is_hop_by_hop("X-OTHER", conn));
    CHECK(is_hop_by_hop("X-Secret2", conn));
    CHECK_FALSE(is_hop_by_hop("X-Secret3", conn));
    CHECK_FALSE(is_hop_by_hop("X-Secre", conn));
    CHECK_FALSE(is_hop_by_hop("close,", conn));
}
