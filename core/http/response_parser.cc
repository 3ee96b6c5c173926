#include "http/response_parser.hh"

#include <algorithm>

#include "http/chars.hh"
#include "http/field_lines.hh"

namespace atlas::http {
namespace {

using namespace chars;

// --- Resume state ----------------------------------------------------------------------------
// Same scheme as the request parser: the scanner state and the offset are packed into scan_from.
// The status line always starts at offset 0 (no leading empty lines are allowed in responses), so
// nothing else has to be remembered.
enum scan_state : uint32_t {
    st_version = 0,                  // st_version + i: expecting byte i of "HTTP/1.D " (i = 0..8)
    st_status = st_version + 9,      // st_status + i: expecting status digit i (i = 0..2)
    st_after_status = st_status + 3, // after the three digits: SP (or CR, see below)
    st_reason,                       // inside the reason phrase
    st_sl_lf,                        // after the CR ending the status line
    st_fields,                       // st_fields + field_lines::state
    st_count = st_fields + uint32_t{field_lines::f_count}
};
using field_lines::k_pos_mask;
using field_lines::k_state_shift;
static_assert(st_version == 0, "run_resumable starts a head in state 0");
static_assert(st_count <= (1u << (32 - k_state_shift)));

struct scanner {
    const char *b;
    size_t avail;  // bytes in the input
    size_t end;    // min(avail, max head bytes): bytes the scanner may look at
    size_t max_sl; // status-line limit (bytes before its CR)
    response_head &out;
    field_lines::scanner fields;
    uint32_t resume = 0;

    parse_result fail(const char *why) {
        out.error_reason = why;
        return parse_result::error;
    }
    parse_result need_more(uint32_t state, size_t p) {
        if (end < avail) return fail(head_too_large);
        resume = field_lines::pack_resume(state, p);
        return parse_result::incomplete;
    }

