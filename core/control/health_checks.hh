// Active health checks, on the main thread's ring: per server of every upstream with a
// `health` table, every `interval` a TCP connect, or an HTTP/1.1 GET whose status must be
// in the configured range, each bounded by `timeout`. Verdicts go to the registry's
// state machine, which publishes membership changes to the workers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "control/loop.hh"
#include "upstream/registry.hh"

namespace atlas::control {

class health_checks {
public:
    health_checks(loop &l, upstream::registry &reg) : loop_(l), reg_(reg) {}
    ~health_checks();
    health_checks(const health_checks &) = delete;
    health_checks &operator=(const health_checks &) = delete;

    // One prober per server that should be checked: new servers get one (first check
    // within a second), servers gone or groups without checks lose theirs. Call after
    // anything changed the registry's membership or settings.
    void sync();

    struct prober;

private:
    loop &loop_;
    upstream::registry &reg_;
    std::map<uint64_t, prober *> probers_;  // by server id
};

}  // namespace atlas::control
