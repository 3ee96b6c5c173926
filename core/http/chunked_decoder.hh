// Incremental decoder for chunked request bodies (RFC 9112 7.1), strict about framing.
//
// Only the body bytes are handed out (as views into the caller's input, no copy); chunk
// extensions are validated and dropped; trailer fields are validated like header fields and
// dropped. Any framing error is final: a connection with a broken body cannot be resynchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace atlas::http {

class chunked_decoder {
public:
    enum class status { need_more, done, error };

    static constexpr uint32_t max_chunk_line = 4096;    // chunk-size + extensions, excluding CRLF
    static constexpr uint32_t max_trailer_bytes = 8192; // whole trailer section incl. its final CRLF
    static constexpr uint32_t max_size_digits = 16;     // significant hex digits: 16 always fit in 64 bits

    // Consumes bytes from `in`; for each piece of body data calls on_data(std::string_view) (a view
    // into `in`). Returns status; `consumed` = bytes of `in` used (on done: up to and including the
    // final CRLF of the trailer section, the rest belongs to the next request). On need_more all of
    // `in` was used. After done or error, further calls consume nothing and return the same status.
    template <class F>
    status feed(std::string_view in, size_t &consumed, F &&on_data);

    const char *error_reason() const { return reason_; }
    uint64_t body_bytes() const { return body_bytes_; } // total decoded so far
    void reset() { *this = chunked_decoder{}; }

private:
    enum state : uint8_t {
        // chunk line (size + extensions): bytes count against max_chunk_line
        s_size_start,   // expecting the first HEXDIG
        s_size,         // in chunk-size
        s_bws_semi,     // whitespace seen: only ';' may follow
        s_ext_pre_name, // after ';' (BWS allowed), expecting an extension name
        s_ext_name,     // in an extension name
        s_bws_eq_semi,  // whitespace after a name: '=' or ';' may follow
        s_ext_pre_val,  // after '=' (BWS allowed)
        s_ext_tok,      // in a token value
        s_ext_qs,       // in a quoted-string value
        s_ext_qs_esc,   // after a backslash in a quoted-string
        s_after_qs,     // after the closing quote
        s_line_lf,      // after the CR of the chunk line
        // data
        s_data,
        s_data_cr,
        s_data_lf,
        // trailer section: bytes count against max_trailer_bytes
        s_trailer_line,
        s_tr_name,
        s_tr_value,
        s_tr_value_lf,
        s_end_lf,
        // final
        s_done,
        s_error,
    };

    // Parses framing bytes (chunk lines, the CRLF after data, trailers) at p; returns the bytes
    // used. Stops on entering s_data, s_done or s_error, or at n. Out of line: it is the cold part.
    size_t parse_control(const char *p, size_t n);
    size_t fail(const char *why, size_t used) {
        st_ = s_error;
        reason_ = why;
        return used;
    }

    uint64_t size_ = 0;      // chunk-size being parsed
    uint64_t remaining_ = 0; // data bytes left in the current chunk
    uint64_t body_bytes_ = 0;
    uint32_t line_len_ = 0; // bytes of the current chunk line, or of the trailer section
    uint8_t digits_ = 0;
    state st_ = s_size_start;
    const char *reason_ = nullptr;
};

template <class F>
chunked_decoder::status chunked_decoder::feed(std::string_view in, size_t &consumed, F &&on_data) {
    size_t i = 0;
    const size_t n = in.size();
    for (;;) {
        if (st_ == s_data) {
            // Hot path: hand out as much of the chunk as is buffered, in one view.
            if (i == n) break;
            const size_t avail = n - i;
            const size_t take = remaining_ < avail ? static_cast<size_t>(remaining_) : avail;
            remaining_ -= take;
            body_bytes_ += take;
            if (remaining_ == 0) st_ = s_data_cr;
            on_data(in.substr(i, take));
            i += take;
            continue;
        }
        if (st_ == s_done) {
            consumed = i;
            return status::done;
        }
        if (st_ == s_error) {
            consumed = i;
            return status::error;
        }
        if (i == n) break;
        i += parse_control(in.data() + i, n - i);
    }
    consumed = i;
    return status::need_more;
}

} // namespace atlas::http
