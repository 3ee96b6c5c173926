#include "http/request_parser.hh"

#include <algorithm>

#include "http/chars.hh"
#include "http/field_lines.hh"

namespace atlas::http {
namespace {

using namespace chars;
using field_lines::add_connection;
using field_lines::add_content_length;
using field_lines::add_transfer_encoding;
using field_lines::connection_options;
using field_lines::te_summary;

// --- Resume state ----------------------------------------------------------------------------
// The byte scanner is a state machine over the head. When the input runs out, the state and the
// offset are packed into the caller's scan_from, so the next call resumes on the first new byte
// instead of rescanning (slowloris clients cost O(n) in total). Everything else the scanner needs
// on resume (request-line start, version digits) is re-derived by looking back into the input,
// which always starts at the first byte of the head.
enum scan_state : uint32_t {
    st_lead = 0,     // at the start of a line before the request line (leading CRLFs)
    st_lead_lf,      // after a leading CR
    st_method,       // inside the method
    st_target_start, // after the first SP
    st_target,       // inside the request-target
    st_version,      // st_version + i: expecting byte i of "HTTP/D.D\r" (i = 0..8)
    st_rl_lf = st_version + 9,
    st_fields,   // st_fields + field_lines::state: in the field section (shared with responses)
    st_count = st_fields + uint32_t{field_lines::f_count}
};
using field_lines::k_pos_mask;
using field_lines::k_state_shift;
static_assert(st_lead == 0, "run_resumable starts a head in state 0");
static_assert(st_count <= (1u << (32 - k_state_shift)));

constexpr size_t k_max_leading_crlf = 8; // RFC 9112 2.2 asks for "at least one"; 8 is plenty

struct scanner {
    const char *b;
    size_t avail; // bytes in the input
    size_t end;   // min(avail, max head bytes): bytes the scanner may look at
    size_t max_rl;
    request_head &out;
    field_lines::scanner fields; // storage, cap (also the header-count limit), count, head_end
    uint32_t resume = 0;

    parse_result fail(uint16_t status, const char *why) {
        out.error_status = status;
        out.error_reason = why;
        return parse_result::error;
    }
    // Out of bytes at p (p == end). If the buffer holds more than the head limit, it never fits.
    parse_result need_more(uint32_t state, size_t p) {
        if (end < avail) return fail(431, "request head too large");
        resume = field_lines::pack_resume(state, p);
        return parse_result::incomplete;
    }

