// Fuzz target: the upstream response-head parser and its framing decision. Input: one split
// byte, then the bytes an upstream sends. Properties: no read outside the input, every view
// points into it, pieces give the verdict of the whole, and a parsed head has a framing that
// is consistent with its fields.
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
    response_limits lim;
    if (split & 0x80) lim = response_limits{64, 256, 8};

    exact_buf whole(in);
    header_field st[k_storage];
    response_head h;
    uint32_t scan = 0;
    const parse_result r = parse_response_head(whole.view(), lim, h, st, k_storage, scan);
    if (r != parse_result::incomplete) FUZZ_CHECK(scan == 0);
    if (r == parse_result::error) FUZZ_CHECK(h.error_reason != nullptr);
    if (r == parse_result::complete) {
        const std::string_view v = whole.view();
        FUZZ_CHECK(h.head_length <= v.size());
        FUZZ_CHECK(h.status >= 100 && h.status <= 999);
        FUZZ_CHECK(h.header_count <= lim.max_headers);
        check_inside(h.reason, v);
        check_inside(h.upgrade, v);
        for (uint32_t i = 0; i < h.header_count; ++i) {
            check_inside(h.headers[i].name, v);
            check_inside(h.headers[i].value, v);
        }
        FUZZ_CHECK(!(h.transfer_encoding && h.content_length >= 0));
        FUZZ_CHECK(!h.chunked || h.transfer_encoding);
        for (int head = 0; head < 2; ++head)
            for (int connect = 0; connect < 2; ++connect) {
                const response_body_kind k = framing(h, head, connect);
                if (h.status == 101) FUZZ_CHECK(k == response_body_kind::tunnel);
                else if (h.is_interim() || head) FUZZ_CHECK(k == response_body_kind::none);
                if (k == response_body_kind::length) FUZZ_CHECK(h.content_length >= 0);
                if (k == response_body_kind::chunked) FUZZ_CHECK(h.chunked);
            }
    }
    const std::string verdict = describe(r, h);

    const std::string pieces = atlas::fuzz::verdict_in_pieces<response_head>(
        in, split & 0x7f, [&](std::string_view v, response_head &h2, header_field *f, uint32_t n, uint32_t &sc) {
            return parse_response_head(v, lim, h2, f, n, sc);
        });
    if (pieces != verdict) {
        std::fprintf(stderr, "whole:  %s\npieces: %s\n", verdict.c_str(), pieces.c_str());
        FUZZ_CHECK(pieces == verdict);
    }
    return 0;
}
