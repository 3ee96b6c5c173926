// The admin API's endpoints (JSON via nlohmann), behind admin::server:
//   GET  /status                                    the Go seed's fields + per-server counters
//   GET  /upstreams, /upstreams/{name}              groups, their servers and state
//   GET  /upstreams/{name}/servers[/{address}]      one server: counters, checks, last state changes
//   POST /upstreams/{name}/servers                  {"address": "host:port", "weight": N}
//   DELETE /upstreams/{name}/servers/{address}
//   POST /upstreams/{name}/servers/{address}/drain  (and /ready to take it back)
//   POST /reload                                    rebuild the config; the old one stays on error
//   GET  /config, /modules, /metrics
//   POST/DELETE /backends {"url": ...}              the Go seed's API, on the one upstream
// Every request must carry "Authorization: Bearer <token>" when a token is configured.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin/server.hh"

namespace atlas::chain {
struct runtime;
}
namespace atlas::module {
class loader;
}
namespace atlas::upstream {
class registry;
}

namespace atlas::admin {

struct reload_outcome {
    bool ok = false;
    std::vector<std::string> errors;  // one line each, as atlasd -t prints them
};

struct context {
    upstream::registry *registry = nullptr;
    const module::loader *loader = nullptr;
    std::function<std::shared_ptr<chain::runtime>()> runtime;  // the one in use
    std::function<reload_outcome()> reload;
    std::function<void()> membership_changed;  // after an admin change (health checks follow it)
    std::string token;                          // empty: none required
    uint64_t started_ms = 0;                    // monotonic
    std::function<uint64_t()> now_ms;           // monotonic
};

response handle(context &ctx, const request &req);

}  // namespace atlas::admin