    template <bool Extract>
    parse_result run(uint32_t state, size_t p);
};

// One pass over the head. Extract=true also records the request line and the field lines; it
// always starts at offset 0. Extract=false only validates (used when resuming on appended bytes;
// once it finds the end of the head the caller re-runs in extract mode once). Both modes run the
// very same code, so they cannot disagree about what is valid.
template <bool Extract>
parse_result scanner::run(uint32_t state, size_t p) {
    size_t line_start = 0, rl_limit = 0;
    size_t target_start = 0;
    unsigned vi = 0;
    char c = 0;

    if (state >= st_method && state <= st_rl_lf) {
        // Resuming inside the request line: it starts after the (already validated) leading CRLFs.
        while (line_start + 1 < avail && b[line_start] == '\r' && b[line_start + 1] == '\n') line_start += 2;
        rl_limit = line_start + max_rl;
    }

    switch (state) {
    case st_lead: goto lead;
    case st_lead_lf: goto lead_lf;
    case st_method: goto method;
    case st_target_start: goto target_start_l;
    case st_target: goto target;
    case st_rl_lf: goto rl_lf;
    default:
        if (state >= st_fields) goto field_section; // st_fields .. st_count-1 (range checked by the caller)
        vi = state - st_version;                     // st_version .. st_version+8
        goto version;
    }

// ---- leading empty lines, then the request line ------------------------------------------------
lead:
    if (p == end) return need_more(st_lead, p);
    c = b[p];
    if (c == '\r') {
        if (p >= 2 * k_max_leading_crlf) return fail(400, "too many empty lines before request line");
        ++p;
        goto lead_lf;
    }
    if (!is_tchar(c)) return fail(400, c == '\n' ? "bare LF before request line" : "invalid character in method");
    line_start = p;
    rl_limit = p + max_rl;
    ++p;
    goto method;
lead_lf:
    if (p == end) return need_more(st_lead_lf, p);
    if (b[p] != '\n') return fail(400, "bare CR before request line");
    ++p;
    goto lead;

    // Inside the request line every byte at offset >= max_request_line must be the closing CR.
method:
    {
        const size_t lim = std::min(end, rl_limit);
        while (p < lim && is_tchar(b[p])) ++p;
    }
    if (p == end) return need_more(st_method, p);
    c = b[p];
    if (p >= rl_limit && c != '\r') return fail(414, "request line too long");
    if (c != ' ')
        return fail(400, (c == '\r' || c == '\n') ? "malformed request line" : "invalid character in method");
    if constexpr (Extract) out.method = std::string_view(b + line_start, p - line_start);
    ++p;
target_start_l:
    if (p == end) return need_more(st_target_start, p);
    c = b[p];
    if (p >= rl_limit && c != '\r') return fail(414, "request line too long");
    if (!is_target(c))
        return fail(400, c == ' '   ? "empty request-target or extra space"
                         : c == '#' ? "fragment in request-target"
                                    : "invalid character in request-target");
    if constexpr (Extract) target_start = p;
    ++p;
target:
    p = static_cast<size_t>(skip_run(b + p, b + std::min(end, rl_limit), target_word_plain, is_target) - b);
    if (p == end) return need_more(st_target, p);
    c = b[p];
    if (p >= rl_limit && c != '\r') return fail(414, "request line too long");
    if (c != ' ')
        return fail(400, c == '#'                     ? "fragment in request-target"
                         : (c == '\r' || c == '\n') ? "missing HTTP version"
                                                    : "invalid character in request-target");
    if constexpr (Extract) out.target = std::string_view(b + target_start, p - target_start);
    ++p;
    vi = 0;
version:
    // Exactly "HTTP/" DIGIT "." DIGIT CR: the name is case-sensitive (RFC 9112 2.3).
    for (; vi < 9; ++vi, ++p) {
        if (p == end) return need_more(st_version + vi, p);
        c = b[p];
        if (p >= rl_limit && c != '\r') return fail(414, "request line too long");
        const bool ok = (vi == 5 || vi == 7) ? is_digit(c) : c == "HTTP/x.x\r"[vi];
        if (!ok)
            return fail(400, (vi == 8 && c == '\n')  ? "bare LF in request line"
                             : (vi == 0 && c == ' ') ? "extra space in request line"
                                                     : "malformed HTTP version");
    }
rl_lf:
    if (p == end) return need_more(st_rl_lf, p);
    if (b[p] != '\n') return fail(400, "bare CR in request line");
    // b[p-4] is the major digit, b[p-2] the minor one ("HTTP/1.1\r\n").
    if (b[p - 4] != '1') return fail(505, "unsupported HTTP version");
    if constexpr (Extract) out.version_minor = b[p - 2] == '0' ? 0 : 1;
    ++p;

// ---- field lines (field_lines.hh, shared with the response parser) ----------------------------
    state = st_fields + uint32_t{field_lines::f_line};
field_section:
    switch (fields.scan<Extract>(static_cast<field_lines::state>(state - st_fields), p)) {
    case field_lines::status::complete: return parse_result::complete;
    case field_lines::status::need_more: return need_more(st_fields + uint32_t{fields.stop}, p);
    default: return fail(400, fields.error);
    }
}

// --- Semantics of the complete head ------------------------------------------------------------

// uri-host [ ":" port ]: reg-name (with pct-encoding) / IPv4 / "[" IPv6 "]"; port 1-5 digits <= 65535.
bool valid_host_port(std::string_view s, bool need_port) {
    const size_t n = s.size();
    size_t i = 0;
    if (n == 0) return false;
    if (s[0] == '[') {
        const size_t close = s.find(']');
        if (close == std::string_view::npos || close == 1) return false;
        bool colon = false;
        for (size_t j = 1; j < close; ++j) {
            if (s[j] == ':') colon = true;
            else if (!is_hex(s[j]) && s[j] != '.') return false;
        }
        if (!colon) return false;
        i = close + 1;
    } else {
        while (i < n && s[i] != ':') {
            if (s[i] == '%') {
                if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
                i += 3;
                continue;
            }
            if (!is(s[i], c_regname)) return false;
            ++i;
        }
        if (i == 0) return false; // empty host
    }
    if (i == n) return !need_port;
    if (s[i] != ':') return false;
    const std::string_view port = s.substr(i + 1);
    if (port.empty() || port.size() > 5) return false;
    uint32_t v = 0;
    for (char d : port) {
        if (!is_digit(d)) return false;
        v = v * 10 + static_cast<uint32_t>(d - '0');
    }
    return v <= 65535;
}

// Splits an origin-form style "path[?query]" (the path must be non-empty here).
void split_path_query(std::string_view pq, request_head &out) {
    const size_t q = pq.find('?');
    if (q == std::string_view::npos) {
        out.path_raw = pq;
    } else {
        out.path_raw = pq.substr(0, q);
        out.query = pq.substr(q + 1);
    }
}

parse_result fail(request_head &out, uint16_t status, const char *why) {
    out.error_status = status;
    out.error_reason = why;
    return parse_result::error;
}

parse_result finish(request_head &out) {
    const bool v11 = out.version_minor == 1;
    out.is_head = out.method == "HEAD";

    // Request-target form (RFC 9112 3.2).
    const std::string_view t = out.target; // non-empty, visible ASCII, no '#'
    bool absolute = false;
    if (out.method == "CONNECT") {
        if (!valid_host_port(t, true)) return fail(out, 400, "CONNECT needs an authority-form target");
        out.authority = t;
    } else if (t[0] == '/') {
        split_path_query(t, out);
    } else if (t.size() == 1 && t[0] == '*') {
        if (out.method != "OPTIONS") return fail(out, 400, "asterisk-form target only allowed for OPTIONS");
        out.path_raw = t;
    } else {
        size_t skip = 0;
        if (t.size() >= 7 && iequals(t.substr(0, 7), "http://")) skip = 7;
        else if (t.size() >= 8 && iequals(t.substr(0, 8), "https://")) skip = 8;
        if (skip == 0) return fail(out, 400, "invalid request-target");
        const std::string_view rest = t.substr(skip);
        const size_t a_end = std::min(rest.find('/'), rest.find('?'));
        const std::string_view auth = rest.substr(0, a_end);
        // RFC 9110 4.2.4: userinfo in an http(s) URI is an error; an empty host is invalid.
        if (auth.find('@') != std::string_view::npos) return fail(out, 400, "userinfo in request-target");
        if (!valid_host_port(auth, false)) return fail(out, 400, "invalid authority in request-target");
        out.authority = auth;
        absolute = true;
        if (a_end == std::string_view::npos) {
            out.path_raw = "/";
        } else if (rest[a_end] == '?') {
            out.path_raw = "/";
            out.query = rest.substr(a_end + 1);
        } else {
            split_path_query(rest.substr(a_end), out);
        }
    }

    // Header fields with framing or connection semantics; names compared by length first.
    uint32_t host_count = 0;
    std::string_view host_value;
    bool have_cl = false, have_te = false, have_upgrade = false, expect_100 = false, expect_other = false;
    uint64_t cl = 0;
    te_summary te;
    connection_options conn;
    for (uint32_t i = 0; i < out.header_count; ++i) {
        const header_field &h = out.headers[i];
        switch (h.name.size()) {
        case 4:
            if (iequals(h.name, "host")) {
                ++host_count;
                host_value = h.value;
            }
            break;
        case 6:
            if (iequals(h.name, "expect")) {
                if (iequals(h.value, "100-continue")) expect_100 = true;
                else expect_other = true;
            }
            break;
        case 7:
            if (iequals(h.name, "upgrade") && !h.value.empty()) have_upgrade = true;
            break;
        case 10:
            if (iequals(h.name, "connection") && !add_connection(h.value, conn))
                return fail(out, 400, "invalid Connection header");
            break;
        case 14:
            if (iequals(h.name, "content-length")) {
                if (const char *err = add_content_length(h.value, have_cl, cl)) return fail(out, 400, err);
            }
            break;
        case 17:
            if (iequals(h.name, "transfer-encoding")) {
                have_te = true;
                add_transfer_encoding(h.value, te);
            }
            break;
        default:
            break;
        }
    }

    // Host (RFC 9112 3.2): exactly one for HTTP/1.1, never more than one, always well-formed.
    if (host_count > 1) return fail(out, 400, "multiple Host headers");
    if (host_count == 0) {
        if (v11) return fail(out, 400, "missing Host header");
    } else if (host_value.empty()) {
        if (v11) return fail(out, 400, "empty Host header");
    } else if (!valid_host_port(host_value, false)) {
        return fail(out, 400, "invalid Host header");
    }
    out.host = absolute ? out.authority : host_value;

    // Framing (RFC 9112 6.1-6.3): every ambiguous shape is refused.
    if (have_te) {
        if (!v11) return fail(out, 400, "Transfer-Encoding in HTTP/1.0 request");
        if (have_cl) return fail(out, 400, "both Transfer-Encoding and Content-Length");
        if (te.malformed) return fail(out, 400, "invalid Transfer-Encoding");
        if (te.chunked > 1) return fail(out, 400, "chunked applied more than once");
        if (!te.last_chunked) return fail(out, 400, "final transfer-coding is not chunked");
        if (te.codings > 1) return fail(out, 501, "unsupported transfer-coding");
        out.chunked = true;
    }
    if (have_cl) out.content_length = static_cast<int64_t>(cl);

    out.keep_alive = v11 ? !conn.close : (conn.keep_alive && !conn.close);
    out.upgrade = v11 && conn.upgrade && have_upgrade; // RFC 9110 7.8: ignore Upgrade in 1.0

    if (expect_other) return fail(out, 417, "unsupported expectation");
    // RFC 9110 10.1.1: 100-continue in HTTP/1.0 is ignored; without content there is nothing to wait for.
    out.expect_continue = expect_100 && v11 && (out.chunked || out.content_length > 0);
    return parse_result::complete;
}

} // namespace

parse_result parse_request_head(std::string_view input, const parse_limits &limits, request_head &out,
                                header_field *storage, uint32_t storage_count, uint32_t &scan_from) {
    out = request_head{};
    const size_t max_head = std::min<size_t>(limits.max_header_bytes, k_pos_mask);
    scanner s{input.data(),
              input.size(),
              std::min(input.size(), max_head),
              limits.max_request_line,
              out,
              {input.data(), std::min(input.size(), max_head), storage,
               std::min(limits.max_headers, storage ? storage_count : 0u)}};

    parse_result r = field_lines::run_resumable(s, st_count, scan_from);
    if (r != parse_result::complete) return r;

    if (s.fields.count > s.fields.cap) return fail(out, 431, "too many header fields");
    out.headers = storage;
    out.header_count = s.fields.count;
    out.head_length = static_cast<uint32_t>(s.fields.head_end);
    return finish(out);
}

} // namespace atlas::http
