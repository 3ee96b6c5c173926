// GET /metrics: the Prometheus text exposition format (0.0.4), rendered on the main
// thread from the per-worker counter shards (summed here) and the registry's state.
#pragma once

#include <cstdint>
#include <string>

namespace atlas::chain {
struct runtime;
}
namespace atlas::upstream {
class registry;
}

namespace atlas::admin {

struct metrics_source {
    const chain::runtime *rt = nullptr;  // the runtime in use: listeners and routes
    const upstream::registry *registry = nullptr;
    uint64_t uptime_s = 0;
};

std::string render_metrics(const metrics_source &src);

}  // namespace atlas::admin
