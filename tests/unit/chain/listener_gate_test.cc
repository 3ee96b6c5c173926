// The listener gate behind max_connections: slots counted over all workers, and the
// workers waiting for one woken once (runtime.hh).
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "chain/runtime.hh"

using atlas::chain::listener_gate;
using atlas::chain::worker;

namespace {
worker *fake(uintptr_t n) { return reinterpret_cast<worker *>(n * 64); }
}  // namespace

TEST_CASE("a gate admits up to its limit, and without one always") {
    listener_gate g;
    CHECK(g.take(2));
    CHECK(g.take(2));
    CHECK_FALSE(g.take(2));
    CHECK(g.open.load() == 2);  // a refused take leaves the count as it was
    CHECK(g.give_back().empty());
    CHECK(g.take(2));
    CHECK(g.take(0));
    CHECK(g.take(0));
    CHECK(g.open.load() == 4);
}

TEST_CASE("a freed slot wakes each waiting worker once") {
    listener_gate g;
    REQUIRE(g.take(1));
    CHECK_FALSE(g.take(1));
    g.wait(fake(1));
    g.wait(fake(2));
    g.wait(fake(1));  // once per worker
    std::vector<worker *> woken = g.give_back();
    CHECK(woken == std::vector<worker *>{fake(1), fake(2)});
    CHECK(g.open.load() == 0);
    CHECK_FALSE(g.waiting.load());
    REQUIRE(g.take(1));
    CHECK(g.give_back().empty());  // nobody waits any more
}

TEST_CASE("the count stays exact when threads take and give back at once") {
    listener_gate g;
    constexpr int threads = 4, rounds = 20000, limit = 3;
    std::atomic<int> inside{0}, most{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < rounds; ++i) {
                if (!g.take(limit)) continue;
                int n = inside.fetch_add(1) + 1;
                int m = most.load();
                while (n > m && !most.compare_exchange_weak(m, n)) {
                }
                inside.fetch_sub(1);
                g.give_back();
            }
        });
    for (auto &t : ts) t.join();
    CHECK(g.open.load() == 0);
    CHECK(most.load() <= limit);
}
