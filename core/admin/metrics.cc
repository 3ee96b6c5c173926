#include "admin/metrics.hh"

#include <atlas/module.h>

#include <algorithm>
#include <cstdio>

#include "chain/runtime.hh"
#include "upstream/registry.hh"

namespace atlas::admin {

namespace {

using upstream::counter;
using upstream::histogram;

const char *const class_label[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// Label values escape \, " and newline (the format's only escapes).
std::string escape(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

class writer {
public:
    std::string text;

    void family(const char *name, const char *type, const char *help) {
        text += "# HELP ";
        text += name;
        text += ' ';
        text += help;
        text += "\n# TYPE ";
        text += name;
        text += ' ';
        text += type;
        text += '\n';
    }

    // name{labels} value; `labels` already formatted ("a=\"x\",b=\"y\"").
    void sample(std::string_view name, std::string_view labels, uint64_t value) {
        line(name, labels);
        text += std::to_string(value);
        text += '\n';
    }
    void sample(std::string_view name, std::string_view labels, double value) {
        line(name, labels);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6f", value);
        text += buf;
        text += '\n';
    }

    // A histogram from per-worker shards: buckets cumulated, then _sum and _count.
    template <class shards_fn>
    void histogram_samples(std::string_view name, const std::string &labels, uint32_t workers, shards_fn &&at) {
        std::array<uint64_t, upstream::latency_bounds_us.size() + 1> b{};
        uint64_t sum_us = 0;
        for (uint32_t w = 0; w < workers; ++w) {
            const histogram &h = at(w);
            for (size_t i = 0; i < b.size(); ++i) b[i] += h.buckets[i].get();
            sum_us += h.sum_us.get();
        }
        std::string bucket = std::string(name) + "_bucket";
        uint64_t cumulative = 0;
        std::string sep = labels.empty() ? "" : ",";
        for (size_t i = 0; i < b.size(); ++i) {
            cumulative += b[i];
            char le[32];
            if (i < upstream::latency_bounds_s.size()) std::snprintf(le, sizeof le, "%g", upstream::latency_bounds_s[i]);
            else std::snprintf(le, sizeof le, "+Inf");
            sample(bucket, labels + sep + "le=\"" + le + "\"", cumulative);
        }
        sample(std::string(name) + "_sum", labels, double(sum_us) / 1e6);
        sample(std::string(name) + "_count", labels, cumulative);
    }

private:
    void line(std::string_view name, std::string_view labels) {
        text += name;
        if (!labels.empty()) {
            text += '{';
            text += labels;
            text += '}';
        }
        text += ' ';
    }
};

std::string label(std::string_view k, std::string_view v) { return std::string(k) + "=\"" + escape(v) + "\""; }

template <class shard, class fn>
uint64_t sum(const shard *shards, uint32_t workers, fn &&get) {
    uint64_t n = 0;
    for (uint32_t w = 0; w < workers; ++w) n += get(shards[w]);
    return n;
}

void listener_metrics(writer &out, const chain::runtime &rt) {
    uint32_t n = rt.workers;
    out.family("atlas_connections_open", "gauge", "Client connections open now.");
    for (const chain::listener_rt &l : rt.listeners)
        out.sample("atlas_connections_open", label("listener", l.cfg->name),
                   sum(l.stats.get(), n, [](const chain::listener_shard &s) { return s.open.get(); }));
    out.family("atlas_connections_accepted_total", "counter", "Client connections accepted.");
    for (const chain::listener_rt &l : rt.listeners)
        out.sample("atlas_connections_accepted_total", label("listener", l.cfg->name),
                   sum(l.stats.get(), n, [](const chain::listener_shard &s) { return s.accepted.get(); }));

    // Listeners with a transport (TLS): handshakes done, resumed, and given up.
    using counter_of = uint64_t (*)(const chain::listener_shard &);
    const struct {
        const char *name, *help;
        counter_of get;
    } tls_counters[] = {
        {"atlas_tls_handshakes_total", "Transport (TLS) handshakes completed.",
         [](const chain::listener_shard &s) { return s.handshakes.get(); }},
        {"atlas_tls_resumed_total", "Completed handshakes that resumed a session.",
         [](const chain::listener_shard &s) { return s.resumed.get(); }},
        {"atlas_tls_handshake_failures_total", "Connections closed before their transport handshake completed.",
         [](const chain::listener_shard &s) { return s.handshake_failures.get(); }},
    };
    bool any_tls = std::any_of(rt.listeners.begin(), rt.listeners.end(),
                               [](const chain::listener_rt &l) { return l.transport != nullptr; });
    if (any_tls) {
        for (const auto &c : tls_counters) {
            out.family(c.name, "counter", c.help);
            for (const chain::listener_rt &l : rt.listeners)
                if (l.transport) out.sample(c.name, label("listener", l.cfg->name), sum(l.stats.get(), n, c.get));
        }
    }

    // Every route of every listener, and per listener what no route took ("none").
    auto each_http = [&](auto &&fn) {
        for (const chain::listener_rt &l : rt.listeners) {
            std::string lbl = label("listener", l.cfg->name);
            for (const chain::route_rt &r : l.routes)
                fn(lbl + "," + label("route", r.key), [&r](uint32_t w) -> const chain::http_shard & { return r.stats[w]; });
            fn(lbl + "," + label("route", "none"),
               [&l](uint32_t w) -> const chain::http_shard & { return l.stats[w].unrouted; });
        }
    };
    out.family("atlas_http_requests_total", "counter",
               "HTTP exchanges by listener, route (none: no route or rejected by the codec) and status class.");
    each_http([&](const std::string &lbl, auto &&shard) {
        for (size_t c = 0; c < 5; ++c) {
            uint64_t total = 0;
            for (uint32_t w = 0; w < n; ++w) total += shard(w).responses[c].get();
            out.sample("atlas_http_requests_total", lbl + "," + label("code", class_label[c]), total);
        }
    });
    out.family("atlas_http_request_duration_seconds", "histogram",
               "From a request head's arrival to its whole response being queued.");
    each_http([&](const std::string &lbl, auto &&shard) {
        out.histogram_samples("atlas_http_request_duration_seconds", lbl, n,
                              [&](uint32_t w) -> const histogram & { return shard(w).duration; });
    });
}

void upstream_metrics(writer &out, const upstream::registry &reg) {
    uint32_t n = reg.workers();
    struct per_server {
        const char *name, *type, *help;
        uint64_t (*get)(const upstream::server_shard &);
    };
    static const per_server counters[] = {
        {"atlas_upstream_requests_total", "counter", "Requests sent (or tried) to a server, retries included.",
         [](const upstream::server_shard &s) { return s.attempts.get(); }},
        {"atlas_upstream_retries_total", "counter", "Of those, retries from another server.",
         [](const upstream::server_shard &s) { return s.retries.get(); }},
        {"atlas_upstream_failures_total", "counter", "Attempts that failed: refused, reset, timed out or a bad response.",
         [](const upstream::server_shard &s) { return s.failures.get(); }},
        {"atlas_upstream_pool_hits_total", "counter", "Requests sent on a pooled keep-alive connection.",
         [](const upstream::server_shard &s) { return s.pool_hits.get(); }},
        {"atlas_upstream_pool_misses_total", "counter", "Requests that needed a new connection.",
         [](const upstream::server_shard &s) { return s.pool_misses.get(); }},
    };
    auto servers = [&](auto &&each) {
        for (const auto &g : reg.groups())
            if (g)
                for (const auto &s : g->members)
                    each(*g, *s, label("upstream", g->name) + "," + label("server", s->address));
    };
    for (const per_server &c : counters) {
        out.family(c.name, c.type, c.help);
        servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
            out.sample(c.name, lbl, sum(s.shards.get(), n, c.get));
        });
    }
    out.family("atlas_upstream_responses_total", "counter", "Response heads from a server, by status class.");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        for (size_t c = 0; c < 5; ++c)
            out.sample("atlas_upstream_responses_total", lbl + "," + label("code", class_label[c]),
                       sum(s.shards.get(), n, [c](const upstream::server_shard &sh) { return sh.responses[c].get(); }));
    });
    out.family("atlas_upstream_response_duration_seconds", "histogram", "From a request sent to its response head.");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        out.histogram_samples("atlas_upstream_response_duration_seconds", lbl, n,
                              [&](uint32_t w) -> const histogram & { return s.shards[w].latency; });
    });
    out.family("atlas_upstream_in_flight", "gauge", "Requests and tunnels in flight to a server, all workers.");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        out.sample("atlas_upstream_in_flight", lbl, uint64_t(s.inflight.load(std::memory_order_relaxed)));
    });
    out.family("atlas_upstream_server_up", "gauge", "1 when a server takes new requests (up or half-open, not draining).");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        out.sample("atlas_upstream_server_up", lbl, uint64_t(s.usable() ? 1 : 0));
    });
    out.family("atlas_upstream_server_state", "gauge", "A server's health state: 1 for the current one.");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        for (auto st : {upstream::server_state::up, upstream::server_state::down, upstream::server_state::open,
                        upstream::server_state::half_open})
            out.sample("atlas_upstream_server_state", lbl + "," + label("state", upstream::state_name(st)),
                       uint64_t(s.health.state() == st ? 1 : 0));
    });
    out.family("atlas_upstream_server_draining", "gauge", "1 while an operator drains a server.");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        out.sample("atlas_upstream_server_draining", lbl, uint64_t(s.draining ? 1 : 0));
    });
    out.family("atlas_upstream_state_changes_total", "counter", "Health state changes of a server.");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        out.sample("atlas_upstream_state_changes_total", lbl, s.state_changes);
    });
    out.family("atlas_upstream_health_checks_total", "counter", "Active health checks by result.");
    servers([&](const upstream::group &, const upstream::server &s, const std::string &lbl) {
        out.sample("atlas_upstream_health_checks_total", lbl + "," + label("result", "pass"), s.checks_passed);
        out.sample("atlas_upstream_health_checks_total", lbl + "," + label("result", "fail"), s.checks_failed);
    });
    out.family("atlas_upstream_unavailable_total", "counter", "Requests answered 503: no usable server.");
    for (const auto &g : reg.groups())
        if (g)
            out.sample("atlas_upstream_unavailable_total", label("upstream", g->name),
                       sum(g->shards.get(), n, [](const upstream::group_shard &s) { return s.no_server.get(); }));
    out.family("atlas_upstream_retry_budget_exhausted_total", "counter", "Retries the retry budget refused.");
    for (const auto &g : reg.groups())
        if (g)
            out.sample("atlas_upstream_retry_budget_exhausted_total", label("upstream", g->name),
                       sum(g->shards.get(), n, [](const upstream::group_shard &s) { return s.budget_exhausted.get(); }));
}

}  // namespace

std::string render_metrics(const metrics_source &src) {
    writer out;
    out.family("atlas_build_info", "gauge", "The running atlasd: release and module ABI.");
    out.sample("atlas_build_info",
               label("version", ATLAS_VERSION) + "," +
                   label("abi", std::to_string(ATLAS_ABI_MAJOR) + "." + std::to_string(ATLAS_ABI_MINOR)),
               uint64_t(1));
    out.family("atlas_uptime_seconds", "gauge", "Seconds since atlasd started.");
    out.sample("atlas_uptime_seconds", "", src.uptime_s);
    if (src.rt) {
        out.family("atlas_workers", "gauge", "Worker threads.");
        out.sample("atlas_workers", "", uint64_t(src.rt->workers));
        listener_metrics(out, *src.rt);
    }
    if (src.registry) upstream_metrics(out, *src.registry);
    return std::move(out.text);
}

}  // namespace atlas::admin
