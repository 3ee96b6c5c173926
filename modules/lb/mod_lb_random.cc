// mod_lb_random: weighted random choice among usable, untried endpoints. Each worker has
// its own PRNG, so there is no shared state and no lock.
#include "common.hh"

namespace atlas::lb {
namespace {

class random_policy {
public:
    static constexpr const char *name = "lb_random";
    using config = no_options;

    random_policy(const config &, uint32_t worker_index) : rng_(prng::for_worker(worker_index)) {}

    void set_endpoints(std::vector<endpoint> &&eps) { eps_ = std::move(eps); }
    void clear() noexcept { eps_.clear(); }

    int32_t pick(const pick_context &ctx) noexcept {
        uint64_t total = 0;
        for (size_t i = 0; i < eps_.size(); ++i)
            if (candidate(eps_[i], ctx, i)) total += eps_[i].weight;
        if (!total) return -1;
        uint64_t r = rng_.below(total);
        for (size_t i = 0; i < eps_.size(); ++i) {
            if (!candidate(eps_[i], ctx, i)) continue;
            if (r < eps_[i].weight) return int32_t(i);
            r -= eps_[i].weight;
        }
        return -1;  // unreachable: r < total
    }

private:
    std::vector<endpoint> eps_;
    prng rng_;
};

}  // namespace
}  // namespace atlas::lb

ATLAS_LB_MODULE(random_policy, "weighted random choice")
