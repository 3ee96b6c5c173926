// Field-line scanning and framing-field helpers shared by the request and response head parsers
// (internal to core/http). Both heads end in the same field section (RFC 9112 5):
//
//   *( field-line CRLF ) CRLF      field-line = field-name ":" OWS field-value OWS
//
// and both parsers must be exactly as strict about it: obs-fold, whitespace before the colon, an
// empty name, a bare CR or LF, NUL or any other control character in a value is an error. The
// scanner is one resumable state machine; its state (a field_lines::state) is what a parser packs
// into its scan_from hint when the bytes run out inside the field section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/chars.hh"
#include "http/request_parser.hh" // header_field

namespace atlas::http::field_lines {

enum state : uint32_t {
    f_line = 0,  // at the start of a field line (or of the final CRLF)
    f_name,      // inside a field name
    f_value,     // inside a field value
    f_value_lf,  // after the CR ending a field line
    f_end_lf,    // after the CR of the empty line ending the head
    f_count
};

enum class status { complete, need_more, error };

struct scanner {
    const char *b;          // the head starts at b[0]
    size_t end;             // bytes the scanner may look at (input size capped at the head limit)
    header_field *storage;  // extract mode: where the fields go
    uint32_t cap;           // usable storage entries; more fields are only counted
    uint32_t count = 0;     // field lines seen (extract mode)
    size_t head_end = 0;    // complete: offset just past the final LF
    state stop = f_line;    // need_more: the state to resume in (at offset end)
    const char *error = nullptr; // error: static reason

