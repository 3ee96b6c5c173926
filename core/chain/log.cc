#include "chain/log.hh"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace atlas::chain::log {

void line(std::string_view level, std::string_view message) {
    char buf[2048];
    int n = std::snprintf(buf, sizeof buf, "atlasd[%d]: %.*s: %.*s\n", int(getpid()), int(level.size()),
                          level.data(), int(message.size()), message.data());
    if (n < 0) return;
    size_t len = size_t(n) < sizeof buf ? size_t(n) : sizeof buf - 1;
    if (len == sizeof buf - 1) buf[len - 1] = '\n';
    ssize_t r = write(STDERR_FILENO, buf, len);
    (void)r;
}

namespace {
void vline(const char *level, const char *fmt, va_list ap) {
    char msg[1800];
    int n = std::vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0) return;
    line(level, std::string_view(msg, size_t(n) < sizeof msg ? size_t(n) : sizeof msg - 1));
}
std::atomic<long> last_warn{0};
}  // namespace

void error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline("error", fmt, ap);
    va_end(ap);
}
void warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline("warn", fmt, ap);
    va_end(ap);
}
void info(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline("info", fmt, ap);
    va_end(ap);
}
void rate_limited_warn(const char *fmt, ...) {
    long now = long(time(nullptr));
    long prev = last_warn.load(std::memory_order_relaxed);
    if (prev == now || !last_warn.compare_exchange_strong(prev, now)) return;
    va_list ap;
    va_start(ap, fmt);
    vline("warn", fmt, ap);
    va_end(ap);
}

}  // namespace atlas::chain::log
