#include "http/chunked_decoder.hh"

#include "http/chars.hh"

namespace atlas::http {

using namespace chars;

size_t chunked_decoder::parse_control(const char *p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const char c = p[i];
        const size_t used = i + 1;

        // Size limits first, so a long line fails at the first byte over the limit.
        if (st_ <= s_after_qs) {
            if (c != '\r' && ++line_len_ > max_chunk_line) return fail("chunk line too long", used);
        } else if (st_ >= s_trailer_line && st_ <= s_end_lf) {
            if (++line_len_ > max_trailer_bytes) return fail("trailer section too large", used);
        }

        switch (st_) {
        // ---- chunk line: chunk-size [ chunk-ext ] CRLF ---------------------------------------
        case s_size_start:
            if (!is_hex(c)) return fail("invalid chunk size", used);
            size_ = hex_value(c);
            digits_ = size_ != 0;
            st_ = s_size;
            break;
        case s_size:
            if (is_hex(c)) {
                // Only significant digits can overflow: leading zeros are valid (1*HEXDIG, RFC
                // 9112 7.1) and already bounded by max_chunk_line.
                if ((size_ != 0 || c != '0') && ++digits_ > max_size_digits)
                    return fail("chunk size does not fit in 64 bits", used);
                size_ = (size_ << 4) | hex_value(c);
            } else if (c == ';') {
                st_ = s_ext_pre_name;
            } else if (is_ows(c)) {
                st_ = s_bws_semi;
            } else if (c == '\r') {
                st_ = s_line_lf;
            } else {
                return fail(c == '\n' ? "bare LF in chunk line" : "invalid chunk size", used);
            }
            break;
        case s_bws_semi: // BWS is only allowed before ';' (RFC 9112 7.1.1)
            if (c == ';') st_ = s_ext_pre_name;
            else if (!is_ows(c)) return fail("invalid chunk extension", used);
            break;
        case s_ext_pre_name:
            if (is_tchar(c)) st_ = s_ext_name;
            else if (!is_ows(c)) return fail("invalid chunk extension", used);
            break;
        case s_ext_name:
            if (is_tchar(c)) break;
            if (c == '=') st_ = s_ext_pre_val;
            else if (c == ';') st_ = s_ext_pre_name;
            else if (is_ows(c)) st_ = s_bws_eq_semi;
            else if (c == '\r') st_ = s_line_lf;
            else return fail("invalid chunk extension", used);
            break;
        case s_bws_eq_semi:
            if (c == '=') st_ = s_ext_pre_val;
            else if (c == ';') st_ = s_ext_pre_name;
            else if (!is_ows(c)) return fail("invalid chunk extension", used);
            break;
        case s_ext_pre_val:
            if (c == '"') st_ = s_ext_qs;
            else if (is_tchar(c)) st_ = s_ext_tok;
            else if (!is_ows(c)) return fail("invalid chunk extension value", used);
            break;
        case s_ext_tok:
            if (is_tchar(c)) break;
            if (c == ';') st_ = s_ext_pre_name;
            else if (is_ows(c)) st_ = s_bws_semi;
            else if (c == '\r') st_ = s_line_lf;
            else return fail("invalid chunk extension value", used);
            break;
        case s_ext_qs:
            if (c == '"') st_ = s_after_qs;
            else if (c == '\\') st_ = s_ext_qs_esc;
            else if (!is(c, c_qdtext)) return fail("invalid quoted-string in chunk extension", used);
            break;
        case s_ext_qs_esc: // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            if (is_field(c)) st_ = s_ext_qs;
            else return fail("invalid quoted-string in chunk extension", used);
            break;
        case s_after_qs:
            if (c == ';') st_ = s_ext_pre_name;
            else if (is_ows(c)) st_ = s_bws_semi;
            else if (c == '\r') st_ = s_line_lf;
            else return fail("invalid chunk extension value", used);
            break;
        case s_line_lf:
            if (c != '\n') return fail("bare CR in chunk line", used);
            line_len_ = 0;
            if (size_ == 0) {
                st_ = s_trailer_line; // last-chunk
                break;
            }
            if (size_ > UINT64_MAX - body_bytes_) return fail("chunked body too large", used);
            remaining_ = size_;
            st_ = s_data;
            return used;

        // ---- CRLF after chunk-data --------------------------------------------------------
        case s_data_cr:
            if (c != '\r') return fail("missing CRLF after chunk data", used);
            st_ = s_data_lf;
            break;
        case s_data_lf:
            if (c != '\n') return fail("bare CR after chunk data", used);
            st_ = s_size_start;
            size_ = 0;
            digits_ = 0;
            line_len_ = 0;
            break;

        // ---- trailer-section CRLF, validated like header fields ---------------------------
        case s_trailer_line:
            if (c == '\r') st_ = s_end_lf;
            else if (is_tchar(c)) st_ = s_tr_name;
            else
                return fail(is_ows(c)    ? "obs-fold in trailer"
                            : c == '\n' ? "bare LF in trailer"
                            : c == ':'  ? "empty trailer field name"
                                        : "invalid character in trailer field name",
                            used);
            break;
        case s_tr_name:
            if (is_tchar(c)) break;
            if (c == ':') st_ = s_tr_value;
            else
                return fail(is_ows(c) ? "whitespace between trailer field name and colon"
                                      : "invalid character in trailer field name",
                            used);
            break;
        case s_tr_value:
            if (is_field(c)) break;
            if (c == '\r') st_ = s_tr_value_lf;
            else return fail(c == '\n' ? "bare LF in trailer" : "control character in trailer value", used);
            break;
        case s_tr_value_lf:
            if (c != '\n') return fail("bare CR in trailer", used);
            st_ = s_trailer_line;
            break;
        case s_end_lf:
            if (c != '\n') return fail("bare CR at end of chunked body", used);
            st_ = s_done;
            return used;

        case s_data:
        case s_done:
        case s_error:
            return i; // not ours: feed() handles these before calling us
        }
    }
    return n;
}

} // namespace atlas::http
