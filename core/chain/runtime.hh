// The runnable form of a config snapshot: modules loaded, module configs created,
// listeners resolved. Built on the main thread, then shared read-only by workers.
#pragma once

#include <atlas/module.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/model.hh"
#include "http/request_parser.hh"
#include "upstream/client_identity.hh"
#include "upstream/registry.hh"
#include "module/loader.hh"
#include "net/address.hh"

namespace atlas::chain {

// The hooks every kind begins with (ATLAS_KIND_LIFECYCLE), copied out of whichever
// kind an instance uses so the core handles all kinds alike.
struct lifecycle {
    void *(*config_create)(atlas_slice_t json, atlas_slice_t key, atlas_error_t *err) = nullptr;
    void (*config_destroy)(void *config) = nullptr;
    void *(*worker_init)(void *config, atlas_worker_t *worker) = nullptr;
    void (*worker_destroy)(void *config, void *worker_state) = nullptr;
};

// One use of a module in the config (a route's handler, a filter, a transport, an
// upstream's LB policy...), with the config object the module created for it.
struct module_instance {
    const module::loaded_module *mod = nullptr;
    const atlas_http_handler_t *handler = nullptr;
    const atlas_http_filter_t *filter = nullptr;
    const atlas_stream_handler_t *stream = nullptr;
    const atlas_transport_t *transport = nullptr;
    const atlas_lb_policy_t *lb = nullptr;
    lifecycle life;
    void *config = nullptr;
    std::string key;
    uint32_t slot = 0;  // index of this instance's per-worker state
};

struct header_match {
    std::string name;   // compared case-insensitively
    std::string value;  // exact; "*" = present with any value
};

// One worker's counts of HTTP exchanges (for a route, or those no route took).
struct alignas(64) http_shard {
    std::array<upstream::counter, 5> responses;  // by status class
    upstream::histogram duration;                // head received -> response queued

    void count(unsigned status, uint64_t us) {
        responses[upstream::status_class(status)].add();
        duration.observe(us);
    }
};

// One worker's counts for a listener.
struct alignas(64) listener_shard {
    upstream::counter accepted;
    upstream::counter open;  // a gauge: added at accept, taken off at close
    // Transport (TLS) handshakes: completed (of which resumed), and connections that
    // closed before theirs completed (bad hellos, probes, clients giving up).
    upstream::counter handshakes, resumed, handshake_failures;
    http_shard unrouted;     // no route (404) or rejected before routing (400, 408, 414, 431...)
};

struct route_rt {
    std::string host;        // lowercase; empty = any
    bool host_wildcard = false;  // "*.example.com": host holds ".example.com"
    std::string path_prefix;
    std::vector<std::string> methods;
    std::vector<header_match> headers;  // all must hold
    std::vector<module_instance *> filters;
    module_instance *handler = nullptr;
    bool has_response_filters = false;
    std::string key;                         // "listener.web.route[0]"
    std::shared_ptr<http_shard[]> stats;     // per worker; carried over reloads (carry_stats)
};

class worker;

// A listener's open connections, all workers, against its max_connections. Carried over
// reloads by listener name (carry_gates), so old and new connections count together.
// A worker that finds it full stops accepting on that listener (the kernel's backlog
// holds newcomers) and waits; whoever closes a connection wakes the waiting workers.
struct listener_gate {
    std::atomic<uint32_t> open{0};
    std::atomic<bool> waiting{false};  // `waiters` is not empty
    std::mutex mu;
    std::vector<worker *> waiters;

