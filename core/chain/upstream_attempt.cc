#include "chain/upstream_attempt.hh"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "chain/runtime.hh"
#include "chain/worker.hh"

namespace atlas::chain {

namespace {

// The retry budget a worker may save up in quiet times, in retries.
constexpr uint64_t max_saved_retries = 100;

void post_report(const upstream_attempt &a, upstream::report::kind what, uint32_t n, std::string_view why) {
    a.rt->registry->post({a.up->group->slot, a.srv->id, what, n, std::string(why)});
}

// A threshold was reached: every worker stops picking the server now (pick reads its
// state), before the main thread's state machine has made it official and published it.
// The main thread writes the state again when it applies the report.
void trip(const upstream_attempt &a, upstream::report::kind what, upstream::server_state to, uint32_t n,
          std::string_view why) {
    upstream::server_state up = upstream::server_state::up;
    a.srv->state.compare_exchange_strong(up, to, std::memory_order_relaxed);
    post_report(a, what, n, why);
}

// One error of the current attempt's server, in a row with those before it: a failed
// probe's verdict, or what passive detection (`connection`: refused, reset, closed, timed
// out) and the circuit breaker (those, 5xx and protocol errors) count towards a trip.
void count(upstream_attempt &a, std::string_view why, bool connection) {
    upstream::server *s = a.srv;
    uint32_t fails = connection ? s->consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1 : 0;
    uint32_t errors = s->consecutive_errors.fetch_add(1, std::memory_order_relaxed) + 1;
    if (a.probe) {
        a.probe = false;
        post_report(a, upstream::report::kind::probe_failed, 0, why);
        return;
    }
    if (s->state.load(std::memory_order_relaxed) != upstream::server_state::up) return;
    const config::upstream &cfg = *a.up->cfg;
    if (connection && cfg.passive.fails && fails >= cfg.passive.fails)
        trip(a, upstream::report::kind::failure, upstream::server_state::down, fails, why);
    else if (cfg.breaker.failures && errors >= cfg.breaker.failures)
        trip(a, upstream::report::kind::breaker, upstream::server_state::open, errors, why);
}

// Ends a run of errors: only a store when there was one (no write to a shared line per request).
void clear_run(std::atomic<uint32_t> &n) {
    if (n.load(std::memory_order_relaxed)) n.store(0, std::memory_order_relaxed);
}

}  // namespace

void upstream_attempt::reset() {
    std::vector<upstream::server *> keep = std::move(tried);
    *this = upstream_attempt{};
    tried = std::move(keep);
    tried.clear();
}

namespace attempt {

upstream::server_shard &shard_of(const worker &w, upstream::server *s) { return s->shards[w.index_]; }

pick_result pick(worker &w, upstream_attempt &a, std::string_view hash_key, atlas_exchange_t *exchange) {
    const upstream_rt *up = a.up;
    upstream_view &v = w.view(*up->group);
    const upstream::membership &m = *v.m;
    const atlas_lb_policy_t *policy = up->lb->lb;
    void *state = a.rt->state(w.index_, up->lb->slot);
    size_t n = m.servers.size();
    int32_t index = -1;
    if (m.usable > 0) {
        std::vector<uint8_t> &tried = w.pools_.tried;
        tried.assign(n / 8 + 1, 0);
        auto mark = [&](size_t i) { tried[i / 8] |= uint8_t(1u << (i % 8)); };
        for (upstream::server *t : a.tried)
            for (size_t i = 0; i < n; ++i)
                if (m.servers[i] == t) mark(i);
        atlas_lb_context_t ctx{};
        ctx.struct_size = sizeof ctx;
        ctx.hash_key = {hash_key.data(), hash_key.size()};
        ctx.tried = tried.data();
        ctx.exchange = exchange;
        if (policy->on_take) {  // a load-aware policy: it gets every worker's counts
            std::vector<uint32_t> &loads = w.pools_.loads;
            loads.resize(n);
            for (size_t i = 0; i < n; ++i) loads[i] = m.servers[i]->inflight.load(std::memory_order_relaxed);
            ctx.inflight = loads.data();
        }
        // A server just tripped (down or open before the membership says so) is skipped;
        // a half-open one takes one probe at a time: when another worker or use holds
        // it, pick again without it.
        for (size_t round = 0; round <= n; ++round) {
            index = policy->pick(state, &ctx);
            if (index < 0 || size_t(index) >= n) {
                index = -1;
                break;
            }
            upstream::server *s = m.servers[size_t(index)];
            upstream::server_state st = s->state.load(std::memory_order_relaxed);
            if (st == upstream::server_state::up) break;
            if (st == upstream::server_state::half_open && !s->probe_taken.exchange(true, std::memory_order_relaxed)) {
                a.probe = true;
                break;
            }
            mark(size_t(index));
            index = -1;
        }
    }
    if (index < 0) {
        if (a.attempts > 0) return pick_result::no_other;
        up->group->shards[w.index_].no_server.add();
        return pick_result::no_usable;
    }
    upstream::server *server = m.servers[size_t(index)];
    a.srv = server;
    a.taken = index;
    a.taken_version = m.version;
    server->inflight.fetch_add(1, std::memory_order_relaxed);
    if (policy->on_take) policy->on_take(state, uint32_t(index));
    upstream::server_shard &sh = shard_of(w, server);
    sh.attempts.add();
    if (a.attempts++ == 0) {  // a first attempt earns budget_percent of a retry
        v.retry_milli = std::min<uint64_t>(max_saved_retries * 1000, v.retry_milli + up->cfg->retry.budget_percent * 10);
    } else {
        sh.retries.add();
    }
    return pick_result::picked;
}

void release(worker &w, upstream_attempt &a) {
    upstream::server *s = a.srv;
    if (!s) return;
    a.srv = nullptr;
    const atlas_lb_policy_t *policy = a.up->lb->lb;
    if (policy->on_release && a.taken >= 0) {
        // The policy's indices are those of the membership it last got: find the server
        // again when a newer one arrived since the pick.
        const upstream_view &v = w.view(*a.up->group);
        int32_t index = a.taken;
        if (v.m->version != a.taken_version) {
            index = -1;
            for (size_t i = 0; i < v.m->servers.size(); ++i)
                if (v.m->servers[i] == s) index = int32_t(i);
        }
        if (index >= 0) policy->on_release(a.rt->state(w.index_, a.up->lb->slot), uint32_t(index));
    }
    a.taken = -1;
    if (a.probe) {  // ended without a verdict (the client went away): let another use probe
        a.probe = false;
        a.rt->registry->post({a.up->group->slot, s->id, upstream::report::kind::probe_dropped, 0, {}});
    }
    // The decrement is the last use of the server (the registry may free a removed one
    // once nothing is in flight to it).
    s->inflight.fetch_sub(1, std::memory_order_release);
}

void failed(worker &w, upstream_attempt &a, std::string_view why, bool connection) {
    if (!a.srv) return;
    shard_of(w, a.srv).failures.add();
    count(a, why, connection);
}

void count_error(upstream_attempt &a, std::string_view why) {
    if (a.srv) count(a, why, false);
}

void reachable(upstream_attempt &a) {
    if (a.srv) clear_run(a.srv->consecutive_failures);
}

void succeeded(upstream_attempt &a, std::string_view why) {
    if (!a.srv) return;
    clear_run(a.srv->consecutive_errors);
    if (a.probe) {
        a.probe = false;
        post_report(a, upstream::report::kind::probe_ok, 0, why);
    }
}

void give_up_server(worker &w, upstream_attempt &a) {
    if (a.srv) a.tried.push_back(a.srv);
    release(w, a);
}

bool another_server(worker &w, const upstream_attempt &a) {
    const upstream::membership &m = *w.view(*a.up->group).m;
    for (size_t i = 0; i < m.servers.size(); ++i) {
        upstream::server *s = m.servers[i];
        if (!m.endpoints[i].usable || s == a.srv) continue;
        if (std::find(a.tried.begin(), a.tried.end(), s) == a.tried.end()) return true;
    }
    return false;
}

// Every worker keeps its share: tokens earned by first attempts (budget_percent of them)
// plus min_per_second / workers.
bool budget_allows(worker &w, const upstream_attempt &a) {
    upstream_view &v = w.view(*a.up->group);
    if (v.free_retries) {
        --v.free_retries;
        return true;
    }
    if (v.retry_milli >= 1000) {
        v.retry_milli -= 1000;
        return true;
    }
    a.up->group->shards[w.index_].budget_exhausted.add();
    return false;
}

unsigned retry_after_s(worker &w, const upstream_attempt &a) {
    const upstream::membership &m = *w.view(*a.up->group).m;
    if (m.usable_at_ms <= w.now_ms_) return 1;
    return unsigned((m.usable_at_ms - w.now_ms_ + 999) / 1000);
}

conn *connect(worker &w, upstream::server *server, const std::shared_ptr<runtime> &rt) {
    const net::address &addr = server->addr;
    int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *uc = w.new_conn(fd, rt);
    uc->connecting = true;
    w.ring_.connect(uc->fd, uc->slot, addr.sa(), addr.length, event::make_user_data(uc, event::op::connect));
    return uc;
}

}  // namespace attempt
}  // namespace atlas::chain
