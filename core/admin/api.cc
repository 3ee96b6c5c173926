#include "admin/api.hh"

#include <atlas/module.h>

#include <algorithm>
#include <chrono>
#include <strings.h>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "admin/metrics.hh"
#include "chain/runtime.hh"
#include "config/address.hh"
#include "module/loader.hh"
#include "upstream/registry.hh"

namespace atlas::admin {

namespace {

using json = nlohmann::ordered_json;

response reply(unsigned status, const json &body) {
    response r;
    r.status = status;
    r.body = body.dump(2) + "\n";
    return r;
}

response error(unsigned status, const std::string &message) { return reply(status, json{{"error", message}}); }

response not_allowed(const char *allow) {
    response r = error(405, std::string("method not allowed here (allowed: ") + allow + ")");
    r.headers.emplace_back("Allow", allow);
    return r;
}

// A token comparison whose time does not depend on where the first difference is.
bool same_secret(std::string_view a, std::string_view b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    size_t n = std::max(a.size(), b.size());
    for (size_t i = 0; i < n; ++i)
        diff |= uint8_t((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

std::vector<std::string> segments(const std::string &path) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < path.size()) {
        while (i < path.size() && path[i] == '/') ++i;
        size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) out.push_back(path.substr(i, j - i));
        i = j;
    }
    return out;
}

class api {
public:
    api(context &c)
        : ctx(c),
          now(c.now_ms()),
          wall_now(std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()) {}

    response handle(const request &req) {
        if (!ctx.token.empty()) {
            std::string_view auth = req.authorization;
            bool bearer = auth.size() > 7 && strncasecmp(auth.data(), "Bearer ", 7) == 0;
            if (!bearer || !same_secret(auth.substr(7), ctx.token)) {
                response r = error(401, "a bearer token is required (Authorization: Bearer <token from admin.token_file>)");
                r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"atlas admin\"");
                return r;
            }
        }
        std::vector<std::string> seg = segments(req.path);
        const std::string_view m = req.method;
        bool get = m == "GET" || m == "HEAD";
        if (seg.empty()) return get ? index() : not_allowed("GET, HEAD");
        const std::string &top = seg[0];
        if (seg.size() == 1 && top == "status") return get ? status() : not_allowed("GET, HEAD");
        if (seg.size() == 1 && top == "config") return get ? config() : not_allowed("GET, HEAD");
        if (seg.size() == 1 && top == "modules") return get ? modules() : not_allowed("GET, HEAD");
        if (seg.size() == 1 && top == "metrics") return get ? metrics() : not_allowed("GET, HEAD");
        if (seg.size() == 1 && top == "reload") return m == "POST" ? reload() : not_allowed("POST");
        if (seg.size() == 1 && top == "backends") {
            if (m == "POST") return seed_add(req.body);
            if (m == "DELETE") return seed_remove(req.body);
            if (get) return status();
            return not_allowed("GET, HEAD, POST, DELETE");
        }
        if (top == "upstreams") return upstreams(req, seg);
        return error(404, "no such endpoint: " + req.path);
    }

private:
    context &ctx;
    uint64_t now;       // monotonic, one reading per request
    int64_t wall_now;   // the same instant on the wall clock

    // Monotonic milliseconds -> "2026-12-03T15:08:36.123Z".
    std::string wall_time(uint64_t mono_ms) const {
        int64_t t = wall_now - int64_t(now - std::min(now, mono_ms));
        time_t secs = time_t(t / 1000);
        tm g;
        gmtime_r(&secs, &g);
        char buf[96];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", g.tm_year + 1900, g.tm_mon + 1, g.tm_mday,
                      g.tm_hour, g.tm_min, g.tm_sec, int(t % 1000));
        return buf;
    }

    const char *state_text(const upstream::server &s) const {
        if (s.draining) return s.inflight.load(std::memory_order_relaxed) ? "draining" : "drained";
        return upstream::state_name(s.health.state());
    }

