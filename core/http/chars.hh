// Character classes and ASCII helpers shared by the HTTP/1.1 codec and the core code around it.
// One 256-entry table: a single load + mask answers "is this a tchar / target char / field char".
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace atlas::http::chars {

enum : uint8_t {
    c_tchar = 1,   // token character (RFC 9110 5.6.2)
    c_target = 2,  // request-target byte we accept: visible ASCII 0x21-0x7E except '#'
    c_field = 4,   // field-content byte: VCHAR, SP, HTAB, obs-text (0x80-0xFF)
    c_hex = 8,     // HEXDIG
    c_digit = 16,  // DIGIT
    c_qdtext = 32, // quoted-string qdtext (RFC 9110 5.6.4): HTAB SP 0x21 0x23-0x5B 0x5D-0x7E obs-text
    c_regname = 64, // RFC 3986 reg-name byte other than '%': unreserved / sub-delims
};

constexpr std::array<uint8_t, 256> make_table() {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        uint8_t v = 0;
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        if (alpha || digit) v |= c_tchar;
        switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
        case '-': case '.': case '^': case '_': case '`': case '|': case '~':
            v |= c_tchar;
            break;
        default:
            break;
        }
        if (c >= 0x21 && c <= 0x7E && c != '#') v |= c_target;
        if (c == '\t' || (c >= 0x20 && c != 0x7F)) v |= c_field;
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= c_hex;
        if (digit) v |= c_digit;
        if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) || c >= 0x80)
            v |= c_qdtext;
        if (alpha || digit) v |= c_regname;
        switch (c) {
        case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'': case '(':
        case ')': case '*': case '+': case ',': case ';': case '=':
            v |= c_regname;
            break;
        default:
            break;
        }
        t[static_cast<size_t>(c)] = v;
    }
    return t;
}

inline constexpr std::array<uint8_t, 256> table = make_table();

inline bool is(char c, uint8_t cls) { return (table[static_cast<unsigned char>(c)] & cls) != 0; }
inline bool is_tchar(char c) { return is(c, c_tchar); }
inline bool is_target(char c) { return is(c, c_target); }
inline bool is_field(char c) { return is(c, c_field); }
inline bool is_hex(char c) { return is(c, c_hex); }
inline bool is_digit(char c) { return is(c, c_digit); }
inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

inline unsigned hex_value(char c) {
    const unsigned u = static_cast<unsigned char>(c);
    return u <= '9' ? u - '0' : (u | 0x20u) - 'a' + 10;
}

inline char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }

// Case-insensitive ASCII compare against a lowercase literal; the length test comes first so
// most non-matching names cost one compare.
inline bool iequals(std::string_view s, std::string_view lower) {
    if (s.size() != lower.size()) return false;
    for (size_t i = 0; i < s.size(); ++i)
        if (to_lower(s[i]) != lower[i]) return false;
    return true;
}

// Case-insensitive ASCII compare of two arbitrary strings (header names from two sides).
inline bool iequals_nocase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (to_lower(a[i]) != to_lower(b[i])) return false;
    return true;
}

inline bool istarts_with(std::string_view s, std::string_view lower_prefix) {
    return s.size() >= lower_prefix.size() && iequals(s.substr(0, lower_prefix.size()), lower_prefix);
}

// OWS = *( SP / HTAB ) trimmed from both ends (RFC 9110 5.6.3).
inline std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

// --- SWAR helpers: test 8 bytes per step for "anything unusual here?" -------------------------
// Each predicate is exact as a boolean (it may flag the wrong lane, never a clean word), so a hit
// only means "fall back to the byte loop for this word".
inline uint64_t load64(const char *p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof v); // unaligned-safe; compiles to one load
    return v;
}
inline constexpr uint64_t k_ones = 0x0101010101010101ull;
inline constexpr uint64_t k_highs = 0x8080808080808080ull;
// some byte < n (n <= 128)
inline bool has_less(uint64_t x, unsigned n) { return ((x - k_ones * n) & ~x & k_highs) != 0; }
// some byte == b
inline bool has_byte(uint64_t x, unsigned b) {
    const uint64_t y = x ^ (k_ones * b);
    return ((y - k_ones) & ~y & k_highs) != 0;
}
// some byte >= 0x7F (carries out of 0xFF lanes only happen when a lane already has its high bit)
inline bool has_7f_or_high(uint64_t x) { return ((x | (x + k_ones)) & k_highs) != 0; }

// Plain request-target word: every byte in 0x21..0x7E and none is '#'.
inline bool target_word_plain(uint64_t x) { return !has_less(x, 0x21) && !has_7f_or_high(x) && !has_byte(x, '#'); }
// Plain field-value word: no byte < 0x20 and no DEL (HTAB is legal but rare: byte loop handles it).
inline bool value_word_plain(uint64_t x) { return !has_less(x, 0x20) && !has_byte(x, 0x7F); }

// Advances over bytes accepted by `byte_ok`, 8 at a time while `word_ok` says a word is clean.
template <class WordOk, class ByteOk>
inline const char *skip_run(const char *p, const char *lim, WordOk word_ok, ByteOk byte_ok) {
    for (;;) {
        while (lim - p >= 8 && word_ok(load64(p))) p += 8;
        const char *stop = (lim - p >= 8) ? p + 8 : lim;
        while (p < stop && byte_ok(*p)) ++p;
        if (p < stop || p >= lim) return p;
    }
}

} // namespace atlas::http::chars