    // Scans from offset `pos` in state `st`. Extract=true also stores the fields (count may end up
    // above cap: the caller reports that once the head is known to be well-formed); it must start
    // at the first field line of the head, never mid-line (the caller re-runs from the start).
    // Extract=false only validates, so it can resume anywhere. Both run the same code, so they
    // cannot disagree about what is valid. On need_more pos == end; on error pos is the bad byte.
    template <bool Extract>
    status scan(state st, size_t &pos);
};

// Inlined into each parser's own state machine: it is the hot loop of both.
template <bool Extract>
[[gnu::always_inline]] inline status scanner::scan(state st, size_t &pos) {
    using namespace chars;
    size_t p = pos;
    size_t name_start = 0, name_end = 0, value_start = 0;
    char c = 0;

    switch (st) {
    case f_line: goto line;
    case f_name: goto name;
    case f_value: goto value;
    case f_value_lf: goto value_lf;
    default: goto end_lf;
    }

line:
    if (p == end) {
        stop = f_line;
        goto need_more;
    }
    c = b[p];
    if (is_tchar(c)) {
        if constexpr (Extract) name_start = p;
        ++p;
        goto name;
    }
    if (c == '\r') {
        ++p;
        goto end_lf;
    }
    // A line starting with whitespace is obs-fold (or whitespace before the first field): RFC 9112
    // 5.2 and 2.2 allow rejecting it, and accepting it is a classic smuggling vector.
    error = (c == ' ' || c == '\t') ? "obs-fold or leading whitespace in header line"
            : c == '\n'              ? "bare LF in header section"
            : c == ':'               ? "empty header name"
                                     : "invalid character in header name";
    goto fail;
name:
    while (p < end && is_tchar(b[p])) ++p;
    if (p == end) {
        stop = f_name;
        goto need_more;
    }
    c = b[p];
    if (c != ':') {
        error = (c == ' ' || c == '\t')     ? "whitespace between header name and colon"
                : (c == '\r' || c == '\n') ? "header line without colon"
                                           : "invalid character in header name";
        goto fail;
    }
    if constexpr (Extract) name_end = p;
    ++p;
    if constexpr (Extract) {
        while (p < end && is_ows(b[p])) ++p;
        value_start = p;
    }
value:
    p = static_cast<size_t>(skip_run(b + p, b + end, value_word_plain, is_field) - b);
    if (p == end) {
        stop = f_value;
        goto need_more;
    }
    c = b[p];
    if (c != '\r') {
        error = c == '\n' ? "bare LF in header" : c == 0 ? "NUL in header value" : "control character in header value";
        goto fail;
    }
    if constexpr (Extract) {
        size_t e = p;
        while (e > value_start && is_ows(b[e - 1])) --e;
        if (count < cap)
            storage[count] = {std::string_view(b + name_start, name_end - name_start),
                              std::string_view(b + value_start, e - value_start)};
        ++count;
    }
    ++p;
value_lf:
    if (p == end) {
        stop = f_value_lf;
        goto need_more;
    }
    if (b[p] != '\n') {
        error = "bare CR in header";
        goto fail;
    }
    ++p;
    goto line;
end_lf:
    if (p == end) {
        stop = f_end_lf;
        goto need_more;
    }
    if (b[p] != '\n') {
        error = "bare CR at end of head";
        goto fail;
    }
    head_end = p + 1;
    pos = p + 1;
    return status::complete;

need_more:
    pos = p;
    return status::need_more;
fail:
    pos = p;
    return status::error;
}

// --- Field values with framing or connection semantics -----------------------------------------

using chars::trim_ows;

inline bool all_tchar(std::string_view s) {
    for (char c : s)
        if (!chars::is_tchar(c)) return false;
    return !s.empty();
}

// Calls f(element) for each comma-separated element, OWS-trimmed (elements may be empty).
template <class F>
inline void for_each_element(std::string_view v, F &&f) {
    for (;;) {
        const size_t comma = v.find(',');
        f(trim_ows(v.substr(0, comma)));
        if (comma == std::string_view::npos) return;
        v.remove_prefix(comma + 1);
    }
}

inline constexpr uint64_t k_max_content_length = uint64_t{1} << 53; // largest integer exact in a double (JS peers)

// Content-Length = 1*DIGIT; a list of identical values ("5, 5") and repeated identical fields count
// as one (RFC 9110 8.6); differing values are an error. Empty elements are rejected: the field is
// smuggling-sensitive, leniency buys nothing. Returns nullptr or a static error reason.
inline const char *add_content_length(std::string_view v, bool &have, uint64_t &value) {
    const char *err = nullptr;
    if (v.empty()) return "empty Content-Length";
    for_each_element(v, [&](std::string_view e) {
        if (err) return;
        if (e.empty()) {
            err = "invalid Content-Length";
            return;
        }
        uint64_t x = 0;
        for (char d : e) {
            if (!chars::is_digit(d)) {
                err = "invalid Content-Length";
                return;
            }
            const uint64_t dv = static_cast<uint64_t>(d - '0');
            if (x > (k_max_content_length - dv) / 10) {
                err = "Content-Length too large";
                return;
            }
            x = x * 10 + dv;
        }
        if (have && x != value) {
            err = "conflicting Content-Length values";
            return;
        }
        have = true;
        value = x;
    });
    return err;
}

struct te_summary {
    uint32_t codings = 0;
    uint32_t chunked = 0;        // "chunked" occurrences, with or without parameters
    bool last_chunked = false;   // the final coding is exactly "chunked"
    bool chunked_params = false; // some "chunked" carries parameters (chunked defines none)
    bool malformed = false;
};

// Transfer-Encoding codings across all fields: coding = token [ OWS ";" params ]. Parameters are
// not interpreted: they only occur on codings we refuse anyway.
inline void add_transfer_encoding(std::string_view v, te_summary &te) {
    if (v.empty()) {
        te.malformed = true;
        return;
    }
    for_each_element(v, [&](std::string_view e) {
        size_t t = 0;
        while (t < e.size() && chars::is_tchar(e[t])) ++t;
        const std::string_view coding = e.substr(0, t);
        const std::string_view rest = trim_ows(e.substr(t));
        if (coding.empty() || (!rest.empty() && rest[0] != ';')) te.malformed = true;
        const bool is_chunked = chars::iequals(coding, "chunked");
        te.chunked += is_chunked;
        te.chunked_params |= is_chunked && !rest.empty();
        te.last_chunked = is_chunked && rest.empty();
        ++te.codings;
    });
}

struct connection_options {
    bool close = false, keep_alive = false, upgrade = false;
};

// Connection = #connection-option (tokens, case-insensitive). Returns false on a non-token element.
inline bool add_connection(std::string_view v, connection_options &o) {
    bool ok = true;
    for_each_element(v, [&](std::string_view e) {
        if (e.empty()) return; // empty list elements are legal (RFC 9110 5.6.1)
        if (!all_tchar(e)) {
            ok = false;
            return;
        }
        switch (e.size()) {
        case 5: o.close |= chars::iequals(e, "close"); break;
        case 7: o.upgrade |= chars::iequals(e, "upgrade"); break;
        case 10: o.keep_alive |= chars::iequals(e, "keep-alive"); break;
        default: break;
        }
    });
    return ok;
}

// --- Resumable head scanning, as both parsers do it ---------------------------------------------
// A parser's scanner state and the offset it stopped at are packed into the caller's scan_from.
constexpr unsigned k_state_shift = 27;
constexpr uint32_t k_pos_mask = (uint32_t{1} << k_state_shift) - 1;

inline uint32_t pack_resume(uint32_t state, size_t pos) { return (state << k_state_shift) | static_cast<uint32_t>(pos); }

// Runs a head scanner `s` (state 0 = the start of the head; s.end = bytes it may look at;
// s.resume = the packed hint after need_more) from the caller's scan_from: from the start in
// extract mode, or validating from the hint and then extracting once the whole head is there.
// Leaves scan_from ready for the next call (0 after complete or error).
template <class head_scanner>
parse_result run_resumable(head_scanner &s, uint32_t state_count, uint32_t &scan_from) {
    uint32_t state = scan_from >> k_state_shift;
    size_t pos = scan_from & k_pos_mask;
    if (state >= state_count || pos > s.end) state = 0, pos = 0; // stale hint: start over
    parse_result r;
    if (state == 0 && pos == 0) {
        r = s.template run<true>(0, 0);
    } else {
        r = s.template run<false>(state, pos);
        if (r == parse_result::complete) r = s.template run<true>(0, 0); // head is all here: extract it once
    }
    scan_from = r == parse_result::incomplete ? s.resume : 0;
    return r;
}

} // namespace atlas::http::field_lines