    json counters(const upstream::server &s) const {
        uint64_t attempts = 0, retries = 0, failures = 0, hits = 0, misses = 0;
        uint64_t classes[5] = {};
        for (uint32_t w = 0; w < ctx.registry->workers(); ++w) {
            const upstream::server_shard &sh = s.shards[w];
            attempts += sh.attempts.get();
            retries += sh.retries.get();
            failures += sh.failures.get();
            hits += sh.pool_hits.get();
            misses += sh.pool_misses.get();
            for (size_t c = 0; c < 5; ++c) classes[c] += sh.responses[c].get();
        }
        return json{{"requests", attempts},
                    {"retries", retries},
                    {"failures", failures},
                    {"responses", {{"1xx", classes[0]}, {"2xx", classes[1]}, {"3xx", classes[2]}, {"4xx", classes[3]},
                                   {"5xx", classes[4]}}},
                    {"pool_hits", hits},
                    {"pool_misses", misses}};
    }

    json server_json(const upstream::group &g, const upstream::server &s, bool detail) const {
        json j{{"address", s.address},
               {"written", s.written},
               {"url", "http://" + s.address},
               {"weight", s.weight},
               {"effective_weight", s.health.effective_weight(s.weight, now)},
               {"state", state_text(s)},
               {"health", upstream::state_name(s.health.state())},
               {"alive", s.usable()},
               {"draining", s.draining},
               {"source", s.in_config ? "config" : "admin"},
               {"in_flight", s.inflight.load(std::memory_order_relaxed)},
               {"since", wall_time(s.health.since_ms())},
               {"counters", counters(s)}};
        if (g.cfg.health.enabled) {
            json checks{{"passed", s.checks_passed}, {"failed", s.checks_failed}};
            if (s.health.last_check_ms())
                checks["last"] = {{"at", wall_time(s.health.last_check_ms())},
                                  {"ok", s.health.last_check_ok()},
                                  {"detail", s.health.last_check_detail()}};
            j["checks"] = checks;
        }
        if (detail) {
            json h = json::array();
            for (auto it = s.health.history().rbegin(); it != s.health.history().rend(); ++it)
                h.push_back({{"at", wall_time(it->at_ms)},
                             {"from", upstream::state_name(it->from)},
                             {"to", upstream::state_name(it->to)},
                             {"reason", it->reason}});
            j["changes"] = h;  // newest first
        }
        return j;
    }

    json group_json(const upstream::group &g) const {
        json servers = json::array();
        size_t usable = 0;
        for (const auto &s : g.members) {
            servers.push_back(server_json(g, *s, false));
            usable += s->usable();
        }
        const config::upstream &c = g.cfg;
        json j{{"name", g.name},
               {"lb", c.lb.name.substr(3)},  // "lb_round_robin" -> "round_robin"
               {"servers_total", g.members.size()},
               {"servers_usable", usable},
               {"servers", servers},
               {"retries", c.retry.retries},
               {"passive", {{"fails", c.passive.fails}, {"cooldown_ms", c.passive.cooldown.count()}}}};
        if (c.health.enabled)
            j["health"] = {{"type", c.health.http ? "http" : "tcp"},
                           {"path", c.health.http ? c.health.path : ""},
                           {"interval_ms", c.health.interval.count()},
                           {"timeout_ms", c.health.timeout.count()},
                           {"rise", c.health.rise},
                           {"fall", c.health.fall}};
        if (c.breaker.failures)
            j["circuit_breaker"] = {{"failures", c.breaker.failures}, {"cooldown_ms", c.breaker.cooldown.count()}};
        return j;
    }

    response index() const {
        return reply(200, json{{"endpoints",
                                {"/status", "/upstreams", "/upstreams/{name}/servers/{address}", "/reload", "/config",
                                 "/modules", "/metrics"}}});
    }

    response status() const {
        json backends = json::array();
        size_t active = 0, total = 0;
        for (const auto &g : ctx.registry->groups()) {
            if (!g) continue;
            for (const auto &s : g->members) {
                ++total;
                active += s->usable();
                json b{{"url", "http://" + s->address},
                       {"alive", s->usable()},
                       {"current_connections", s->inflight.load(std::memory_order_relaxed)},
                       {"upstream", g->name},
                       {"state", state_text(*s)},
                       {"counters", counters(*s)}};
                backends.push_back(b);
            }
        }
        std::shared_ptr<chain::runtime> rt = ctx.runtime();
        return reply(200, json{{"active_backends", active},
                               {"total_backends", total},
                               {"backends", backends},
                               {"version", ATLAS_VERSION},
                               {"uptime_s", (now - ctx.started_ms) / 1000},
                               {"workers", rt ? rt->workers : 0}});
    }

