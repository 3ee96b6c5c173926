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

    void set_endpoints(std::vector<endpoint> &&eps) { ends_.set(std::move(eps)); }
    void clear() noexcept { ends_.clear(); }
    void take(uint32_t i) noexcept { ends_.take(i); }
    void release(uint32_t i) noexcept { ends_.release(i); }

    int32_t pick(const pick_context &ctx) noexcept {
        uint64_t total = 0;
        size_t candidates = 0, only = 0;
        for (size_t i = 0; i < ends_.eps.size(); ++i) {
            if (!candidate(ends_.eps[i], ctx, i)) continue;
            total += ends_.eps[i].weight;
            ++candidates;
            only = i;
        }
        if (candidates == 0) return -1;
        if (candidates == 1) return int32_t(only);
        size_t a = sample(ctx, total, SIZE_MAX);
        size_t b = sample(ctx, total - ends_.eps[a].weight, a);
        const uint32_t *load = ends_.load(ctx);
        // On a tie the first sample wins, so at equal load the shares follow the weights.
        return int32_t(less_loaded(load[b], ends_.eps[b].weight, load[a], ends_.eps[a].weight) ? b : a);
    }

private:
    // Weighted draw among candidates other than `skip`, whose weights sum to `total`.
    size_t sample(const pick_context &ctx, uint64_t total, size_t skip) noexcept {
        uint64_t r = rng_.below(total);
        size_t last = SIZE_MAX;
        for (size_t i = 0; i < ends_.eps.size(); ++i) {
            if (i == skip || !candidate(ends_.eps[i], ctx, i)) continue;
            if (r < ends_.eps[i].weight) return i;
            r -= ends_.eps[i].weight;
            last = i;
        }
        return last;  // unreachable: r < total
    }

    counted_endpoints ends_;
    prng rng_;
};

}  // namespace
}  // namespace atlas::lb

ATLAS_LB_MODULE(p2c, "power of two random choices by in-flight requests")
