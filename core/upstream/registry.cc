#include "upstream/registry.hh"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

namespace atlas::upstream {

server::server(uint64_t id_, const net::address &addr_, std::string address_, std::string written_,
               uint32_t weight_, uint32_t workers)
    : id(id_),
      addr(addr_),
      address(std::move(address_)),
      written(std::move(written_)),
      shards(std::make_unique<server_shard[]>(workers ? workers : 1)),
      weight(weight_) {}

group::group(std::string name_, uint32_t slot_, uint32_t workers)
    : name(std::move(name_)),
      slot(slot_),
      acks(std::make_unique<std::atomic<uint64_t>[]>(workers ? workers : 1)),
      shards(std::make_unique<group_shard[]>(workers ? workers : 1)) {}

server *group::find(std::string_view address) const {
    for (const auto &s : members)
        if (s->address == address) return s.get();
    for (const auto &s : members)
        if (s->written == address) return s.get();
    return nullptr;
}

server *group::find_id(uint64_t id) const {
    for (const auto *list : {&members, &retired})
        for (const auto &s : *list)
            if (s->id == id) return s.get();
    return nullptr;
}

registry::registry(uint32_t workers) : workers_(workers ? workers : 1) {
    report_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

registry::~registry() {
    if (report_fd_ >= 0) ::close(report_fd_);
}

std::unique_ptr<server> registry::make_server(const group &g, const server_spec &spec, bool in_config,
                                              uint64_t now) {
    auto s = std::make_unique<server>(next_server_id_++, spec.addr, spec.address, spec.written, spec.weight, workers_);
    s->in_config = in_config;
    s->health.configure(g.settings);
    s->health.begin(now);
    return s;
}

void registry::retire(group &g, std::unique_ptr<server> s) {
    s->retired.store(true, std::memory_order_relaxed);
    s->removed_at_version = 0;  // set by the publish that drops it
    g.retired.push_back(std::move(s));
}

std::shared_ptr<group> registry::bind(const config::upstream &cfg, const std::vector<server_spec> &servers,
                                      uint64_t now) {
    std::shared_ptr<group> g = find_shared(cfg.name);
    if (!g) {
        g = std::make_shared<group>(cfg.name, uint32_t(groups_.size()), workers_);
        groups_.push_back(g);
    }
    g->cfg = cfg;
    g->settings = health_settings::of(cfg);

    // The new member list: config servers (minus what the admin removed), then what the
    // admin added; a server already known keeps its object (state, counters).
    std::vector<std::unique_ptr<server>> old = std::move(g->members);
    g->members.clear();
    auto take = [&](const server_spec &spec, bool in_config) {
        for (const auto &m : g->members)
            if (m->address == spec.address) return;  // listed twice: once is enough
        for (auto &o : old) {
            if (o && o->address == spec.address) {
                o->weight = spec.weight;
                o->in_config = in_config;
                g->members.push_back(std::move(o));
                return;
            }
        }
        g->members.push_back(make_server(*g, spec, in_config, now));
    };
    for (const server_spec &spec : servers)
        if (!g->removed.count(spec.address)) take(spec, true);
    for (const auto &[written, weight] : g->added) {
        std::vector<net::address> addrs;
        std::string err;
        if (!net::resolve_address(written, addrs, err)) continue;  // gone from DNS: skipped this time
        for (const net::address &a : addrs) take({a, net::to_string(a), written, weight}, false);
    }
    for (auto &o : old)
        if (o) retire(*g, std::move(o));
    for (auto &m : g->members) m->health.configure(g->settings);  // the kept ones get the new settings
    publish(*g, now);
    return g;
}

void registry::keep_only(const std::vector<std::shared_ptr<group>> &live) {
    for (auto &g : groups_)
        if (g && std::find(live.begin(), live.end(), g) == live.end()) g.reset();
}

std::shared_ptr<group> registry::find_shared(std::string_view name) const {
    for (const auto &g : groups_)
        if (g && g->name == name) return g;
    return nullptr;
}

group *registry::find(std::string_view name) const { return find_shared(name).get(); }

void registry::publish(group &g, uint64_t now) {
    auto m = std::make_shared<membership>();
    m->version = ++g.version;
    uint64_t soonest = UINT64_MAX;
    for (const auto &s : g.members) {
        m->servers.push_back(s.get());
        atlas_lb_endpoint_t e{};
        e.struct_size = sizeof e;
        e.address = {s->address.data(), s->address.size()};
        e.weight = s->published_weight = s->health.effective_weight(s->weight, now);
        e.usable = s->usable();
        m->endpoints.push_back(e);
        if (e.usable) {
            ++m->usable;
        } else if (!s->draining) {
            soonest = std::min(soonest, now + s->health.usable_in(now));
        }
    }
    if (m->usable == 0 && soonest != UINT64_MAX) m->usable_at_ms = soonest;
    for (auto &r : g.retired)
        if (!r->removed_at_version) r->removed_at_version = m->version;
    g.current.store(std::move(m), std::memory_order_release);
    if (on_publish) on_publish(g.slot);
}

void registry::changed(group &g, server &s) {
    server_state st = s.health.state();
    s.state.store(st, std::memory_order_relaxed);
    ++s.state_changes;
    // A new state starts its own counting: failures that led here are spent.
    s.consecutive_failures.store(0, std::memory_order_relaxed);
    s.consecutive_errors.store(0, std::memory_order_relaxed);
    s.probe_taken.store(false, std::memory_order_relaxed);
    if (on_state_change && !s.health.history().empty()) on_state_change(g, s, s.health.history().back());
}

registry::change registry::add_server(group &g, const std::vector<server_spec> &specs, uint64_t now) {
    if (specs.empty()) return change::not_found;
    for (const server_spec &spec : specs)
        for (const auto &m : g.members)
            if (m->address == spec.address) return change::exists;
    for (const server_spec &spec : specs) {
        // A config server taken out and put back is the config's again.
        bool configured = g.removed.erase(spec.address) > 0;
        if (!configured) g.added[spec.written] = spec.weight;
        g.members.push_back(make_server(g, spec, configured, now));
    }
    publish(g, now);
    return change::ok;
}

registry::change registry::remove_server(group &g, std::string_view address, uint64_t now) {
    server *s = g.find(address);
    if (!s) return change::not_found;
    if (s->in_config) {
        g.removed.insert(s->address);
    } else {
        // Every address of the written name goes: the admin added them as one.
        g.added.erase(s->written);
    }
    std::string written = s->written;
    bool in_config = s->in_config;
    for (size_t i = g.members.size(); i-- > 0;) {
        server &m = *g.members[i];
        bool same = &m == s || (!in_config && !m.in_config && m.written == written);
        if (!same) continue;
        retire(g, std::move(g.members[i]));
        g.members.erase(g.members.begin() + long(i));
    }
    publish(g, now);
    return change::ok;
}

registry::change registry::set_draining(group &g, std::string_view address, bool draining, uint64_t now) {
    server *s = g.find(address);
    if (!s) return change::not_found;
    if (s->draining != draining) {
        s->draining = draining;
        // Not a health state, but the history is where an operator looks for "why".
        s->health.note(draining ? "admin: drain" : "admin: ready", now);
        if (on_state_change) on_state_change(g, *s, s->health.history().back());
        publish(g, now);
    }
    return change::ok;
}

void registry::check_result(group &g, server &s, bool pass, std::string_view detail, uint64_t now) {
    ++(pass ? s.checks_passed : s.checks_failed);
    if (s.health.check_result(pass, detail, now)) {
        changed(g, s);
        publish(g, now);
    }
}

void registry::apply(group &g, const report &r, uint64_t now) {
    server *s = g.find_id(r.server_id);
    if (!s || s->retired.load(std::memory_order_relaxed)) return;
    // A report about failures in a row is stale once a success or a state change reset
    // the count it was made at (a server that came back must not fall for old news).
    bool stale = (r.what == report::kind::failure &&
                  s->consecutive_failures.load(std::memory_order_relaxed) < r.consecutive) ||
                 (r.what == report::kind::breaker && s->consecutive_errors.load(std::memory_order_relaxed) < r.consecutive);
    bool moved = false;
    switch (r.what) {
        case report::kind::failure: moved = !stale && s->health.passive_failure(r.why, r.consecutive, now); break;
        case report::kind::breaker: moved = !stale && s->health.breaker_trip(r.why, r.consecutive, now); break;
        case report::kind::probe_ok: moved = s->health.probe_result(true, r.why, now); break;
        case report::kind::probe_failed: moved = s->health.probe_result(false, r.why, now); break;
        case report::kind::probe_dropped:
            // No verdict: let another request be the probe.
            s->probe_taken.store(false, std::memory_order_relaxed);
            break;
    }
    if (moved) {
        changed(g, *s);
        publish(g, now);
    } else {
        // A worker may have marked the server ahead of this (a trip): the state machine
        // has the last word.
        s->state.store(s->health.state(), std::memory_order_relaxed);
    }
}

void registry::post(report r) {
    {
        std::lock_guard lk(reports_mu_);
        reports_.push_back(std::move(r));
    }
    uint64_t one = 1;
    ssize_t n = ::write(report_fd_, &one, sizeof one);
    (void)n;  // a full counter still wakes the reader
}

void registry::take_reports(uint64_t now) {
    uint64_t count;
    ssize_t n = ::read(report_fd_, &count, sizeof count);
    (void)n;
    std::vector<report> batch;
    {
        std::lock_guard lk(reports_mu_);
        batch.swap(reports_);
    }
    for (const report &r : batch)
        if (r.group_slot < groups_.size() && groups_[r.group_slot]) apply(*groups_[r.group_slot], r, now);
}

void registry::tick(uint64_t now) {
    for (auto &gp : groups_) {
        if (!gp) continue;
        group &g = *gp;
        bool republish = false;
        for (auto &s : g.members) {
            if (s->health.tick(now)) {
                changed(g, *s);
                republish = true;
            }
            // Slow start: weights grow each tick until full.
            if (s->health.effective_weight(s->weight, now) != s->published_weight) republish = true;
        }
        if (republish) publish(g, now);
        // Retired servers are freed once every worker took a membership without them
        // (so none picks them) and nothing is in flight to them.
        std::erase_if(g.retired, [&](const std::unique_ptr<server> &s) {
            if (!s->removed_at_version || s->inflight.load(std::memory_order_acquire) != 0) return false;
            for (uint32_t w = 0; w < workers_; ++w)
                if (g.acks[w].load(std::memory_order_acquire) < s->removed_at_version) return false;
            return true;
        });
    }
}

}  // namespace atlas::upstream
