// Duration and size strings as written in the config ("1m30s", "16KiB").
#include <cctype>
#include <limits>

#include "config/loader.hh"

namespace atlas::config {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads decimal digits at `i` into `out`; false when there are none or they overflow.
bool read_digits(std::string_view s, std::size_t &i, uint64_t &out, std::size_t *count = nullptr) {
    std::size_t start = i;
    out = 0;
    for (; i < s.size() && is_digit(s[i]); ++i) {
        if (__builtin_mul_overflow(out, 10u, &out) ||
            __builtin_add_overflow(out, static_cast<uint64_t>(s[i] - '0'), &out))
            return false;
    }
    if (count) *count = i - start;
    return i > start;
}

constexpr int64_t max_ms = std::numeric_limits<duration::rep>::max();

}  // namespace

std::optional<duration> parse_duration(std::string_view s) {
    if (s.empty()) return std::nullopt;
    std::size_t i = 0;
    uint64_t whole = 0;
    if (read_digits(s, i, whole) && i == s.size()) {  // bare integer: seconds
        if (whole > static_cast<uint64_t>(max_ms) / 1000) return std::nullopt;
        return duration(static_cast<int64_t>(whole) * 1000);
    }

    // Components "<number>[.<fraction>]<unit>", units strictly decreasing (h, m, s, ms).
    struct unit {
        std::string_view name;
        uint64_t ms;
    };
    static constexpr unit units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    std::size_t next_unit = 0;  // index of the largest unit still allowed
    uint64_t total = 0;
    i = 0;
    while (i < s.size()) {
        if (!read_digits(s, i, whole)) return std::nullopt;
        uint64_t frac = 0, scale = 1;
        if (i < s.size() && s[i] == '.') {
            ++i;
            std::size_t n = 0;
            if (!read_digits(s, i, frac, &n) || n > 9) return std::nullopt;
            for (std::size_t k = 0; k < n; ++k) scale *= 10;
        }
        // "ms" before "m": pick the longest unit name that matches here.
        std::size_t found = sizeof units / sizeof units[0];
        for (std::size_t u = 0; u < sizeof units / sizeof units[0]; ++u) {
            auto name = units[u].name;
            if (s.substr(i, name.size()) == name &&
                (found == sizeof units / sizeof units[0] || name.size() > units[found].name.size()))
                found = u;
        }
        if (found == sizeof units / sizeof units[0] || found < next_unit) return std::nullopt;
        i += units[found].name.size();
        next_unit = found + 1;

        uint64_t ms = units[found].ms, part = 0;
        if (__builtin_mul_overflow(whole, ms, &part)) return std::nullopt;
        // frac < 1e9 and ms <= 3.6e6: the product fits; it must come out in whole ms.
        if ((frac * ms) % scale != 0) return std::nullopt;
        if (__builtin_add_overflow(part, frac * ms / scale, &part) ||
            __builtin_add_overflow(total, part, &total))
            return std::nullopt;
    }
    if (total > static_cast<uint64_t>(max_ms)) return std::nullopt;
    return duration(static_cast<int64_t>(total));
}

std::optional<uint64_t> parse_size(std::string_view s) {
    std::size_t i = 0;
    uint64_t n = 0;
    if (!read_digits(s, i, n)) return std::nullopt;
    std::string suffix;
    for (; i < s.size(); ++i) suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    // Binary multiples throughout: "16k", "16kb" and "16KiB" all mean 16384.
    static constexpr struct {
        std::string_view letter;
        unsigned shift;
    } scales[] = {{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40}};
    unsigned shift = 0;
    if (!suffix.empty() && suffix != "b") {
        bool known = false;
        for (const auto &sc : scales) {
            if (suffix == sc.letter || suffix == std::string(sc.letter) + "b" ||
                suffix == std::string(sc.letter) + "ib") {
                shift = sc.shift;
                known = true;
            }
        }
        if (!known) return std::nullopt;
    }
    if (shift && n > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
    return n << shift;
}

}  // namespace atlas::config
