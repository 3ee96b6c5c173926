// Time sources for the workers: a monotonic millisecond clock and the HTTP
// Date header text, both cached per event-loop turn.
#pragma once

#include <cstdint>
#include <ctime>

namespace atlas::event {

uint64_t monotonic_ms();
// Precise (not coarse) microseconds, for latency histograms; a vDSO call.
uint64_t monotonic_us();

// Formats an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 chars) into out[30].
void format_http_date(time_t t, char out[30]);

class date_cache {
public:
    // Refreshes the text when the wall-clock second changed; returns the 29-char date.
    const char *refresh();
    const char *text() const { return text_; }

private:
    time_t second_ = 0;
    char text_[30] = {};
};

}  // namespace atlas::event
