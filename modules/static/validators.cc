#include "validators.hh"

#include <cstdio>
#include <cstring>
#include <string>

namespace atlas::static_files {

void format_http_date(time_t t, char out[30]) {
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    tm g;
    gmtime_r(&t, &g);
    char tmp[64];
    std::snprintf(tmp, sizeof tmp, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[g.tm_wday], g.tm_mday,
                  months[g.tm_mon], (g.tm_year + 1900) % 10000, g.tm_hour, g.tm_min, g.tm_sec);
    std::memcpy(out, tmp, 29);
    out[29] = 0;
}

bool parse_http_date(std::string_view text, time_t &out) {
    if (text.size() > 64) return false;
    std::string s(text);
    // strptime in the C locale; each form must consume the whole string.
    static const char *forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
    for (const char *f : forms) {
        tm t{};
        const char *end = strptime(s.c_str(), f, &t);
        if (end && *end == 0) {
            out = timegm(&t);
            return true;
        }
    }
    return false;
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::string_view opaque(std::string_view tag) { return tag.substr(0, 2) == "W/" ? tag.substr(2) : tag; }

}  // namespace

bool none_match(std::string_view header, std::string_view etag) {
    std::string_view mine = opaque(etag);
    while (!header.empty()) {
        size_t comma = header.find(',');
        std::string_view item = trim(header.substr(0, comma));
        if (item == "*") return true;
        if (!item.empty() && opaque(item) == mine) return true;
        if (comma == std::string_view::npos) break;
        header.remove_prefix(comma + 1);
    }
    return false;
}

bool strong_match(std::string_view tag, std::string_view etag) {
    tag = trim(tag);
    return tag.substr(0, 2) != "W/" && etag.substr(0, 2) != "W/" && tag == etag;
}

range_result parse_range(std::string_view h, uint64_t size, uint64_t &first, uint64_t &last) {
    h = trim(h);
    if (h.substr(0, 6) != "bytes=") return range_result::none;
    h = trim(h.substr(6));
    if (h.empty() || h.find(',') != std::string_view::npos) return range_result::none;
    size_t dash = h.find('-');
    if (dash == std::string_view::npos) return range_result::none;
    auto number = [](std::string_view d, uint64_t &v) {
        if (d.empty() || d.size() > 19) return false;
        v = 0;
        for (char ch : d) {
            if (ch < '0' || ch > '9') return false;
            v = v * 10 + uint64_t(ch - '0');
        }
        return true;
    };
    std::string_view a = h.substr(0, dash), b = h.substr(dash + 1);
    uint64_t x = 0, y = 0;
    if (a.empty()) {  // suffix: the last y bytes
        if (!number(b, y)) return range_result::none;
        if (y == 0 || size == 0) return range_result::unsatisfiable;
        first = y >= size ? 0 : size - y;
        last = size - 1;
        return range_result::satisfiable;
    }
    if (!number(a, x)) return range_result::none;
    if (b.empty()) {
        y = UINT64_MAX;
    } else if (!number(b, y) || y < x) {
        return range_result::none;
    }
    if (x >= size) return range_result::unsatisfiable;
    first = x;
    last = y >= size ? size - 1 : y;
    return range_result::satisfiable;
}

}  // namespace atlas::static_files
