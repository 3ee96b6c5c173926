// Test support shared by the HTTP parser unit tests and the fuzz targets: a byte-exact heap
// copy of an input, and everything a parser reports as one line of text, so results over
// different buffers and splits can be compared.
#pragma once

#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include "http/request_parser.hh"
#include "http/response_parser.hh"

namespace atlas::test {

// A byte-exact heap copy, so ASan flags any read past the end of what a parser was given.
struct exact_buf {
    std::unique_ptr<char[]> p;
    size_t n;
    explicit exact_buf(std::string_view s) : p(new char[s.size() ? s.size() : 1]), n(s.size()) {
        if (n) std::memcpy(p.get(), s.data(), n);
    }
    std::string_view view() const { return {p.get(), n}; }
};

inline const char *kind_name(http::response_body_kind k) {
    using kind = http::response_body_kind;
    switch (k) {
    case kind::none: return "none";
    case kind::length: return "length";
    case kind::chunked: return "chunked";
    case kind::until_close: return "until_close";
    case kind::tunnel: return "tunnel";
    }
    return "?";
}

inline std::string describe(http::parse_result r, const http::request_head &h) {
    std::ostringstream o;
    if (r == http::parse_result::incomplete) return "incomplete";
    if (r == http::parse_result::error) {
        o << "error " << h.error_status << " (" << (h.error_reason ? h.error_reason : "?") << ")";
        return o.str();
    }
    o << "complete len=" << h.head_length << " m=" << h.method << " t=" << h.target << " p=" << h.path_raw
      << " q=" << h.query << " a=" << h.authority << " host=" << h.host << " v=1." << int(h.version_minor)
      << " cl=" << h.content_length << " chunked=" << h.chunked << " ka=" << h.keep_alive
      << " expect=" << h.expect_continue << " upgrade=" << h.upgrade << " head=" << h.is_head;
    for (uint32_t i = 0; i < h.header_count; ++i) o << " [" << h.headers[i].name << "=" << h.headers[i].value << "]";
    return o.str();
}

inline std::string describe(http::parse_result r, const http::response_head &h) {
    if (r == http::parse_result::incomplete) return "incomplete";
    if (r == http::parse_result::error) return "error (" + std::string(h.error_reason ? h.error_reason : "?") + ")";
    std::ostringstream o;
    o << "complete len=" << h.head_length << " v=1." << int(h.version_minor) << " s=" << h.status << " r=" << h.reason
      << " cl=" << h.content_length << " te=" << h.transfer_encoding << " chunked=" << h.chunked
      << " ka=" << h.keep_alive << " cu=" << h.connection_upgrade << " up=" << h.upgrade
      << " kat=" << h.keep_alive_timeout_s << " framing=" << kind_name(framing(h, false, false));
    for (uint32_t i = 0; i < h.header_count; ++i) o << " [" << h.headers[i].name << "=" << h.headers[i].value << "]";
    return o.str();
}

}  // namespace atlas::test
