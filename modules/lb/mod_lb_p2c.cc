// mod_lb_p2c: power of two choices. Sample two distinct usable, untried endpoints in
// proportion to their weights and take the one with fewer requests in flight per unit
// of weight. Nearly as good as least connections at spreading load, without every
// worker piling onto the same "least loaded" server when counts are stale. Counts come
// from ctx->inflight (all workers) when given, else from this worker's on_take/on_release.
#include "common.hh"

namespace atlas::lb {
namespace {

class p2c {
public:
    static constexpr const char *name = "lb_p2c";
    using config = no_options;

    p2c(const config &, uint32_t worker_index) : rng_(prng::for_worker(worker_index)) {}

    void set_endpoints(std::vector<endpoint> &&eps) {
        std::vector<uint32_t> counts = remap_counts(eps_, own_.counts, eps);
        eps_ = std::move(eps);
        own_.counts = std::move(counts);
    }

    void clear() noexcept {
        eps_.clear();
        own_.counts.clear();
    }

    void take(uint32_t i) noexcept { own_.take(i); }
    void release(uint32_t i) noexcept { own_.release(i); }

    int32_t pick(const pick_context &ctx) noexcept {
        uint64_t total = 0;
        size_t candidates = 0, only = 0;
        for (size_t i = 0; i < eps_.size(); ++i) {
            if (!candidate(eps_[i], ctx, i)) continue;
            total += eps_[i].weight;
            ++candidates;
            only = i;
        }
        if (candidates == 0) return -1;
        if (candidates == 1) return int32_t(only);
        size_t a = sample(ctx, total, SIZE_MAX);
        size_t b = sample(ctx, total - eps_[a].weight, a);
        const uint32_t *load = ctx.inflight ? ctx.inflight : own_.counts.data();
        // On a tie the first sample wins, so at equal load the shares follow the weights.
        return int32_t(less_loaded(load[b], eps_[b].weight, load[a], eps_[a].weight) ? b : a);
    }

private:
    // Weighted draw among candidates other than `skip`, whose weights sum to `total`.
    size_t sample(const pick_context &ctx, uint64_t total, size_t skip) noexcept {
        uint64_t r = rng_.below(total);
        size_t last = SIZE_MAX;
        for (size_t i = 0; i < eps_.size(); ++i) {
            if (i == skip || !candidate(eps_[i], ctx, i)) continue;
            if (r < eps_[i].weight) return i;
            r -= eps_[i].weight;
            last = i;
        }
        return last;  // unreachable: r < total
    }

    std::vector<endpoint> eps_;
    own_counts own_;
    prng rng_;
};

}  // namespace
}  // namespace atlas::lb

ATLAS_LB_MODULE(p2c, "power of two random choices by in-flight requests")
