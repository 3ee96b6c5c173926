#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "event/timers.hh"

using atlas::event::timer;
using atlas::event::timer_heap;

namespace {
std::vector<int> fired;
void record(void *u) { fired.push_back(int(reinterpret_cast<intptr_t>(u))); }
void *tag(int v) { return reinterpret_cast<void *>(intptr_t(v)); }
}  // namespace

TEST_CASE("timers fire in deadline order and only when due") {
    fired.clear();
    timer_heap h;
    h.start(30, record, tag(3));
    h.start(10, record, tag(1));
    h.start(20, record, tag(2));
    CHECK(h.wait_ms(0, 1000) == 10);
    h.expire(5);
    CHECK(fired.empty());
    h.expire(20);
    CHECK(fired == std::vector<int>{1, 2});
    h.expire(100);
    CHECK(fired == std::vector<int>{1, 2, 3});
    CHECK(h.size() == 0);
    CHECK(h.wait_ms(100, 1000) == 1000);
}

TEST_CASE("a cancelled timer never fires and its slot is reused") {
    fired.clear();
    timer_heap h;
    timer *a = h.start(10, record, tag(1));
    timer *b = h.start(20, record, tag(2));
    h.cancel(a);
    CHECK(h.size() == 1);
    timer *c = h.start(5, record, tag(3));
    CHECK(c == a);  // pooled
    h.expire(50);
    CHECK(fired == std::vector<int>{3, 2});
    (void)b;
}

TEST_CASE("random starts and cancels keep the heap ordered") {
    fired.clear();
    timer_heap h;
    std::mt19937 rng(42);
    std::vector<timer *> live;
    std::vector<int> expected;
    for (int i = 0; i < 2000; ++i) {
        uint64_t d = rng() % 10000;
        live.push_back(h.start(d, record, tag(int(d))));
        if (rng() % 3 == 0) {
            size_t k = rng() % live.size();
            h.cancel(live[k]);
            live.erase(live.begin() + long(k));
        }
    }
    h.expire(20000);
    CHECK(fired.size() == live.size());
    for (size_t i = 1; i < fired.size(); ++i) CHECK(fired[i - 1] <= fired[i]);
}
