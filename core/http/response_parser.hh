// Strict HTTP/1.1 response-head parser for upstream responses (RFC 9112 / RFC 9110), used by the
// reverse proxy. Same contract as the request parser: parses in place (every string_view in
// response_head points into the caller's input), header fields go to caller storage, no heap
// allocation, no exceptions, resumable through a scan_from hint. The field section is scanned by
// the very same code as request heads (field_lines.hh), so it is exactly as strict.
//
// Any error means the upstream response cannot be relayed safely: the proxy answers 502 and closes
// the upstream connection.
#pragma once

#include <cstdint>
#include <string_view>

#include "http/request_parser.hh" // header_field, parse_result

namespace atlas::http {

// The error_reason of a head longer than max_head_bytes (compared by pointer: the proxy
// names its configured limit then). An array, not a pointer to a literal: an inline
// array is one object with one address in every translation unit, whereas equal
// literals are merged only when the compiler chooses to (ASan builds do not).
inline constexpr char head_too_large[] = "response head too large";

struct response_limits {
    uint32_t max_status_line = 8192; // status-line bytes, excluding its CRLF
    uint32_t max_head_bytes = 65536; // whole head incl. status line and final CRLF CRLF
    uint32_t max_headers = 100;      // field lines
};

// How the bytes after a (final) response head are delimited (RFC 9112 6.3).
enum class response_body_kind {
    none,        // no body: the next response (or the end of an interim one) follows at once
    length,      // content_length bytes
    chunked,     // chunked transfer coding (chunked_decoder)
    until_close, // everything until the upstream closes; the connection cannot be reused
    tunnel,      // HTTP is over on this connection: 2xx to CONNECT, or 101 Switching Protocols
};

struct response_head {
    uint8_t version_minor = 1;        // 0 or 1 (HTTP/1.2..1.9 are treated as 1.1 per RFC 9110 2.5)
    uint16_t status = 0;              // 100..999
    std::string_view reason;          // may be empty
    header_field *headers = nullptr;
    uint32_t header_count = 0;        // points into caller storage
    int64_t content_length = -1;      // -1 = no Content-Length
    bool transfer_encoding = false;   // a Transfer-Encoding field is present (then no Content-Length)
    bool chunked = false;             // ... and its final (and only) coding is chunked
    bool keep_alive = true;           // per Connection and version; see connection_reusable()
    bool connection_upgrade = false;  // Connection lists "upgrade"
    std::string_view upgrade;         // value of the (first) Upgrade field, empty if none
    int32_t keep_alive_timeout_s = -1; // Keep-Alive: timeout=N (smallest valid one), else -1
    uint32_t head_length = 0;         // bytes of the head incl. the final CRLF CRLF
    const char *error_reason = nullptr; // set when parse_result::error: static string for logs

    // 1xx other than 101 is an interim response (RFC 9110 15.2): the proxy handles or relays it
    // (100 Continue, 103 Early Hints) and parses the final response from input + head_length with
    // a fresh scan_from (parse_response_head resets it to 0 on complete). 101 Switching Protocols
    // is final: after its head the connection no longer speaks HTTP (framing() says tunnel).
    bool is_interim() const { return status >= 100 && status < 200 && status != 101; }
};

// Parses the response head at the start of `input`. `scan_from` is an in/out hint kept per upstream
// connection (start 0) and passed back when more bytes were appended, so a slow upstream costs O(n)
// total; the bytes already in `input` must not change between calls. On `complete` and `error` it
// is reset to 0. On `incomplete`, limits are still enforced and an invalid prefix fails at once.
// `storage` receives the header fields; more than min(limits.max_headers, storage_count) is an error.
//
// Framing fields are validated here, independently of the request (RFC 9112 6.1, 6.3, RFC 9110
// 8.6): Content-Length must be 1*DIGIT (identical repeated values count as one, differing ones
// are an error); Transfer-Encoding together with Content-Length, Transfer-Encoding in an HTTP/1.0
// response, a malformed Transfer-Encoding, chunked applied twice or with parameters, and codings
// stacked under a final chunked (we could not undo them) are errors.
parse_result parse_response_head(std::string_view input, const response_limits &limits, response_head &out,
                                 header_field *storage, uint32_t storage_count, uint32_t &scan_from);

// How the body of a successfully parsed response is delimited (RFC 9112 6.3), given what the request
// was. For an interim response (is_interim()) this is always none.
response_body_kind framing(const response_head &h, bool request_was_head, bool request_was_connect);

// Whether the upstream connection can go back to the pool after this final response and its body.
inline bool connection_reusable(const response_head &h, response_body_kind k) {
    return h.keep_alive &&
           (k == response_body_kind::none || k == response_body_kind::length || k == response_body_kind::chunked);
}

} // namespace atlas::http