    response config() const {
        std::shared_ptr<chain::runtime> rt = ctx.runtime();
        if (!rt) return error(503, "no configuration loaded");
        json files = json::array();
        for (const std::string &f : rt->snap->files) files.push_back(f);
        json effective = json::parse(rt->snap->effective_json.empty() ? "{}" : rt->snap->effective_json);
        // The token file's path may show; its content never does.
        return reply(200, json{{"files", files}, {"config", effective}});
    }

    response modules() const {
        json list = json::array();
        for (const auto &[path, m] : ctx.loader->modules()) {
            const atlas_module_t *d = m->desc;
            list.push_back({{"name", m->name},
                            {"version", d->version ? d->version : ""},
                            {"description", d->description ? d->description : ""},
                            {"abi", std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor)},
                            {"kinds", module::describe_kinds(d)},
                            {"path", m->path}});
        }
        return reply(200, json{{"host_abi", std::to_string(ATLAS_ABI_MAJOR) + "." + std::to_string(ATLAS_ABI_MINOR)},
                               {"modules", list}});
    }

    response metrics() const {
        std::shared_ptr<chain::runtime> rt = ctx.runtime();
        metrics_source src{rt.get(), ctx.registry, (now - ctx.started_ms) / 1000};
        response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = render_metrics(src);
        return r;
    }

    response reload() const {
        reload_outcome o = ctx.reload();
        if (o.ok) return reply(200, json{{"reloaded", true}});
        return reply(400, json{{"error", "the new configuration was refused; the running one stays"}, {"errors", o.errors}});
    }

    // {"address": "host:port", "weight": N} or {"url": "http://host:port/"}: the resolved
    // addresses, or an error response.
    // `seed`: the Go seed's /backends body, which may name its upstream and has no weight.
    bool read_server(std::string_view body, std::vector<upstream::server_spec> &specs, std::string &written,
                     response &err, bool seed = false) const {
        json j = json::parse(body.begin(), body.end(), nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            err = error(400, "the body must be a JSON object like {\"address\": \"127.0.0.1:3001\", \"weight\": 1}");
            return false;
        }
        uint32_t weight = 1;
        for (auto it = j.begin(); it != j.end(); ++it) {
            const std::string &k = it.key();
            if (k == "address" || k == "url" || (k == "upstream" && seed)) {
                if (!it.value().is_string()) {
                    err = error(400, "\"" + k + "\" must be a string");
                    return false;
                }
            } else if (k == "weight") {
                if (!it.value().is_number_integer() || it.value().get<int64_t>() < 1 ||
                    it.value().get<int64_t>() > int64_t(UINT32_MAX)) {
                    err = error(400, "\"weight\" must be an integer from 1 to 4294967295");
                    return false;
                }
                weight = uint32_t(it.value().get<int64_t>());
            } else {
                err = error(400, "unknown key \"" + k + "\" (use address, weight)");
                return false;
            }
        }
        if (j.contains("address")) {
            written = j["address"].get<std::string>();
        } else if (j.contains("url")) {
            written = j["url"].get<std::string>();
            if (written.starts_with("http://")) written.erase(0, 7);
            while (written.ends_with("/")) written.pop_back();
        } else {
            err = error(400, "\"address\" is required (\"host:port\")");
            return false;
        }
        if (!config::detail::valid_server_address(written)) {
            err = error(400, "bad address \"" + written + "\" (use \"host:port\" or \"[ip6]:port\", port 1-65535)");
            return false;
        }
        std::vector<net::address> addrs;
        std::string why;
        if (!net::resolve_address(written, addrs, why)) {
            err = error(400, "\"" + written + "\": " + why);
            return false;
        }
        for (const net::address &a : addrs) specs.push_back({a, net::to_string(a), written, weight});
        return true;
    }

    response add_server(upstream::group &g, std::string_view body, bool seed = false) {
        std::vector<upstream::server_spec> specs;
        std::string written;
        response err;
        if (!read_server(body, specs, written, err, seed)) return err;
        if (ctx.registry->add_server(g, specs, now) == upstream::registry::change::exists)
            return error(409, "upstream \"" + g.name + "\" already has server " + specs[0].address);
        ctx.membership_changed();
        json added = json::array();
        for (const auto &spec : specs) added.push_back(server_json(g, *g.find(spec.address), false));
        return reply(201, json{{"upstream", g.name}, {"added", added}});
    }

    response remove_server(upstream::group &g, const std::string &address) {
        upstream::server *s = g.find(address);
        if (!s) return error(404, "upstream \"" + g.name + "\" has no server " + address);
        std::string removed = s->address;
        ctx.registry->remove_server(g, address, now);
        ctx.membership_changed();
        return reply(200, json{{"upstream", g.name}, {"removed", removed}});
    }

    response upstreams(const request &req, const std::vector<std::string> &seg) {
        const std::string_view m = req.method;
        bool get = m == "GET" || m == "HEAD";
        if (seg.size() == 1) {
            if (!get) return not_allowed("GET, HEAD");
            json list = json::array();
            for (const auto &g : ctx.registry->groups())
                if (g) list.push_back(group_json(*g));
            return reply(200, json{{"upstreams", list}});
        }
        upstream::group *g = ctx.registry->find(seg[1]);
        if (!g) return error(404, "no upstream named \"" + seg[1] + "\"");
        if (seg.size() == 2) return get ? reply(200, group_json(*g)) : not_allowed("GET, HEAD");
        if (seg[2] != "servers") return error(404, "no such endpoint: " + req.path);
        if (seg.size() == 3) {
            if (m == "POST") return add_server(*g, req.body);
            if (!get) return not_allowed("GET, HEAD, POST");
            json list = json::array();
            for (const auto &s : g->members) list.push_back(server_json(*g, *s, false));
            return reply(200, json{{"upstream", g->name}, {"servers", list}});
        }
        const std::string &address = seg[3];
        upstream::server *s = g->find(address);
        if (!s) return error(404, "upstream \"" + g->name + "\" has no server " + address);
        if (seg.size() == 4) {
            if (get) return reply(200, server_json(*g, *s, true));
            if (m == "DELETE") return remove_server(*g, address);
            return not_allowed("GET, HEAD, DELETE");
        }
        if (seg.size() == 5 && (seg[4] == "drain" || seg[4] == "ready")) {
            if (m != "POST") return not_allowed("POST");
            ctx.registry->set_draining(*g, address, seg[4] == "drain", now);
            ctx.membership_changed();
            return reply(200, server_json(*g, *s, false));
        }
        return error(404, "no such endpoint: " + req.path);
    }

    // The Go seed's POST/DELETE /backends {"url": "http://host:port"}: on the upstream
    // named by "upstream", or the only one there is.
    upstream::group *seed_group(std::string_view body, response &err) const {
        json j = json::parse(body.begin(), body.end(), nullptr, false);
        std::string name;
        if (j.is_object() && j.contains("upstream") && j["upstream"].is_string()) name = j["upstream"].get<std::string>();
        upstream::group *only = nullptr;
        size_t count = 0;
        for (const auto &g : ctx.registry->groups()) {
            if (!g) continue;
            ++count;
            only = g.get();
            if (!name.empty() && g->name == name) return g.get();
        }
        if (!name.empty()) {
            err = error(404, "no upstream named \"" + name + "\"");
            return nullptr;
        }
        if (count != 1) {
            err = error(400, count ? "several upstreams: name one with \"upstream\"" : "no upstream is configured");
            return nullptr;
        }
        return only;
    }

    response seed_add(std::string_view body) {
        response err;
        upstream::group *g = seed_group(body, err);
        return g ? add_server(*g, body, true) : err;
    }

    response seed_remove(std::string_view body) {
        response err;
        upstream::group *g = seed_group(body, err);
        if (!g) return err;
        std::vector<upstream::server_spec> specs;
        std::string written;
        if (!read_server(body, specs, written, err, true)) return err;
        return remove_server(*g, g->find(specs[0].address) ? specs[0].address : written);
    }
};

}  // namespace

response handle(context &ctx, const request &req) {
    api a(ctx);
    return a.handle(req);
}

}  // namespace atlas::admin
