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

TEST_CASE("a queue that never empties returns the blocks of what it sent") {
    // A stream refilled before it drains: 4 KiB pieces, one sent for each one queued,
    // about 64 KiB always waiting. Its blocks must stay around the backlog, not the
    // 16 MiB that went through.
    out_arena_pool pool;
    out_queue q;
    std::string piece(4096, 'x');
    auto queue_one = [&] {
        atlas_iovec_t v{piece.data(), piece.size()};
        q.append_iov(pool, &v, 1, false, nullptr, nullptr, nullptr);
    };
    for (int i = 0; i < 16; ++i) queue_one();
    for (int i = 0; i < 4096; ++i) {
        queue_one();
        out_segment &s = q.front();
        CHECK(std::string_view(s.data, s.len) == piece);  // still intact when sent
        s.data += s.len;  // as the worker leaves a fully sent segment
        s.len = 0;
        q.consumed(piece.size());
        q.pop();
    }
    CHECK(q.size() == 16);
    // Kept until the queue empties, that would be 1,028 blocks; live ones hold the 16
    // waiting pieces (4 per block) and the one being filled.
    CHECK(q.arena.blocks() <= 6);
}

TEST_CASE("a segment outside the arena (a module's buffer) frees nothing") {
    out_arena_pool pool;
    out_queue q;
    std::string piece(100, 'y');
    atlas_iovec_t v{piece.data(), piece.size()};
    q.append_iov(pool, &v, 1, false, nullptr, nullptr, nullptr);  // copied
    q.append_iov(pool, &v, 1, true, nullptr, nullptr, nullptr);   // referenced
    q.append_iov(pool, &v, 1, false, nullptr, nullptr, nullptr);  // copied
    q.pop();
    q.pop();  // the referenced one
    CHECK(std::string_view(q.front().data, q.front().len) == piece);
    CHECK(q.arena.blocks() == 1);
}

TEST_CASE("a big copy goes into pooled blocks, in order, done on its last piece") {
    out_arena_pool pool;
    out_queue q;
    std::string small(100, 's');
    atlas_iovec_t first{small.data(), small.size()};
    q.append_iov(pool, &first, 1, false, nullptr, nullptr, nullptr);
    // 64 KiB + 7 in three gather elements, one of them empty.
    std::string a(40000, 'a'), b(25543, 'b');
    atlas_iovec_t v[3] = {{a.data(), a.size()}, {nullptr, 0}, {b.data(), b.size()}};
    int done_calls = 0;
    auto done = [](void *user, int32_t) { ++*static_cast<int *>(user); };
    size_t pushed = q.append_iov(pool, v, 3, false, done, &done_calls, nullptr);
    CHECK(pushed == 5);  // fills the first block's 16,284 left, then 16 KiB blocks
    CHECK(q.size() == 6);
    CHECK(q.bytes() == 100 + a.size() + b.size());
    std::string got;
    for (size_t i = 1; i < q.size(); ++i) {
        const out_segment &s = q.at(i);
        CHECK(s.len <= out_arena_pool::block_size);
        CHECK(bool(s.done) == (i + 1 == q.size()));
        got.append(s.data, s.len);
    }
    CHECK(got == a + b);
    CHECK(q.arena.blocks() == 5);
    // Sent in order: each piece lets go of the blocks before its own.
    while (!q.empty()) {
        out_segment &s = q.front();
        s.data += s.len;
        s.len = 0;
        if (s.done) s.done(s.user, 0);
        q.pop();
    }
    CHECK(done_calls == 1);
    CHECK(q.arena.blocks() <= 1);
}
