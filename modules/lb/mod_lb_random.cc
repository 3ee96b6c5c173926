// mod_lb_random: weighted random choice among usable, untried endpoints. Each worker has
// its own PRNG, so there is no shared state and no lock.
#include "common.hh"

namespace atlas::lb {
namespace {

class random_policy {
public:
    using config = no_options;

    static config *make_config(atlas_slice_t json, std::string_view key, std::string &error) {
        std::vector<std::pair<std::string, std::string>> opts;
        if (!parse_options(json, key, "lb_random", {}, opts, error)) return nullptr;
        return new config{};
    }

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

const atlas_module_t descriptor =
    make_descriptor("lb_random", "weighted random choice", &adapter<random_policy>::table);

}  // namespace
}  // namespace atlas::lb

extern "C" ATLAS_EXPORT const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host) {
    atlas::lb::module_ctx.host = host;
    atlas::lb::module_ctx.self = &atlas::lb::descriptor;
    return &atlas::lb::descriptor;
}
