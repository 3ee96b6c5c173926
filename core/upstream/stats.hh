// Counters kept per worker and summed when scraped: each shard has one writer (its
// worker), which adds with a relaxed load + store (no locked instruction, no shared
// cache line); the main thread reads with relaxed loads. Shards are cache-line aligned.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace atlas::upstream {

class counter {
public:
    void add(uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void sub(uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
    uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

// Latency buckets (upper bounds, seconds) as Prometheus client libraries default to.
inline constexpr std::array<double, 11> latency_bounds_s = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                            0.5,   1,    2.5,   5,    10};
inline constexpr std::array<uint64_t, 11> latency_bounds_us = {5000,   10000,  25000,   50000,   100000, 250000,
                                                               500000, 1000000, 2500000, 5000000, 10000000};

// A histogram as non-cumulative bucket counts (the last one is +Inf); the scrape adds them up.
struct histogram {
    std::array<counter, latency_bounds_us.size() + 1> buckets;
    counter sum_us;

    void observe(uint64_t us) noexcept {
        size_t i = 0;
        while (i < latency_bounds_us.size() && us > latency_bounds_us[i]) ++i;
        buckets[i].add();
        sum_us.add(us);
    }
};

// 1xx..5xx; anything else counts as 5xx (a status the core could not even frame).
inline size_t status_class(unsigned status) noexcept { return status >= 100 && status < 600 ? status / 100 - 1 : 4; }

// One worker's counts for one upstream server.
struct alignas(64) server_shard {
    counter attempts;               // requests sent (or tried) to this server
    counter retries;                // of those, attempts that were retries
    std::array<counter, 5> responses;  // response heads by status class
    counter failures;               // refused, reset, timed out, bad response
    counter pool_hits, pool_misses; // keep-alive connection reused / a new one opened
    histogram latency;              // request sent -> response head
};

// One worker's counts for one upstream as a whole.
struct alignas(64) group_shard {
    counter no_server;              // 503: no usable server
    counter budget_exhausted;       // a retry the budget refused
};

}  // namespace atlas::upstream
