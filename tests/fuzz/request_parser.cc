// Fuzz target: the HTTP request-head parser. Input: one split byte, then the bytes a client
// sends. Properties: no read outside the input (exact-size buffers under ASan), every view
// points into the input, and feeding the bytes in pieces (carrying scan_from) gives exactly
// the verdict of parsing them whole.
#include "head_pieces.hh"

namespace {

using namespace atlas::http;
using atlas::test::describe;
using atlas::fuzz::check_inside;
using atlas::test::exact_buf;

constexpr uint32_t k_storage = 64;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t split = data[0];
    const std::string_view in(reinterpret_cast<const char *>(data) + 1, size - 1);
    // Small limits too, so the fuzzer reaches 414 and 431 with short inputs.
    parse_limits lim;
    if (split & 0x80) lim = parse_limits{64, 256, 8};

    exact_buf whole(in);
    header_field st[k_storage];
    request_head h;
    uint32_t scan = 0;
    const parse_result r = parse_request_head(whole.view(), lim, h, st, k_storage, scan);
    if (r != parse_result::incomplete) FUZZ_CHECK(scan == 0);
    if (r == parse_result::error) FUZZ_CHECK(h.error_status >= 400 && h.error_reason);
    if (r == parse_result::complete) {
        const std::string_view v = whole.view();
        FUZZ_CHECK(h.head_length <= v.size());
        FUZZ_CHECK(h.header_count <= lim.max_headers);
        check_inside(h.method, v);
        check_inside(h.target, v);
        check_inside(h.query, v);
        check_inside(h.authority, v);
        check_inside(h.host, v);
        if (h.path_raw != "/") check_inside(h.path_raw, v);
        for (uint32_t i = 0; i < h.header_count; ++i) {
            check_inside(h.headers[i].name, v);
            check_inside(h.headers[i].value, v);
        }
    }
    const std::string verdict = describe(r, h);

    const std::string pieces = atlas::fuzz::verdict_in_pieces<request_head>(
        in, split & 0x7f, [&](std::string_view v, request_head &h2, header_field *f, uint32_t n, uint32_t &sc) {
            return parse_request_head(v, lim, h2, f, n, sc);
        });
    if (pieces != verdict) {
        std::fprintf(stderr, "whole:  %s\npieces: %s\n", verdict.c_str(), pieces.c_str());
        FUZZ_CHECK(pieces == verdict);
    }
    return 0;
}