    template <bool Extract>
    parse_result run(uint32_t state, size_t p);
};

// One pass over the head; Extract=true starts at offset 0 and records everything, Extract=false
// only validates from a resume point (see the request parser).
template <bool Extract>
parse_result scanner::run(uint32_t state, size_t p) {
    unsigned i = 0;
    char c = 0;
    size_t reason_start = 0;

    if (state >= st_fields) goto field_section;
    if (state == st_sl_lf) goto sl_lf;
    if (state == st_reason) goto reason;
    if (state == st_after_status) goto after_status;
    if (state >= st_status) {
        i = state - st_status;
        goto status;
    }
    i = state - st_version;

    // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4). Every byte at
    // offset >= max_status_line must be the closing CR. No leading empty lines: RFC 9112 2.2 only
    // lets servers skip them before a request line.
    for (; i < 9; ++i, ++p) {
        if (p == end) return need_more(st_version + i, p);
        c = b[p];
        if (p >= max_sl && c != '\r') return fail("status line too long");
        // HTTP-name is case-sensitive (RFC 9112 2.3); only major version 1 can be relayed.
        const bool ok = i == 7 ? is_digit(c) : c == "HTTP/1.x "[i];
        if (!ok)
            return fail((i == 5 && is_digit(c)) ? "unsupported HTTP version"
                        : c == '\n'             ? "bare LF in status line"
                                                : "malformed status line");
    }
    i = 0;
status:
    // status-code = 3DIGIT; RFC 9110 15 only defines 100..599 but lets recipients handle up to 999
    // (unknown classes are treated as x00 by the proxy). A leading 0 is never valid.
    for (; i < 3; ++i, ++p) {
        if (p == end) return need_more(st_status + i, p);
        c = b[p];
        if (p >= max_sl && c != '\r') return fail("status line too long");
        if (!is_digit(c) || (i == 0 && c == '0')) return fail(c == '\n' ? "bare LF in status line" : "invalid status code");
    }
    if constexpr (Extract)
        out.status = static_cast<uint16_t>((b[p - 3] - '0') * 100 + (b[p - 2] - '0') * 10 + (b[p - 1] - '0'));
after_status:
    if (p == end) return need_more(st_after_status, p);
    c = b[p];
    if (c == '\r') {
        // "HTTP/1.1 200\r\n": RFC 9112 4 requires the SP even with an empty reason, but nginx and
        // HAProxy accept a status line without it, and some upstreams send it; nothing is
        // ambiguous about it, so accept it with an empty reason.
        if constexpr (Extract) out.reason = std::string_view(b + p, 0);
        ++p;
        goto sl_lf;
    }
    if (p >= max_sl) return fail("status line too long");
    if (c != ' ') return fail(c == '\n' ? "bare LF in status line" : "invalid status code");
    ++p;
    if constexpr (Extract) reason_start = p;
reason:
    // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), or empty.
    p = static_cast<size_t>(skip_run(b + p, b + std::min(end, max_sl), value_word_plain, is_field) - b);
    if (p == end) return need_more(st_reason, p);
    c = b[p];
    if (c != '\r') {
        if (p >= max_sl) return fail("status line too long");
        return fail(c == '\n' ? "bare LF in status line" : "control character in reason phrase");
    }
    if constexpr (Extract) out.reason = std::string_view(b + reason_start, p - reason_start);
    ++p;
sl_lf:
    if (p == end) return need_more(st_sl_lf, p);
    if (b[p] != '\n') return fail("bare CR in status line");
    if constexpr (Extract) out.version_minor = b[7] == '0' ? 0 : 1; // "HTTP/1.D": b[7] is the minor digit
    ++p;

    // ---- field lines: the same scanner as for request heads ------------------------------------
    state = st_fields + uint32_t{field_lines::f_line};
field_section:
    switch (fields.scan<Extract>(static_cast<field_lines::state>(state - st_fields), p)) {
    case field_lines::status::complete: return parse_result::complete;
    case field_lines::status::need_more: return need_more(st_fields + uint32_t{fields.stop}, p);
    default: return fail(fields.error);
    }
}

// --- Semantics of the complete head ------------------------------------------------------------

parse_result fail(response_head &out, const char *why) {
    out.error_reason = why;
    return parse_result::error;
}

// Keep-Alive: timeout=5, max=100 (RFC 2068 19.7.1.1; never standardised, but sent by Apache, Node
// and others to say how long an idle connection is kept). Advisory only, so nothing in it is an
// error: elements that are not a valid "timeout=1*9DIGIT" are ignored; of several valid timeouts
// the smallest wins (retiring a pooled connection early is always safe).
void add_keep_alive(std::string_view v, int32_t &timeout) {
    field_lines::for_each_element(v, [&](std::string_view e) {
        const size_t eq = e.find('=');
        if (eq == std::string_view::npos) return;
        if (!iequals(field_lines::trim_ows(e.substr(0, eq)), "timeout")) return;
        const std::string_view n = field_lines::trim_ows(e.substr(eq + 1));
        if (n.empty() || n.size() > 9) return;
        int32_t x = 0;
        for (char d : n) {
            if (!is_digit(d)) return;
            x = x * 10 + (d - '0');
        }
        if (timeout < 0 || x < timeout) timeout = x;
    });
}

parse_result finish(response_head &out) {
    const bool v11 = out.version_minor == 1;
    bool have_cl = false, have_te = false, have_upgrade = false;
    uint64_t cl = 0;
    field_lines::te_summary te;
    field_lines::connection_options conn;
    for (uint32_t i = 0; i < out.header_count; ++i) {
        const header_field &h = out.headers[i];
        switch (h.name.size()) {
        case 7:
            // Several Upgrade fields in one response make no sense; the first one is reported.
            if (!have_upgrade && iequals(h.name, "upgrade")) {
                have_upgrade = true;
                out.upgrade = h.value;
            }
            break;
        case 10:
            // Connection decides which fields are hop-by-hop (stripped by the proxy): a value we
            // cannot read is refused like in requests rather than guessed at.
            if (iequals(h.name, "connection")) {
                if (!field_lines::add_connection(h.value, conn)) return fail(out, "invalid Connection header");
            } else if (iequals(h.name, "keep-alive")) {
                add_keep_alive(h.value, out.keep_alive_timeout_s);
            }
            break;
        case 14:
            // RFC 9110 8.6: 1*DIGIT; "5, 5" or repeated identical fields are one value, differing
            // values are unrecoverable framing errors.
            if (iequals(h.name, "content-length")) {
                if (const char *err = field_lines::add_content_length(h.value, have_cl, cl)) return fail(out, err);
            }
            break;
        case 17:
            if (iequals(h.name, "transfer-encoding")) {
                have_te = true;
                field_lines::add_transfer_encoding(h.value, te);
            }
            break;
        default:
            break;
        }
    }

    // Framing fields are checked whatever the status: a response that breaks these rules is not
    // trusted even where the fields would not be used (1xx, 204, 304, HEAD, CONNECT).
    if (have_te) {
        // RFC 9112 6.1: a recipient of an HTTP/1.0 message with Transfer-Encoding MUST treat the
        // framing as faulty.
        if (!v11) return fail(out, "Transfer-Encoding in HTTP/1.0 response");
        // RFC 9112 6.1: a sender MUST NOT send Content-Length with Transfer-Encoding; the
        // combination is the classic smuggling shape, so an upstream sending it is refused rather
        // than letting Transfer-Encoding override (RFC 9112 6.3 rule 3 "ought to be handled as an
        // error").
        if (have_cl) return fail(out, "both Transfer-Encoding and Content-Length");
        if (te.malformed) return fail(out, "invalid Transfer-Encoding");
        // RFC 9112 6.1 / 7: chunked MUST NOT be applied more than once; it defines no parameters.
        if (te.chunked > 1) return fail(out, "chunked applied more than once");
        if (te.chunked_params) return fail(out, "parameters on chunked");
        // RFC 9112 6.3 rule 4: with chunked final the body is chunked. Other codings under it (e.g.
        // "gzip, chunked") would have to be undone or passed on as transfer codings, which the
        // proxy does not do: refused. Without chunked final (e.g. "gzip") the body runs until
        // close (framing() says until_close); the coded bytes are relayed as they are.
        if (te.last_chunked && te.codings > 1) return fail(out, "unsupported transfer-coding under chunked");
        out.transfer_encoding = true;
        out.chunked = te.last_chunked;
    }
    if (have_cl) out.content_length = static_cast<int64_t>(cl);

    // RFC 9112 9.3: HTTP/1.1 is persistent unless "close"; HTTP/1.0 only with "keep-alive".
    out.keep_alive = v11 ? !conn.close : (conn.keep_alive && !conn.close);
    out.connection_upgrade = conn.upgrade;
    return parse_result::complete;
}

} // namespace

parse_result parse_response_head(std::string_view input, const response_limits &limits, response_head &out,
                                 header_field *storage, uint32_t storage_count, uint32_t &scan_from) {
    out = response_head{};
    const size_t max_head = std::min<size_t>(limits.max_head_bytes, k_pos_mask);
    const size_t end = std::min(input.size(), max_head);
    scanner s{input.data(),
              input.size(),
              end,
              limits.max_status_line,
              out,
              {input.data(), end, storage, std::min(limits.max_headers, storage ? storage_count : 0u)}};

    parse_result r = field_lines::run_resumable(s, st_count, scan_from);
    if (r != parse_result::complete) return r;

    if (s.fields.count > s.fields.cap) return fail(out, "too many header fields");
    out.headers = storage;
    out.header_count = s.fields.count;
    out.head_length = static_cast<uint32_t>(s.fields.head_end);
    return finish(out);
}

response_body_kind framing(const response_head &h, bool request_was_head, bool request_was_connect) {
    // RFC 9110 15.2.2 / 7.8: after 101 the connection speaks the protocol named in Upgrade; the
    // proxy relays bytes both ways (and must check that the client asked for that upgrade).
    if (h.status == 101) return response_body_kind::tunnel;
    // RFC 9112 6.3 rule 1: responses to HEAD and 1xx, 204, 304 responses end at the empty line
    // after the head, whatever the framing fields say (Content-Length then describes the selected
    // representation, RFC 9110 8.6).
    if (request_was_head || h.status < 200 || h.status == 204 || h.status == 304) return response_body_kind::none;
    // RFC 9112 6.3 rule 2: a 2xx to CONNECT turns the connection into a tunnel right after the
    // head; Content-Length / Transfer-Encoding in it MUST be ignored (RFC 9110 9.3.6).
    if (request_was_connect && h.status < 300) return response_body_kind::tunnel;
    // RFC 9112 6.3 rule 4: chunked final -> chunked; other Transfer-Encoding -> read until close.
    if (h.transfer_encoding) return h.chunked ? response_body_kind::chunked : response_body_kind::until_close;
    // RFC 9112 6.3 rule 6 (rule 5, invalid Content-Length, was already a parse error).
    if (h.content_length >= 0) return response_body_kind::length;
    // RFC 9112 6.3 rule 8: a response without either is delimited by the connection close.
    return response_body_kind::until_close;
}

} // namespace atlas::http
