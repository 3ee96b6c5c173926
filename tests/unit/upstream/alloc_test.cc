// The per-request pieces must not touch the heap: the identity walk and, into a buffer that has
// already grown to size, the writer.
#include <doctest/doctest.h>

#include "alloc_counter.hh"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "http/request_parser.hh"
#include "upstream/request_writer.hh"


using namespace atlas::upstream;
namespace http = atlas::http;

TEST_CASE("alloc: identity walk and writer allocate nothing in steady state") {
    const std::string raw =
        "POST /api/v1/items?x=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: t\r\nConnection: keep-alive, X-Hop\r\n"
        "X-Hop: 1\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.3\r\nForwarded: for=203.0.113.9;proto=https, "
        "for=\"[2001:db8::1]:80\"\r\nContent-Length: 4\r\nUpgrade: websocket\r\nProxy-Authorization: x\r\n\r\n";
    std::vector<http::header_field> storage(32);
    http::request_head head;
    uint32_t scan = 0;
    REQUIRE(http::parse_request_head(raw, http::parse_limits{}, head, storage.data(), 32, scan) ==
            http::parse_result::complete);
    cidr_set trusted;
    std::string err;
    REQUIRE(trusted.add("10.0.0.0/8", err));
    REQUIRE(trusted.add("2001:db8::/32", err));
    forward_options opt;
    opt.forwarded = true;
    opt.strip_prefix = "/api";
    std::string out;
    out.reserve(4096);

    const uint64_t before = atlas::test::allocations();
    for (int i = 0; i < 100; ++i) {
        client_identity a, b;
        REQUIRE(resolve_client("10.0.0.1:5000", {head.headers, head.header_count}, trusted,
                               client_source::x_forwarded_for, a));
        REQUIRE(resolve_client("10.0.0.1:5000", {head.headers, head.header_count}, trusted,
                               client_source::forwarded, b));
        out.clear();
        REQUIRE(write_request_head(head, a, true, framing_of(head), opt, out));
    }
    CHECK(atlas::test::allocations() == before);
    CHECK(out.find("X-Forwarded-For: 203.0.113.9, 10.0.0.3, 10.0.0.1\r\n") != std::string::npos);
}
