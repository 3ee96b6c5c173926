// Shared by the request and response head targets: where a parsed view may point, and the
// verdict of the same bytes fed as growing prefixes (carrying scan_from, as a connection does).
#pragma once

#include <string>
#include <string_view>

#include "fuzz_check.hh"
#include "http_describe.hh"

namespace atlas::fuzz {

inline void check_inside(std::string_view part, std::string_view in) {
    if (part.empty()) return;
    FUZZ_CHECK(part.data() >= in.data() && part.data() + part.size() <= in.data() + in.size());
}

// parse(view, head, fields, count, scan) -> http::parse_result; every prefix in its own
// exact-size buffer. Returns describe() of the first verdict that is not incomplete.
template <class Head, class Parse>
std::string verdict_in_pieces(std::string_view in, uint8_t split, Parse parse) {
    constexpr uint32_t k_storage = 64;
    http::header_field fields[k_storage];
    Head h;
    uint32_t scan = 0;
    for (size_t k : cuts(split, in.size())) {
        test::exact_buf part(in.substr(0, k));
        const http::parse_result r = parse(part.view(), h, fields, k_storage, scan);
        if (r != http::parse_result::incomplete) return test::describe(r, h);
    }
    return "incomplete";
}

}  // namespace atlas::fuzz