    // Counts a new connection when fewer than `limit` (0 = no limit) are open.
    bool take(uint32_t limit);
    // A connection closed; returns the workers to wake (only when some wait).
    std::vector<worker *> give_back();
    // `w` waits for a slot (once).
    void wait(worker *w);
};

struct listener_rt {
    const config::listener *cfg = nullptr;
    std::shared_ptr<listener_gate> gate;
    upstream::cidr_set trusted;  // trusted_proxies
    upstream::client_source client_from = upstream::client_source::x_forwarded_for;
    std::vector<net::address> addresses;
    std::vector<route_rt> routes;
    module_instance *transport = nullptr;
    module_instance *stream = nullptr;
    // Access log: -1 = off. Workers append whole lines to it (O_APPEND) from their own
    // buffers; SIGUSR1 reopens the file onto the same descriptor (reopen_access_logs).
    int log_fd = -1;
    bool log_json = false;
    std::shared_ptr<listener_shard[]> stats;  // per worker; carried over reloads (carry_stats)
};

struct upstream_rt {
    const config::upstream *cfg = nullptr;
    std::vector<upstream::server_spec> specs;  // the config's servers, resolved
    // The registry's group of this name: its servers, health and membership. Set by
    // bind_upstreams once the whole runtime is known to be good.
    std::shared_ptr<upstream::group> group;
    module_instance *lb = nullptr;
    module_instance *tls = nullptr;  // client-side transport to its servers, when set
};

struct runtime {
    std::shared_ptr<const config::snapshot> snap;
    std::vector<std::unique_ptr<module_instance>> instances;
    std::vector<listener_rt> listeners;
    std::vector<upstream_rt> upstreams;
    uint32_t workers = 1;
    std::string module_dir;
    upstream::registry *registry = nullptr;  // outlives every runtime; set by bind_upstreams
    // Per worker, per module instance slot: what worker_init returned. Row w is written
    // and read by worker w only.
    std::unique_ptr<std::vector<void *>[]> worker_states;
    // Workers that let go of this runtime after a reload (their module states destroyed):
    // once all have, the main thread frees it.
    std::atomic<uint32_t> workers_done{0};

    void *state(uint32_t worker, uint32_t slot) const { return worker_states[worker][slot]; }

    runtime() = default;
    runtime(const runtime &) = delete;
    runtime &operator=(const runtime &) = delete;
    ~runtime();  // destroys module configs
};

// The module directory used when the config does not set one: the build tree's
// while atlasd runs from it, the installed one otherwise.
std::string default_module_dir();

// Loads modules, creates their configs and resolves listeners. Appends one line
// per problem to `errors`; the result is usable only when no error was added.
std::unique_ptr<runtime> build_runtime(std::shared_ptr<const config::snapshot> snap,
                                       module::loader &loader, std::vector<std::string> &errors);

const upstream_rt *find_upstream(const runtime &rt, std::string_view name);

// Binds every upstream of a good runtime to its group in the registry (creating or
// updating it, publishing its membership).
void bind_upstreams(runtime &rt, upstream::registry &reg, uint64_t now);

// A listening socket opened on the main thread for one worker, for a listener address
// that a reload adds.
struct new_listen_socket {
    size_t listener = 0;  // index in the new runtime's listeners
    int fd = -1;
    std::string key;      // its address (listen_key)
};
struct listen_fds {
    std::vector<new_listen_socket> fds;
};

// One socket per worker for every address of `next` that `current` does not listen on
// (every address when `current` is null, at start-up), opened on the main thread: at a
// reload a taken port fails it (and nothing changes) instead of failing in a worker, and
// at start-up they are open before atlasd gives up root. Out: one entry per worker.
// false + `err`.
bool open_new_listeners(const runtime &next, const runtime *current, std::vector<listen_fds> &out, std::string &err);

// After a switch away from root: the access log files opened at start-up go to that
// user, so a reload (which opens them again) can still append to them. false + `err`.
bool give_access_logs_to(const runtime &rt, uint32_t uid, uint32_t gid, std::string &err);

// The canonical text of a listening address, to match listeners across reloads.
std::string listen_key(const net::address &a);
// The listener of `rt` on address `key`; nullptr when none (or a port-0 address, which
// binds a new random port each time and so never matches).
const listener_rt *listener_on(const runtime &rt, const std::string &key);

// A reload: listeners of `next` that `current` has under the same name take over their
// connection counts.
void carry_gates(runtime &next, const runtime &current);

// A reload: listeners of `next` that `current` has under the same name, and their routes
// of the same key, take over their counters, so that /metrics counters do not start
// again from zero and the connections still on `current` go on counting where a scrape
// (which reads `next`) sees them. Both runtimes have the same number of workers, and a
// shard is written only by its own worker, whichever runtime the connection is on.
void carry_stats(runtime &next, const runtime &current);

// SIGUSR1 (logrotate): each access log file is opened again by its path and put in place
// of the old descriptor (dup2), so workers go on writing to the same fd number. Problems
// are logged; the old file then stays in use.
void reopen_access_logs(const runtime &rt);

// Route selection: longest path prefix wins; on a tie an exact host beats a
// wildcard beats any host, then more header conditions beat fewer, then declaration
// order. nullptr = 404.
const route_rt *match_route(const listener_rt &l, std::string_view host, std::string_view path,
                            std::string_view method, const http::header_field *headers = nullptr,
                            size_t header_count = 0);

}  // namespace atlas::chain
