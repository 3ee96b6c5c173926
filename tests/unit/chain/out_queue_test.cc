#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "chain/out_queue.hh"

using namespace atlas::chain;

TEST_CASE("the queue keeps order across growth and counts bytes") {
    out_queue q;
    size_t popped = 0;
    for (int i = 1; i <= 100; ++i) {
        out_segment s;
        s.len = size_t(i);
        q.push(s);
        if (i % 3 == 0) {
            CHECK(q.front().len == popped + 1);  // FIFO: the oldest first
            q.pop();
            ++popped;
        }
    }
    CHECK(q.size() == 100 - popped);
    for (size_t i = 1; i < q.size(); ++i) CHECK(q.at(i).len == q.at(i - 1).len + 1);
    CHECK(q.bytes() == 5050);  // pushes count; consumed() is what sending reports
    q.consumed(50);
    CHECK(q.bytes() == 5000);
}

TEST_CASE("arena memory stays put while more is allocated") {
    out_arena_pool pool;
    out_arena a;
    char *first = a.alloc(pool, 100);
    std::memset(first, 'x', 100);
    for (int i = 0; i < 1000; ++i) a.alloc(pool, 100);
    char *big = a.alloc(pool, 100000);
    std::memset(big, 'y', 100000);
    CHECK(first[99] == 'x');
    a.reset(pool);
    CHECK(a.empty());
}
