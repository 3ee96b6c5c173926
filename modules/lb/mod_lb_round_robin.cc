// mod_lb_round_robin: each worker walks the endpoints in order, skipping those that are
// not usable or were already tried for this request. Weights are ignored (use
// lb_weighted_round_robin for them).
#include "common.hh"

namespace atlas::lb {
namespace {

class round_robin {
public:
    static constexpr const char *name = "lb_round_robin";
    using config = no_options;

    // Workers start at different offsets so their first requests do not all hit endpoint 0.
    round_robin(const config &, uint32_t worker_index) : start_(worker_index) {}

    void set_endpoints(std::vector<endpoint> &&eps) {
        bool same = same_members(eps_, eps);
        eps_ = std::move(eps);
        // A health change keeps the rotation; a new membership starts it over.
        if (!same) cursor_ = eps_.empty() ? 0 : start_ % eps_.size();
    }

    void clear() noexcept { eps_.clear(); }

    int32_t pick(const pick_context &ctx) noexcept {
        size_t n = eps_.size();
        for (size_t k = 0; k < n; ++k) {
            size_t i = (cursor_ + k) % n;
            if (!candidate(eps_[i], ctx, i)) continue;
            cursor_ = (i + 1) % n;
            return int32_t(i);
        }
        return -1;
    }

private:
    std::vector<endpoint> eps_;
    size_t cursor_ = 0;
    uint32_t start_;
};

}  // namespace
}  // namespace atlas::lb

ATLAS_LB_MODULE(round_robin, "round robin over usable endpoints")
