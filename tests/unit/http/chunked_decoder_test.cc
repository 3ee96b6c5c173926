#include "http/chunked_decoder.hh"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

using atlas::http::chunked_decoder;
using namespace std::string_literals;

namespace {

using st = chunked_decoder::status;

struct run_result {
    st status = st::need_more;
    std::string body;
    size_t consumed = 0; // total over all pieces
    uint64_t body_bytes = 0;
    std::string reason;
    bool operator==(const run_result &o) const {
        return status == o.status && body == o.body && consumed == o.consumed && body_bytes == o.body_bytes &&
               reason == o.reason;
    }
};

// Feeds `in` split at `cuts` (ascending), each piece in its own exact-size heap buffer so ASan
// catches a read past a piece. Stops at the first piece that ends the body or fails.
run_result run(std::string_view in, std::vector<size_t> cuts) {
    cuts.push_back(in.size());
    chunked_decoder d;
    run_result r;
    size_t from = 0;
    for (size_t cut : cuts) {
        if (cut < from) continue;
        const size_t len = cut - from;
        std::unique_ptr<char[]> buf(new char[len ? len : 1]);
        if (len) std::memcpy(buf.get(), in.data() + from, len);
        size_t used = 999999;
        r.status = d.feed(std::string_view(buf.get(), len), used, [&](std::string_view data) {
            REQUIRE(!data.empty());
            REQUIRE(data.data() >= buf.get());
            REQUIRE(data.data() + data.size() <= buf.get() + len);
            r.body.append(data);
        });
        REQUIRE(used <= len);
        r.consumed += used;
        if (r.status == st::need_more) REQUIRE(used == len);
        from = cut;
        if (r.status != st::need_more) break;
    }
    r.body_bytes = d.body_bytes();
    r.reason = d.error_reason() ? d.error_reason() : "";
    REQUIRE(r.body_bytes == r.body.size());
    if (r.status == st::error) REQUIRE(!r.reason.empty());
    return r;
}

run_result run_whole(std::string_view in) { return run(in, {}); }

run_result run_bytewise(std::string_view in) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
    return run(in, cuts);
}

run_result run_random(std::string_view in, std::mt19937 &rng) {
    std::vector<size_t> cuts;
    if (!in.empty())
        for (size_t i = 0, n = rng() % 8; i < n; ++i) cuts.push_back(rng() % in.size());
    std::sort(cuts.begin(), cuts.end());
    return run(in, cuts);
}

struct vec {
    const char *label;
    std::string input;
    st expect;
    std::string body;  // expected body (done / need_more)
    long consumed;     // expected total consumed on done; -1 = whole input
};

