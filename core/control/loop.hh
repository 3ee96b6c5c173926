// The main thread's event loop: its own io_uring (through event::ring, like a worker's)
// and timers, for what the main thread does besides config and modules — signals,
// reports from the workers, active health checks and the admin API. It never touches a
// worker's connections.
#pragma once

#include <cstdint>
#include <string>

#include "event/ring.hh"
#include "event/timers.hh"

namespace atlas::control {

// Something with operations in flight on the loop's ring: user_data is the handler
// pointer tagged with the operation (in its low four bits: hence the alignment).
class alignas(16) handler {
public:
    virtual void on_completion(event::op op, const event::completion &c) = 0;

protected:
    ~handler() = default;
};

inline uint64_t user_data(handler *h, event::op op) { return event::make_user_data(h, op); }

class loop {
public:
    bool init(std::string &err);

    event::ring &ring() { return ring_; }
    event::timer_heap &timers() { return timers_; }
    uint64_t now_ms() const { return now_ms_; }

    // Submits, waits for a completion, the next timer or `max_wait_ms` (-1: no limit),
    // then runs every completion and due timer.
    void turn(int64_t max_wait_ms);

private:
    static void dispatch(void *self, const event::completion &c);

    event::ring ring_;
    event::timer_heap timers_;
    uint64_t now_ms_ = 0;
};

}  // namespace atlas::control
