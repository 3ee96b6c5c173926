// mod_lb_weighted_round_robin: nginx's smooth weighted round robin. Every candidate's
// `current` grows by its weight, the largest wins and gives back the total, so weights
// 3:2:1 yield a b a c b a: exact shares in every cycle, and picks of one server are
// spread through the cycle instead of coming in bursts.
#include "common.hh"

namespace atlas::lb {
namespace {

class weighted_round_robin {
public:
    static constexpr const char *name = "lb_weighted_round_robin";
    using config = no_options;

    weighted_round_robin(const config &, uint32_t) {}

    void set_endpoints(std::vector<endpoint> &&eps) {
        bool same = same_members(eps_, eps);
        for (size_t i = 0; same && i < eps.size(); ++i)
            same = eps[i].weight == eps_[i].weight && eps[i].usable == eps_[i].usable;
        if (!same) current_.assign(eps.size(), 0);  // any change: start a fresh cycle
        eps_ = std::move(eps);
    }

    void clear() noexcept {
        eps_.clear();
        current_.clear();
    }

    int32_t pick(const pick_context &ctx) noexcept {
        int64_t total = 0;
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < eps_.size(); ++i) {
            if (!candidate(eps_[i], ctx, i)) continue;
            current_[i] += eps_[i].weight;
            total += eps_[i].weight;
            if (best == SIZE_MAX || current_[i] > current_[best]) best = i;
        }
        if (best == SIZE_MAX) return -1;
        current_[best] -= total;
        return int32_t(best);
    }

private:
    std::vector<endpoint> eps_;
    std::vector<int64_t> current_;  // sums of weights stay within n * 2^32: no overflow
};

}  // namespace
}  // namespace atlas::lb

ATLAS_LB_MODULE(weighted_round_robin, "smooth weighted round robin")
