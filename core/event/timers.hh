// Per-worker one-shot timers: an indexed binary min-heap, so cancelling is
// O(log n) and leaves no garbage behind (keep-alive re-arms would otherwise pile up).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace atlas::event {

struct timer {
    uint64_t deadline_ms = 0;
    uint32_t heap_index = UINT32_MAX;  // UINT32_MAX = not scheduled
    void (*fn)(void *) = nullptr;
    void *user = nullptr;
    timer *next_free = nullptr;
};

class timer_heap {
public:
    timer_heap() = default;
    timer_heap(const timer_heap &) = delete;
    timer_heap &operator=(const timer_heap &) = delete;
    ~timer_heap();

    timer *start(uint64_t deadline_ms, void (*fn)(void *), void *user);
    void cancel(timer *t);  // only on a live timer: a fired or cancelled one may be reused

    // Milliseconds until the earliest deadline (clamped to [0, cap]); cap when empty.
    int64_t wait_ms(uint64_t now_ms, int64_t cap) const;
    // Fires every timer whose deadline <= now; a fired timer is released before its fn runs.
    void expire(uint64_t now_ms);
    size_t size() const { return heap_.size(); }

private:
    void sift_up(uint32_t i);
    void sift_down(uint32_t i);
    void remove_at(uint32_t i);
    timer *alloc();
    void release(timer *t);

    std::vector<timer *> heap_;
    timer *free_ = nullptr;
    std::vector<timer *> owned_;  // every timer ever allocated, freed in the destructor
};

}  // namespace atlas::event
