// mod_lb_least_connections: the usable, untried endpoint with the fewest requests in
// flight per unit of weight. The counts are the host's (ctx->inflight, all workers) when
// it provides them, else this worker's own, kept by on_take / on_release. Ties go round
// robin so equally loaded servers share the load instead of the first one taking all.
#include "common.hh"

namespace atlas::lb {
namespace {

class least_connections {
public:
    static constexpr const char *name = "lb_least_connections";
    using config = no_options;

    least_connections(const config &, uint32_t worker_index) : start_(worker_index) {}

    void set_endpoints(std::vector<endpoint> &&eps) {
        bool same = same_members(ends_.eps, eps);
        ends_.set(std::move(eps));
        if (!same) cursor_ = ends_.eps.empty() ? 0 : start_ % ends_.eps.size();
    }

    void clear() noexcept { ends_.clear(); }
    void take(uint32_t i) noexcept { ends_.take(i); }
    void release(uint32_t i) noexcept { ends_.release(i); }

    int32_t pick(const pick_context &ctx) noexcept {
        const uint32_t *load = ends_.load(ctx);
        const std::vector<endpoint> &eps = ends_.eps;
        size_t n = eps.size();
        size_t best = SIZE_MAX;
        // Scanning from the cursor and keeping only strictly better ones makes the
        // first tied endpoint after the previous pick win.
        for (size_t k = 0; k < n; ++k) {
            size_t i = (cursor_ + k) % n;
            if (!candidate(eps[i], ctx, i)) continue;
            if (best == SIZE_MAX || less_loaded(load[i], eps[i].weight, load[best], eps[best].weight)) best = i;
        }
        if (best == SIZE_MAX) return -1;
        cursor_ = (best + 1) % n;
        return int32_t(best);
    }

private:
    counted_endpoints ends_;
    size_t cursor_ = 0;
    uint32_t start_;
};

}  // namespace
}  // namespace atlas::lb

ATLAS_LB_MODULE(least_connections, "fewest in-flight requests per weight")
