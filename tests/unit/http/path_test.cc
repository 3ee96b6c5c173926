#include "http/path.hh"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using atlas::http::normalize_path;
using namespace std::string_literals;

namespace {
struct path_case {
    std::string raw;
    const char *expect; // nullptr = must be rejected
};
} // namespace

TEST_CASE("normalize_path table") {
    const std::vector<path_case> cases = {
        // plain and merged slashes
        {"/", "/"},
        {"/index.html", "/index.html"},
        {"/a/b/c", "/a/b/c"},
        {"/a/b/", "/a/b/"},
        {"//", "/"},
        {"///a//b///", "/a/b/"},
        // dot segments (RFC 3986 5.2.4), trailing slash kept
        {"/.", "/"},
        {"/./", "/"},
        {"/a/.", "/a/"},
        {"/a/./b", "/a/b"},
        {"/a/..", "/"},
        {"/a/../", "/"},
        {"/a/b/..", "/a/"},
        {"/a/b/../c", "/a/c"},
        {"/a/b/c/../../d", "/a/d"},
        {"/a/./../b", "/b"},
        {"/a//../b", "/b"},
        {"/...", "/..."},
        {"/a/..b/.c", "/a/..b/.c"},
        {"/a.", "/a."},
        // percent-decoding, before dot-segment removal
        {"/a%20b", "/a b"},
        {"/%7Euser", "/~user"},
        {"/caf%C3%A9", "/caf\xC3\xA9"},
        {"/a%2fb", "/a/b"},
        {"/a%2Fb%2F", "/a/b/"},
        {"/a/%2e/b", "/a/b"},
        {"/a/b/%2E%2E/c", "/a/c"},
        {"/a/.%2e/c", "/c"},
        {"/a/b/..%2fc", "/a/c"},
        {"/%25", "/%"},
        {"/%252e%252e/", "/%2e%2e/"}, // decoded once only
        {"/\xC3\xA9", "/\xC3\xA9"},   // raw UTF-8 passes through
        {"/a?b", "/a?b"},             // not a query here: the caller split it off already
        // rejected: escaping the root
        {"/..", nullptr},
        {"/../", nullptr},
        {"/../a", nullptr},
        {"/a/../..", nullptr},
        {"/a/../../b", nullptr},
        {"/%2e%2e", nullptr},
        {"/%2E%2e/etc/passwd", nullptr},
        {"/a%2f..%2f..", nullptr},
        {"/./..", nullptr},
        // rejected: bad escapes
        {"/%", nullptr},
        {"/a%", nullptr},
        {"/%4", nullptr},
        {"/%G1", nullptr},
        {"/%1G", nullptr},
        {"/% 1", nullptr},
        // rejected: control characters, decoded or raw
        {"/%00", nullptr},
        {"/a%00.html", nullptr},
        {"/%0a", nullptr},
        {"/%0D%0A", nullptr},
        {"/%1f", nullptr},
        {"/%7F", nullptr},
        {"/a\x01", nullptr},
        {"/a\0b"s, nullptr},
        // rejected: not starting with '/'
        {"", nullptr},
        {"a/b", nullptr},
        {"*", nullptr},
        {"%2Fa", nullptr},
        {"http://x/", nullptr},
    };
    for (const auto &c : cases) {
        CAPTURE(c.raw);
        std::string out = "junk";
        const bool ok = normalize_path(c.raw, out);
        if (c.expect) {
            CHECK(ok);
            CHECK(out == c.expect);
        } else {
            CHECK_FALSE(ok);
            CHECK(out.empty());
        }
    }
}

TEST_CASE("normalize_path output is already normal") {
    // Normalising twice changes nothing (when the output holds no '%'), and the output never
    // contains "//", "/./" or "/../".
    const char *inputs[] = {"/a//b/./c/../d/", "/x/%2e/y/..", "/1/2/3/../../4", "/%41%42/./"};
    for (const char *in : inputs) {
        std::string once, twice;
        REQUIRE(normalize_path(in, once));
        REQUIRE(normalize_path(once, twice));
        CHECK(once == twice);
        CHECK(once.find("//") == std::string::npos);
        CHECK(once.find("/./") == std::string::npos);
        CHECK(once.find("/../") == std::string::npos);
    }
}

TEST_CASE("normalize_path reuses the output buffer") {
    std::string out;
    out.reserve(256);
    const auto *data = out.data();
    REQUIRE(normalize_path("/a/b/../c", out));
    CHECK(out == "/a/c");
    CHECK(out.data() == data);
}
