#include "control/loop.hh"

#include <algorithm>

#include "event/clock.hh"

namespace atlas::control {

namespace {
// Few connections (admin clients, health checks): a small ring and buffer pool.
constexpr unsigned ring_entries = 256;
constexpr unsigned recv_buffers = 64;
constexpr unsigned recv_buffer_size = 4096;
}  // namespace

bool loop::init(std::string &err) {
    if (!ring_.init(ring_entries, recv_buffers, recv_buffer_size, err)) return false;
    now_ms_ = event::monotonic_ms();
    return true;
}

void loop::dispatch(void *, const event::completion &c) {
    if (event::user_data_op(c.user_data) == event::op::ignore) return;
    handler *h = event::user_data_ptr<handler>(c.user_data);
    if (h) h->on_completion(event::user_data_op(c.user_data), c);
}

void loop::turn(int64_t max_wait_ms) {
    int64_t cap = max_wait_ms < 0 ? 60000 : max_wait_ms;
    int64_t wait = timers_.wait_ms(now_ms_, cap);
    ring_.run_once(wait, &loop::dispatch, this);
    now_ms_ = event::monotonic_ms();
    timers_.expire(now_ms_);
}

}  // namespace atlas::control
