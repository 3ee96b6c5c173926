#include "event/clock.hh"

#include <cstdio>
#include <cstring>

namespace atlas::event {

uint64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

uint64_t monotonic_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}

void format_http_date(time_t t, char out[30]) {
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    tm g;
    gmtime_r(&t, &g);
    // Fixed width by construction (years 1000-9999); a larger buffer keeps the
    // compiler's truncation analysis quiet without a format that could overflow.
    char tmp[64];
    std::snprintf(tmp, sizeof tmp, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[g.tm_wday], g.tm_mday,
                  months[g.tm_mon], (g.tm_year + 1900) % 10000, g.tm_hour, g.tm_min, g.tm_sec);
    std::memcpy(out, tmp, 29);
    out[29] = 0;
}

const char *date_cache::refresh() {
    time_t now = time(nullptr);
    if (now != second_) {
        second_ = now;
        format_http_date(now, text_);
    }
    return text_;
}

}  // namespace atlas::event
