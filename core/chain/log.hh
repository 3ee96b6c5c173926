// atlasd's log lines: "atlasd[pid]: level: message" on stderr, one write per
// line so lines from several threads never interleave.
#pragma once

#include <string_view>

namespace atlas::chain::log {

void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// At most one line per second for conditions a client or the system can repeat.
void rate_limited_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void line(std::string_view level, std::string_view message);

}  // namespace atlas::chain::log
