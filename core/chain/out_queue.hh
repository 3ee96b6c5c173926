// A connection's pending output: an ordered queue of memory and file segments,
// plus an arena of pooled blocks holding the bytes the host copied (response
// heads, chunk framing, copied bodies). Kernel sends read the segments in
// place, so arena memory never moves while it is queued.
#pragma once

#include <atlas/module.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace atlas::chain {

struct exchange;

struct out_segment {
    const char *data = nullptr;  // memory segment: remaining bytes
    size_t len = 0;
    int fd = -1;                 // file segment when >= 0
    uint64_t file_off = 0;
    uint64_t file_left = 0;
    atlas_done_fn done = nullptr;
    void *user = nullptr;
    exchange *ex = nullptr;
    bool is_file() const { return fd >= 0; }
    uint64_t remaining() const { return is_file() ? file_left : len; }
};

// Free blocks shared by all connections of one worker.
class out_arena_pool {
public:
    static constexpr size_t block_size = 16384;
    ~out_arena_pool() {
        for (char *b : free_) std::free(b);
    }
    char *get() {
        if (free_.empty()) return static_cast<char *>(std::malloc(block_size));
        char *b = free_.back();
        free_.pop_back();
        return b;
    }
    void put(char *b) {
        if (free_.size() < 1024) free_.push_back(b);  // keeps at most 16 MiB for reuse
        else std::free(b);
    }

private:
    std::vector<char *> free_;
};

class out_arena {
public:
    out_arena() = default;
    out_arena(const out_arena &) = delete;
    out_arena &operator=(const out_arena &) = delete;
    ~out_arena() { release_all(nullptr); }

    // n bytes of stable memory until reset().
    char *alloc(out_arena_pool &pool, size_t n) {
        if (n > out_arena_pool::block_size / 2) {
            char *p = static_cast<char *>(std::malloc(n));
            big_.push_back({p, n});
            return p;
        }
        if (blocks_.empty() || pos_ + n > out_arena_pool::block_size) {
            blocks_.push_back(pool.get());
            pos_ = 0;
        }
        char *p = blocks_.back() + pos_;
        pos_ += n;
        return p;
    }
    // Between 1 and n bytes of stable memory until reset(): the rest of the current block,
    // or a new one. Big copies go in pieces, into pooled blocks: a freshly malloc'd 64 KiB
    // per copy, freed once sent, made the heap shrink and grow again (page faults were
    // ~13% of atlasd's CPU time relaying bulk streams).
    char *alloc_some(out_arena_pool &pool, size_t n, size_t &got) {
        if (blocks_.empty() || pos_ == out_arena_pool::block_size) {
            blocks_.push_back(pool.get());
            pos_ = 0;
        }
        got = std::min(n, out_arena_pool::block_size - pos_);
        char *p = blocks_.back() + pos_;
        pos_ += got;
        return p;
    }
    // Only when nothing queued refers to the arena any more.
    void reset(out_arena_pool &pool) { release_all(&pool); }
    bool empty() const { return blocks_.empty() && big_.empty(); }
    size_t blocks() const { return blocks_.size() + big_.size(); }

    // A segment whose bytes are at `p` was sent. Segments are sent in the order their
    // bytes were allocated, so every block (and big allocation) older than the one
    // holding p is referred to by nothing any more: it goes now, not when the queue
    // next empties, so a stream whose queue never drains holds its backlog, not its
    // history. A p outside the arena (a referenced module buffer) frees nothing.
    void release_before(out_arena_pool &pool, const char *p) {
        const auto within = [p](const char *base, size_t n) {
            auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base);
            return a >= b && a <= b + n;  // a segment fully sent points one past its end
        };
        auto block = std::find_if(blocks_.begin(), blocks_.end(),
                                  [&](const char *b) { return within(b, out_arena_pool::block_size); });
        if (block != blocks_.end() && block != blocks_.begin()) {
            for (auto it = blocks_.begin(); it != block; ++it) pool.put(*it);
            blocks_.erase(blocks_.begin(), block);
            return;
        }
        auto big = std::find_if(big_.begin(), big_.end(), [&](const big_block &b) { return within(b.p, b.n); });
        if (big != big_.end() && big != big_.begin()) {
            for (auto it = big_.begin(); it != big; ++it) std::free(it->p);
            big_.erase(big_.begin(), big);
        }
    }

private:
    struct big_block {
        char *p;
        size_t n;
    };
    void release_all(out_arena_pool *pool) {
        for (char *b : blocks_) pool ? pool->put(b) : std::free(b);
        for (const big_block &b : big_) std::free(b.p);
        blocks_.clear();
        big_.clear();
        pos_ = 0;
    }
    std::vector<char *> blocks_;
    std::vector<big_block> big_;
    size_t pos_ = 0;
};

