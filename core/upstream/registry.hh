// The upstream registry: the runtime state of every upstream group that outlives a
// config snapshot (DESIGN §3) — its servers (from the config and added through the admin
// API), their health, in-flight counts and per-worker counters.
//
// Threads: the main thread owns groups and servers and is the only writer of their
// state. It publishes an immutable `membership` per group (the servers in pick order and
// the endpoints LB policies get) and tells the workers, which take it over on their own
// thread and acknowledge its version. Workers write only atomics: in-flight counts,
// consecutive-failure counts, their own counter shards. What they observe (a failure,
// a probe's outcome) goes back to the main thread as a `report`.
#pragma once

#include <atlas/module.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hh"
#include "net/address.hh"
#include "upstream/health_state.hh"
#include "upstream/stats.hh"

namespace atlas::upstream {

struct server {
    server(uint64_t id, const net::address &addr, std::string address, std::string written, uint32_t weight,
           uint32_t workers);
    server(const server &) = delete;
    server &operator=(const server &) = delete;

    const uint64_t id;  // unique for the process: reports name servers by it
    const net::address addr;
    const std::string address;  // "ip:port" / "[ip6]:port": what policies, logs and the admin API show
    const std::string written;  // as configured or added, e.g. "app.internal:8080"

    // --- shared with the workers (atomics) ---
    // Requests (and tunnels) in flight, all workers: load-aware policies read it. Its own
    // cache line: every request touches it.
    alignas(64) std::atomic<uint32_t> inflight{0};
    alignas(64) std::atomic<uint32_t> consecutive_failures{0};  // refused/reset/timed out in a row
    std::atomic<uint32_t> consecutive_errors{0};                 // failures or 5xx in a row (breaker)
    std::atomic<server_state> state{server_state::up};          // mirror of `health`
    std::atomic<bool> probe_taken{false};                        // half-open: one probe request at a time
    std::atomic<bool> retired{false};                            // removed: no new pooled connections
    std::unique_ptr<server_shard[]> shards;                      // one per worker

    // --- main thread only ---
    uint32_t weight = 1;
    uint32_t published_weight = 0;  // what the last membership gave policies (slow start)
    bool in_config = true;  // false: added through the admin API
    bool draining = false;  // admin drain: no new requests
    health_state health;
    uint64_t checks_passed = 0, checks_failed = 0;
    uint64_t state_changes = 0;
    uint64_t removed_at_version = 0;

    bool usable() const { return !draining && (health.state() == server_state::up || health.state() == server_state::half_open); }
};

// What the workers pick from: published by the main thread, immutable once published.
struct membership {
    uint64_t version = 0;
    std::vector<server *> servers;               // index = what the LB policy returns
    std::vector<atlas_lb_endpoint_t> endpoints;  // address slices point into the servers
    size_t usable = 0;
    // When no server is usable: milliseconds (monotonic) at which one may be again, for
    // Retry-After; 0 = not known.
    uint64_t usable_at_ms = 0;
};

// A passive observation a worker sends to the main thread.
struct report {
    enum class kind : uint8_t {
        failure,        // refused / reset / timed out: `consecutive` in a row
        breaker,        // failures or 5xx in a row reached the circuit breaker's threshold
        probe_ok,       // the half-open probe request succeeded
        probe_failed,   // ... failed
        probe_dropped,  // ... ended without a verdict (the client went away)
    };
    uint32_t group_slot = 0;
    uint64_t server_id = 0;
    kind what = kind::failure;
    uint32_t consecutive = 0;
    std::string why;
};

class group {
public:
    group(std::string name, uint32_t slot, uint32_t workers);
    group(const group &) = delete;
    group &operator=(const group &) = delete;

    const std::string name;
    const uint32_t slot;  // stable for the process: workers index their views by it

    // --- shared ---
    std::atomic<std::shared_ptr<const membership>> current;
    std::unique_ptr<std::atomic<uint64_t>[]> acks;  // per worker: the membership version it uses
    std::unique_ptr<group_shard[]> shards;          // per worker

    // --- main thread only ---
    config::upstream cfg;  // the settings of the snapshot that last bound it
    health_settings settings;
    std::vector<std::unique_ptr<server>> members;  // in pick order
    std::vector<std::unique_ptr<server>> retired;  // removed, freed once no worker can use them
    std::map<std::string, uint32_t> added;         // admin: written address -> weight
    std::set<std::string> removed;                 // admin: "ip:port" of config servers taken out
    uint64_t version = 0;

    server *find(std::string_view address) const;  // by "ip:port" or as written
    server *find_id(uint64_t id) const;            // members and retired
};

// A server as the config (or the admin API) names it, resolved.
struct server_spec {
    net::address addr;
    std::string address;
    std::string written;
    uint32_t weight = 1;
};

class registry {
public:
    explicit registry(uint32_t workers);
    registry(const registry &) = delete;
    registry &operator=(const registry &) = delete;
    ~registry();

    uint32_t workers() const { return workers_; }

    // --- main thread ---

    // The group named by `cfg`, created or updated to it: servers keep their state and
    // counters by address; admin additions and removals made earlier are applied again.
    // Publishes its membership.
    std::shared_ptr<group> bind(const config::upstream &cfg, const std::vector<server_spec> &servers, uint64_t now);
    // Groups no snapshot binds any more are forgotten (after a reload).
    void keep_only(const std::vector<std::shared_ptr<group>> &live);
    group *find(std::string_view name) const;
    const std::vector<std::shared_ptr<group>> &groups() const { return groups_; }

    enum class change { ok, not_found, exists };
    // Admin API. `spec` names one resolved address of `written`.
    change add_server(group &g, const std::vector<server_spec> &specs, uint64_t now);
    change remove_server(group &g, std::string_view address, uint64_t now);
    change set_draining(group &g, std::string_view address, bool draining, uint64_t now);

    // An active check's verdict on `s`.
    void check_result(group &g, server &s, bool pass, std::string_view detail, uint64_t now);
    // Once a second or so: cooldowns, slow-start weights, freeing retired servers.
    void tick(uint64_t now);

    // Called (main thread) after a group's membership changed: tell the workers.
    std::function<void(uint32_t slot)> on_publish;
    // Called for every state change, for the log.
    std::function<void(const group &, const server &, const state_change &)> on_state_change;

    // --- any thread ---

    void post(report r);
    // Readable (eventfd) while reports wait; the main thread then calls take_reports.
    int report_fd() const { return report_fd_; }
    void take_reports(uint64_t now);

private:
    void publish(group &g, uint64_t now);
    void apply(group &g, const report &r, uint64_t now);
    std::unique_ptr<server> make_server(const group &g, const server_spec &spec, bool in_config, uint64_t now);
    // Out of the membership: freed by tick() once no worker can reach it.
    void retire(group &g, std::unique_ptr<server> s);
    std::shared_ptr<group> find_shared(std::string_view name) const;
    void changed(group &g, server &s);

    uint32_t workers_;
    uint64_t next_server_id_ = 1;
    std::vector<std::shared_ptr<group>> groups_;  // by slot; nullptr once forgotten
    std::mutex reports_mu_;
    std::vector<report> reports_;
    int report_fd_ = -1;
};

}  // namespace atlas::upstream
