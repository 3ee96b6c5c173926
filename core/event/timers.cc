#include "event/timers.hh"

namespace atlas::event {

timer_heap::~timer_heap() {
    for (timer *t : owned_) delete t;
}

timer *timer_heap::alloc() {
    if (free_) {
        timer *t = free_;
        free_ = t->next_free;
        t->next_free = nullptr;
        return t;
    }
    timer *t = new timer;
    owned_.push_back(t);
    return t;
}

void timer_heap::release(timer *t) {
    t->heap_index = UINT32_MAX;
    t->fn = nullptr;
    t->user = nullptr;
    t->next_free = free_;
    free_ = t;
}

timer *timer_heap::start(uint64_t deadline_ms, void (*fn)(void *), void *user) {
    timer *t = alloc();
    t->deadline_ms = deadline_ms;
    t->fn = fn;
    t->user = user;
    t->heap_index = uint32_t(heap_.size());
    heap_.push_back(t);
    sift_up(t->heap_index);
    return t;
}

void timer_heap::cancel(timer *t) {
    if (!t || t->heap_index == UINT32_MAX) return;
    remove_at(t->heap_index);
    release(t);
}

int64_t timer_heap::wait_ms(uint64_t now_ms, int64_t cap) const {
    if (heap_.empty()) return cap;
    uint64_t d = heap_[0]->deadline_ms;
    if (d <= now_ms) return 0;
    uint64_t w = d - now_ms;
    return w > uint64_t(cap) ? cap : int64_t(w);
}

void timer_heap::expire(uint64_t now_ms) {
    while (!heap_.empty() && heap_[0]->deadline_ms <= now_ms) {
        timer *t = heap_[0];
        remove_at(0);
        auto fn = t->fn;
        void *user = t->user;
        release(t);
        fn(user);
    }
}

void timer_heap::remove_at(uint32_t i) {
    uint32_t last = uint32_t(heap_.size() - 1);
    heap_[i]->heap_index = UINT32_MAX;
    if (i != last) {
        heap_[i] = heap_[last];
        heap_[i]->heap_index = i;
        heap_.pop_back();
        sift_down(i);
        sift_up(i);
    } else {
        heap_.pop_back();
    }
}

void timer_heap::sift_up(uint32_t i) {
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (heap_[p]->deadline_ms <= heap_[i]->deadline_ms) break;
        std::swap(heap_[p], heap_[i]);
        heap_[p]->heap_index = p;
        heap_[i]->heap_index = i;
        i = p;
    }
}

void timer_heap::sift_down(uint32_t i) {
    uint32_t n = uint32_t(heap_.size());
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_[l]->deadline_ms < heap_[m]->deadline_ms) m = l;
        if (r < n && heap_[r]->deadline_ms < heap_[m]->deadline_ms) m = r;
        if (m == i) break;
        std::swap(heap_[m], heap_[i]);
        heap_[m]->heap_index = m;
        heap_[i]->heap_index = i;
        i = m;
    }
}

}  // namespace atlas::event