// FIFO of segments in a growable ring (capacity is kept across requests).
class out_queue {
public:
    bool empty() const { return head_ == tail_; }
    size_t size() const { return tail_ - head_; }
    out_segment &front() { return ring_[head_ & mask_]; }
    out_segment &at(size_t i) { return ring_[(head_ + i) & mask_]; }
    // Where empty queues return their segment storage and new ones take it from
    // (per worker), so idle connections hold none and busy ones do not malloc.
    void set_storage_pool(std::vector<std::vector<out_segment>> *pool) { pool_ = pool; }
    void give_storage(std::vector<std::vector<out_segment>> &pool) {
        if (!empty() || ring_.empty()) return;
        if (ring_.size() == 4 && pool.size() < 4096) pool.push_back(std::move(ring_));
        ring_ = {};
        mask_ = 0;
        head_ = tail_ = 0;
    }

    void push(const out_segment &s) {
        if (ring_.empty() && pool_ && !pool_->empty()) {
            ring_ = std::move(pool_->back());
            pool_->pop_back();
            mask_ = ring_.size() - 1;
        }
        if (size() == ring_.size()) grow();
        ring_[tail_ & mask_] = s;
        ++tail_;
        bytes_ += s.remaining();
    }
    void pop() {
        if (const out_segment &s = front(); s.data && arena_pool_) arena.release_before(*arena_pool_, s.data);
        ++head_;
        if (empty()) head_ = tail_ = 0;
    }
    // n bytes of stable memory for a segment about to be pushed. An empty queue means
    // nothing refers to the arena any more: it starts over, so a queue that never
    // drains at a flush (a long upload, refilled as soon as it empties) cannot grow it
    // without bound.
    char *alloc(out_arena_pool &pool, size_t n) { return arena_for(pool).alloc(pool, n); }

    // Queues a module's gather list: copied into the arena as one segment, or with
    // ATLAS_WRITE_REF referenced in place (one segment per non-empty element). `done`
    // rides on the last segment; with nothing to send it gets a zero-length segment of
    // its own (none at all without `done`). Returns the number of segments queued.
    size_t append_iov(out_arena_pool &pool, const atlas_iovec_t *iov, size_t iovcnt, bool ref,
                      atlas_done_fn done, void *user, exchange *owner) {
        out_segment s;
        s.ex = owner;
        size_t pushed = 0;
        if (ref) {
            size_t last = iovcnt;
            while (last > 0 && iov[last - 1].len == 0) --last;
            for (size_t i = 0; i < last; ++i) {
                if (!iov[i].len) continue;
                s.data = static_cast<const char *>(iov[i].base);
                s.len = iov[i].len;
                if (i + 1 == last) {
                    s.done = done;
                    s.user = user;
                }
                push(s);
                ++pushed;
            }
        } else {
            size_t total = 0;
            for (size_t i = 0; i < iovcnt; ++i) total += iov[i].len;
            out_arena *a = total ? &arena_for(pool) : nullptr;
            size_t i = 0, off = 0;
            while (total) {
                // A small copy is one segment (a new block when the current one is short
                // of it); a big one goes in block-sized pieces. `done` rides on the last.
                size_t got = total;
                char *p = total <= out_arena_pool::block_size / 2 ? a->alloc(pool, total)
                                                                  : a->alloc_some(pool, total, got);
                s.data = p;
                s.len = got;
                total -= got;
                while (got) {
                    size_t n = std::min(got, iov[i].len - off);
                    if (n) std::memcpy(p, static_cast<const char *>(iov[i].base) + off, n);
                    p += n;
                    got -= n;
                    off += n;
                    if (off == iov[i].len) ++i, off = 0;
                }
                if (!total) {
                    s.done = done;
                    s.user = user;
                }
                push(s);
                ++pushed;
            }
        }
        if (pushed == 0 && done) {
            s = out_segment{};
            s.ex = owner;
            s.done = done;
            s.user = user;
            push(s);
            ++pushed;
        }
        return pushed;
    }

    // Bookkeeping of queued bytes, for backpressure.
    uint64_t bytes() const { return bytes_; }
    void consumed(uint64_t n) { bytes_ -= n; }

    out_arena arena;

private:
    out_arena &arena_for(out_arena_pool &pool) {
        arena_pool_ = &pool;
        if (empty() && !arena.empty()) arena.reset(pool);
        return arena;
    }
    void grow() {
        size_t n = ring_.empty() ? 4 : ring_.size() * 2;  // small: idle connections keep it
        std::vector<out_segment> r(n);
        for (size_t i = 0; i < size(); ++i) r[i] = at(i);
        tail_ = size();
        head_ = 0;
        ring_.swap(r);
        mask_ = n - 1;
    }
    std::vector<out_segment> ring_;
    std::vector<std::vector<out_segment>> *pool_ = nullptr;
    out_arena_pool *arena_pool_ = nullptr;  // the worker's, once anything was copied
    size_t head_ = 0, tail_ = 0, mask_ = 0;
    uint64_t bytes_ = 0;
};

}  // namespace atlas::chain
