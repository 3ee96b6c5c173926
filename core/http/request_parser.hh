// Strict HTTP/1.1 request-head parser (RFC 9112 / RFC 9110).
//
// Parses in place: every string_view in request_head points into the caller's input (except
// path_raw "/" for an absolute-form target with an empty path, which points to a static
// literal). No heap allocation, no exceptions.
#pragma once

#include <cstdint>
#include <string_view>

namespace atlas::http {

struct header_field {
    std::string_view name, value; // value has OWS trimmed
};

struct parse_limits {
    uint32_t max_request_line = 8192; // request-line bytes, excluding its CRLF -> 414
    uint32_t max_header_bytes = 16384; // whole head incl. request line and final CRLF CRLF -> 431
    uint32_t max_headers = 100;        // field lines -> 431
};

enum class parse_result { complete, incomplete, error };

struct request_head {
    std::string_view method, target;  // as received
    std::string_view path_raw, query; // path part of the target (still percent-encoded) and query without '?'
                                      // ("*" for asterisk-form, empty for authority-form)
    std::string_view authority;       // from absolute-form ("http://a.b:8/x") or authority-form (CONNECT), else empty
    std::string_view host;            // effective host: authority if absolute-form, else Host header value
    uint8_t version_minor = 1;        // 0 or 1 (HTTP/1.2..1.9 are treated as 1.1 per RFC 9110 2.5)
    header_field *headers = nullptr;
    uint32_t header_count = 0;        // points into caller storage
    int64_t content_length = -1;      // -1 = no Content-Length
    bool chunked = false, keep_alive = true, expect_continue = false, upgrade = false, is_head = false;
    uint32_t head_length = 0;         // bytes of the head incl. the final CRLF CRLF (and skipped leading CRLFs)
    uint16_t error_status = 0;        // set when parse_result::error: 400, 414, 431, 501, 505, 417
    const char *error_reason = nullptr; // static string, short, for logs ("bare LF in header", ...)
};

// Parses the head at the start of `input`. `scan_from` is an in/out hint: the caller keeps it per
// connection (start 0) and passes it back when more bytes were appended, so a slow client costs
// O(n) total, not O(n^2). It is opaque (a resume offset plus a small parser state); the bytes
// already in `input` must not change between calls. On `complete` and `error` it is reset to 0,
// ready for the next request (whose input then starts after head_length + body).
//
// On `incomplete`, limits are still enforced (request line longer than max_request_line without
// its CRLF -> 414; more than max_header_bytes buffered without the end of the head -> 431), and an
// obviously invalid prefix (a non-token char in the method, a bad char in the target, a NUL, a
// bare CR/LF, ...) fails at once instead of waiting for the rest of the head.
//
// `storage` receives the header fields; at most min(limits.max_headers, storage_count) fit, more
// is 431. expect_continue is set only for HTTP/1.1 requests that announce a body.
parse_result parse_request_head(std::string_view input, const parse_limits &limits, request_head &out,
                                header_field *storage, uint32_t storage_count, uint32_t &scan_from);

} // namespace atlas::http