std::vector<vec> vectors() {
    const std::string long_ext_ok = "5;" + std::string(4094, 'e') + "\r\nhello\r\n0\r\n\r\n";  // line = 4096
    const std::string long_ext_bad = "5;" + std::string(4095, 'e') + "\r\nhello\r\n0\r\n\r\n"; // line = 4097
    // trailer section = "X: " + value + CRLF + CRLF
    const std::string trailer_ok = "0\r\nX: " + std::string(8192 - 7, 't') + "\r\n\r\n";  // section = 8192
    const std::string trailer_bad = "0\r\nX: " + std::string(8192 - 6, 't') + "\r\n\r\n"; // section = 8193
    return {
        // ---- valid ------------------------------------------------------------------------------
        {"one chunk", "5\r\nhello\r\n0\r\n\r\n", st::done, "hello", -1},
        {"two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", st::done, "hello world", -1},
        {"hex sizes", "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", st::done, "0123456789abcdefghij", -1},
        {"data may contain CRLF", "3\r\na\r\n\r\n0\r\n\r\n", st::done, "a\r\n", -1},
        {"binary data", "4\r\n\0\xff\r\n\r\n0\r\n\r\n"s, st::done, "\0\xff\r\n"s, -1},
        {"extension", "5;foo=bar\r\nhello\r\n0\r\n\r\n", st::done, "hello", -1},
        {"extension without value", "5;foo\r\nhello\r\n0;last\r\n\r\n", st::done, "hello", -1},
        {"extensions with BWS", "5 ; foo = bar ;\tbaz\r\nhello\r\n0 ;x\r\n\r\n", st::done, "hello", -1},
        {"quoted extension", "5;a=\"x y;\\\"z\"\r\nhello\r\n0\r\n\r\n", st::done, "hello", -1},
        {"quoted then more", "5;a=\"\" ; b=c\r\nhello\r\n0\r\n\r\n", st::done, "hello", -1},
        {"trailers", "0\r\nX-Trailer: v\r\nY: \r\nZ:\tw x\t\r\n\r\n", st::done, "", -1},
        {"16 hex digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", st::done, "hello", -1},
        // Leading zeros are 1*HEXDIG like any other digit (nginx and HAProxy take them too):
        // only significant digits count towards the 64-bit bound.
        {"20 digits, zero-padded", "00000000000000000005\r\nhello\r\n0\r\n\r\n", st::done, "hello", -1},
        {"zero-padded 16 significant digits", "0000ffffffffffffffff\r\n", st::need_more, "", -1},
        {"zero-padded last-chunk", "00000000000000000000000\r\n\r\n", st::done, "", -1},
        {"last-chunk of zeros", "000\r\n\r\n", st::done, "", -1},
        {"stops after the body", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", st::done, "hello", 15},
        {"chunk line at the limit", long_ext_ok, st::done, "hello", -1},
        {"trailer section at the limit", trailer_ok, st::done, "", -1},
        // ---- incomplete ---------------------------------------------------------------------------
        {"empty", "", st::need_more, "", -1},
        {"partial data", "5\r\nhel", st::need_more, "hel", -1},
        {"before data CRLF", "5\r\nhello", st::need_more, "hello", -1},
        {"no final CRLF", "5\r\nhello\r\n0\r\n", st::need_more, "hello", -1},
        {"in trailers", "0\r\nX: y\r\n", st::need_more, "", -1},
        {"largest size", "ffffffffffffffff\r\n", st::need_more, "", -1},
        // ---- errors ------------------------------------------------------------------------------
        {"missing size", "\r\n", st::error, "", 0},
        {"non-hex size", "g\r\n", st::error, "", 0},
        {"negative size", "-5\r\n", st::error, "", 0},
        {"0x prefix", "0x5\r\n", st::error, "", 0},
        {"leading space", " 5\r\n", st::error, "", 0},
        {"trailing space without extension", "5 \r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"17 significant hex digits", "10000000000000000\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"zero-padded 17 significant digits", "0010000000000000000\r\n", st::error, "", 0},
        {"bare LF after size", "5\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"bare CR after size", "5\rhello\r\n0\r\n\r\n", st::error, "", 0},
        {"CR CR LF", "5\r\r\n", st::error, "", 0},
        {"data longer than size", "5\r\nhelloX\r\n0\r\n\r\n", st::error, "hello", 0},
        {"bare LF after data", "5\r\nhello\n0\r\n\r\n", st::error, "hello", 0},
        {"bare CR after data", "5\r\nhello\r0\r\n\r\n", st::error, "hello", 0},
        {"empty extension", "5;\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"empty extension value", "5;a=\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"extension without name", "5;=b\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"space inside extension", "5;a b\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"unterminated quoted value", "5;a=\"x\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"CTL in quoted value", "5;a=\"x\x01\"\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"garbage after quoted value", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", st::error, "", 0},
        {"chunk line too long", long_ext_bad, st::error, "", 0},
        {"trailer obs-fold", "0\r\nX: v\r\n w\r\n\r\n", st::error, "", 0},
        {"trailer leading space", "0\r\n X: v\r\n\r\n", st::error, "", 0},
        {"trailer bare LF", "0\r\nX: v\n\r\n", st::error, "", 0},
        {"trailer NUL", "0\r\nX: a\0\r\n\r\n"s, st::error, "", 0},
        {"trailer space before colon", "0\r\nX : v\r\n\r\n", st::error, "", 0},
        {"trailer empty name", "0\r\n: v\r\n\r\n", st::error, "", 0},
        {"trailer without colon", "0\r\nX\r\n\r\n", st::error, "", 0},
        {"bare CR at the end", "0\r\n\rX", st::error, "", 0},
        {"bare LF at the end", "0\r\n\n", st::error, "", 0},
        {"trailer section too large", trailer_bad, st::error, "", 0},
    };
}

} // namespace

TEST_CASE("chunked vectors: whole, byte at a time and random splits agree") {
    std::mt19937 rng(77);
    const auto vs = vectors();
    CHECK(vs.size() >= 50);
    for (const auto &v : vs) {
        CAPTURE(v.label);
        const run_result whole = run_whole(v.input);
        CHECK(whole.status == v.expect);
        CHECK(whole.body == v.body);
        if (v.expect == st::done) CHECK(whole.consumed == (v.consumed < 0 ? v.input.size() : size_t(v.consumed)));
        if (v.expect == st::need_more) CHECK(whole.consumed == v.input.size());
        CHECK(run_bytewise(v.input) == whole);
        for (int i = 0; i < 4; ++i) CHECK(run_random(v.input, rng) == whole);
    }
}

TEST_CASE("chunked: data is handed out as views, without splitting a buffered chunk") {
    chunked_decoder d;
    const std::string in = "b\r\nhello world\r\n0\r\n\r\n";
    std::vector<std::string_view> pieces;
    size_t used = 0;
    REQUIRE(d.feed(in, used, [&](std::string_view s) { pieces.push_back(s); }) == st::done);
    REQUIRE(pieces.size() == 1);
    CHECK(pieces[0] == "hello world");
    CHECK(pieces[0].data() == in.data() + 3); // a view into the input, no copy
    CHECK(used == in.size());
    CHECK(d.body_bytes() == 11);
}

TEST_CASE("chunked: state after done and error, reset") {
    chunked_decoder d;
    size_t used = 0;
    auto ignore = [](std::string_view) {};
    REQUIRE(d.feed("0\r\n\r\nXYZ", used, ignore) == st::done);
    CHECK(used == 5);
    CHECK(d.feed("more", used, ignore) == st::done); // done is final
    CHECK(used == 0);

    d.reset();
    CHECK(d.body_bytes() == 0);
    REQUIRE(d.feed("z\r\n", used, ignore) == st::error);
    CHECK(std::string(d.error_reason()) == "invalid chunk size");
    CHECK(d.feed("5\r\nhello\r\n", used, ignore) == st::error); // error is final
    CHECK(used == 0);

    d.reset();
    CHECK(d.error_reason() == nullptr);
    REQUIRE(d.feed("2\r\nok\r\n0\r\n\r\n", used, ignore) == st::done);
    CHECK(d.body_bytes() == 2);
}

TEST_CASE("chunked: a large body streams through in pieces") {
    std::mt19937 rng(5);
    std::string in, expect;
    for (int i = 0; i < 200; ++i) {
        const size_t n = 1 + rng() % 3000;
        std::string data(n, '\0');
        for (auto &c : data) c = static_cast<char>(rng());
        char hex[32];
        std::snprintf(hex, sizeof hex, (i % 2) ? "%zx" : "%zX", n);
        in += hex;
        if (i % 7 == 0) in += ";i=" + std::to_string(i);
        in += "\r\n" + data + "\r\n";
        expect += data;
    }
    in += "0\r\nDone: yes\r\n\r\n";
    const run_result whole = run_whole(in);
    REQUIRE(whole.status == st::done);
    CHECK(whole.body == expect);
    CHECK(whole.consumed == in.size());
    for (int i = 0; i < 5; ++i) CHECK(run_random(in, rng) == whole);
}

TEST_CASE("chunked randomized: mutated bodies never read out of bounds and split-invariant") {
    std::mt19937 rng(99);
    const auto vs = vectors();
    static const char interesting[] = {'\r', '\n', ' ', ';', '=', '"', '\\', '\0', 'f', '0', ':', '\t'};
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s = vs[rng() % vs.size()].input;
        if (s.size() > 600) s.resize(600);
        for (int e = 0, n = 1 + int(rng() % 3); e < n; ++e) {
            if (s.empty()) s = "0";
            const size_t at = rng() % s.size();
            switch (rng() % 3) {
            case 0: s[at] = static_cast<char>(rng()); break;
            case 1: s[at] = interesting[rng() % sizeof interesting]; break;
            case 2: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), interesting[rng() % sizeof interesting]); break;
            }
        }
        CAPTURE(s);
        const run_result whole = run_whole(s);
        REQUIRE(whole.consumed <= s.size());
        if (iter % 3 == 0) REQUIRE(run_bytewise(s) == whole);
        else REQUIRE(run_random(s, rng) == whole);
    }
}

TEST_CASE("chunked: a chunk size over 64 bits is refused whatever its leading zeros") {
    for (const char *in : {"10000000000000000\r\n", "000000010000000000000000\r\n"}) {
        CAPTURE(in);
        chunked_decoder d;
        size_t used = 0;
        REQUIRE(d.feed(in, used, [](std::string_view) {}) == st::error);
        CHECK(std::string(d.error_reason()) == "chunk size does not fit in 64 bits");
    }
}
