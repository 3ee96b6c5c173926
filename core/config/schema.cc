// The new config format (DESIGN §5) -> snapshot, plus the sections both formats share.
#include <grp.h>
#include <pwd.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "config/address.hh"
#include "config/build.hh"

namespace atlas::config::detail {

namespace {

constexpr int64_t u32_max = UINT32_MAX;
constexpr int64_t max_workers = 4096;

const std::string listen_hint = " (use \"ip:port\" or \"[ip6]:port\" with a literal IP, port 0-65535)";
const std::string server_hint = " (use \"host:port\" or \"[ip6]:port\", port 1-65535)";

// Listener and upstream names appear in key paths and the admin API.
bool valid_name(std::string_view n) {
    if (n.empty()) return false;
    for (char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
    return true;
}

// RFC 9110 token characters, for methods.
bool valid_token(std::string_view t) {
    if (t.empty()) return false;
    for (char c : t) {
        if (std::isalnum(static_cast<unsigned char>(c))) continue;
        if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
    }
    return true;
}

// A field value a route can compare against: visible characters and inner spaces.
bool valid_field_value(std::string_view v) {
    if (v.empty() || v.front() == ' ' || v.back() == ' ' || v.front() == '\t' || v.back() == '\t') return false;
    for (char c : v) {
        unsigned char u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
    }
    return true;
}

// A duration that must be above zero (intervals, timeouts): `fallback` when it is not.
duration positive(scope &s, std::string_view name, duration d, duration fallback) {
    if (d.count() > 0) return d;
    s.fail(name, "must be longer than 0");
    return fallback;
}

// "200-399", "200" or 204: the statuses that pass an HTTP health check.
bool read_status_range(scope &s, health_check &h) {
    const node *v = s.get("status");
    if (!v) return true;
    if (v->is(node::kind::integer)) {
        if (v->integer < 100 || v->integer > 599) {
            s.fail("status", "must be an HTTP status between 100 and 599");
            return false;
        }
        h.status_min = h.status_max = static_cast<uint32_t>(v->integer);
        return true;
    }
    auto text = s.string("status");
    if (!text) return false;
    unsigned lo = 0, hi = 0;
    char dash = 0, extra = 0;
    int n = std::sscanf(text->c_str(), "%3u%c%3u%c", &lo, &dash, &hi, &extra);
    if (n == 1) hi = lo;
    bool ok = (n == 1 && text->size() == 3) || (n == 3 && dash == '-' && text->size() == 7);
    if (!ok || lo < 100 || hi > 599 || lo > hi) {
        s.fail("status", "bad status range \"" + *text + "\" (use e.g. \"200-399\" or 204)");
        return false;
    }
    h.status_min = lo;
    h.status_max = hi;
    return true;
}

// health = { type = "http" | "tcp", path, host, status, interval, timeout, rise, fall }
void read_health(checker &ck, const node &t, const std::string &key, health_check &h) {
    scope s(ck, t, key);
    s.allow_only({"type", "path", "host", "status", "interval", "timeout", "rise", "fall"});
    h.enabled = true;
    // Without a type, a path asks for HTTP and its absence for a TCP connect.
    h.http = s.get("path") != nullptr;
    if (auto type = s.string("type")) {
        if (*type == "http") h.http = true;
        else if (*type == "tcp") h.http = false;
        else s.fail("type", "expected \"http\" or \"tcp\", got \"" + *type + "\"");
    }
    if (auto path = s.string("path")) {
        bool clean = path->starts_with('/');
        for (char c : *path) clean = clean && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
        if (clean) h.path = *path;
        else s.fail("path", "must start with '/' and have no spaces or control characters (got \"" + *path + "\")");
    }
    if (auto host = s.string("host")) {
        if (valid_hostname(*host) || valid_server_address(*host)) h.host = *host;
        else s.fail("host", "bad host \"" + *host + "\"");
    }
    read_status_range(s, h);
    if (!h.http)
        for (const char *http_only : {"path", "host", "status"})
            if (s.get(http_only)) s.fail(http_only, "only for type = \"http\" checks");
    if (auto d = s.dur("interval")) h.interval = positive(s, "interval", *d, h.interval);
    if (auto d = s.dur("timeout")) h.timeout = positive(s, "timeout", *d, h.timeout);
    if (auto n = s.integer("rise", 1, 1000)) h.rise = static_cast<uint32_t>(*n);
    if (auto n = s.integer("fall", 1, 1000)) h.fall = static_cast<uint32_t>(*n);
}

void read_upstream(checker &ck, const std::string &name, const node &t, snapshot &snap) {
    upstream up;
    up.name = name;
    up.key = "upstream." + name;
    if (!valid_name(name)) ck.fail(t, up.key, "bad upstream name (use letters, digits, '_' and '-')");
    if (!ck.table(t, up.key)) return;
    scope s(ck, t, up.key);
    s.allow_only({"lb", "servers", "keepalive", "timeouts", "health", "passive", "circuit_breaker", "retries",
                  "retry_budget", "replay_body", "slow_start", "tls", "max_response_head", "max_response_body"});

    up.lb = lb_module("round_robin", nlohmann::json::object(), t, s.key("lb"));
    if (const node *lb = s.get("lb")) {
        if (lb->is(node::kind::string)) {
            if (valid_module_name(lb->text))
                up.lb = lb_module(lb->text, nlohmann::json::object(), *lb, s.key("lb"));
            else
                ck.fail(*lb, s.key("lb"), "bad policy name \"" + lb->text + "\" (use [a-z0-9_]+, e.g. \"round_robin\")");
        } else if (lb->is(node::kind::table)) {
            if (auto ref = ck.module(*lb, s.key("lb")))
                up.lb = lb_module(ref->name, nlohmann::json::parse(ref->config_json), *lb, s.key("lb"));
        } else {
            ck.fail(*lb, s.key("lb"), std::string("expected a policy name or { module = \"...\", ... }, got ") +
                                          kind_name(lb->type));
        }
    }

    if (const node *servers = s.array("servers")) {
        for (std::size_t i = 0; i < servers->items.size(); ++i) {
            const node &item = servers->items[i];
            std::string key = index_key(s.key("servers"), i);
            if (!item.is(node::kind::table) && !item.is(node::kind::string)) {
                ck.fail(item, key, std::string("expected \"host:port\" or { address = \"host:port\", weight = N }, got ") +
                                       kind_name(item.type));
                continue;
            }
            // Either "host:port" or { address = "host:port", weight = N }.
            const bool is_table = item.is(node::kind::table);
            scope ss(ck, item, key);
            if (is_table) ss.allow_only({"address", "weight"});
            const node *addr = is_table ? ss.get("address") : &item;
            const std::string addr_key = is_table ? ss.key("address") : key;
            upstream_server srv;
            bool ok = true;
            if (!addr) {
                ck.fail(item, addr_key, "required (\"host:port\")");
                ok = false;
            } else if (auto text = ck.string(*addr, addr_key); !text) {
                ok = false;
            } else if (!valid_server_address(*text)) {
                ck.fail(*addr, addr_key, "bad address \"" + *text + "\"" + server_hint);
                ok = false;
            } else {
                srv.address = *text;
            }
            if (is_table && ss.get("weight")) {
                if (auto w = ss.integer("weight", 1, u32_max))
                    srv.weight = static_cast<uint32_t>(*w);
                else
                    ok = false;
            }
            if (ok) up.servers.push_back(std::move(srv));
        }
    }

    if (const node *ka = s.table("keepalive")) {
        scope ks(ck, *ka, s.key("keepalive"));
        ks.allow_only({"idle_per_worker", "idle_timeout"});
        if (auto n = ks.integer("idle_per_worker", 0, u32_max)) up.keepalive_idle_per_worker = static_cast<uint32_t>(*n);
        if (auto d = ks.dur("idle_timeout")) up.keepalive_idle_timeout = *d;
    }
    if (const node *to = s.table("timeouts")) {
        scope ts(ck, *to, s.key("timeouts"));
        ts.allow_only({"connect", "read", "write", "tunnel"});
        if (auto d = ts.dur("connect")) up.connect_timeout = *d;
        if (auto d = ts.dur("read")) up.read_timeout = *d;
        if (auto d = ts.dur("write")) up.write_timeout = *d;
        if (auto d = ts.dur("tunnel")) up.tunnel_timeout = *d;
    }
    if (const node *h = s.table("health")) read_health(ck, *h, s.key("health"), up.health);
    // tls = true | { ca, verify, sni, ... } (mod_tls's client side) | { module = "...", ... }.
    if (const node *v = s.get("tls")) {
        if (v->is(node::kind::boolean)) {
            if (v->boolean) up.tls = implied("tls", nlohmann::json::object(), *v, s.key("tls"));
        } else if (v->is(node::kind::table)) {
            if (v->find("module")) up.tls = ck.module(*v, s.key("tls"));
            else up.tls = implied("tls", to_json<nlohmann::json>(*v), *v, s.key("tls"));
        } else {
            ck.fail(*v, s.key("tls"), std::string("expected true or a table like { ca = \"ca.pem\", sni = \"api.internal\" }, got ") +
                                          kind_name(v->type));
        }
        if (up.tls && up.health.enabled && up.health.http)
            ck.fail(*v, s.key("health"), "HTTP checks are sent in the clear and this upstream speaks TLS: use type = \"tcp\"");
    }
    if (const node *p = s.table("passive")) {
        scope ps(ck, *p, s.key("passive"));
        ps.allow_only({"fails", "cooldown"});
        if (auto n = ps.integer("fails", 0, 1000)) up.passive.fails = static_cast<uint32_t>(*n);
        if (auto d = ps.dur("cooldown")) up.passive.cooldown = positive(ps, "cooldown", *d, up.passive.cooldown);
    }
    if (const node *b = s.table("circuit_breaker")) {
        scope bs(ck, *b, s.key("circuit_breaker"));
        bs.allow_only({"failures", "cooldown"});
        if (!bs.get("failures")) bs.fail("failures", "required (consecutive failures or 5xx that open the circuit, e.g. 5)");
        if (auto n = bs.integer("failures", 1, 1000)) up.breaker.failures = static_cast<uint32_t>(*n);
        if (auto d = bs.dur("cooldown")) up.breaker.cooldown = positive(bs, "cooldown", *d, up.breaker.cooldown);
    }
    if (auto n = s.integer("retries", 0, 16)) up.retry.retries = static_cast<uint32_t>(*n);
    if (const node *b = s.table("retry_budget")) {
        scope bs(ck, *b, s.key("retry_budget"));
        bs.allow_only({"percent", "min_per_second"});
        if (auto n = bs.integer("percent", 0, 100)) up.retry.budget_percent = static_cast<uint32_t>(*n);
        if (auto n = bs.integer("min_per_second", 0, u32_max)) up.retry.budget_min_per_second = static_cast<uint32_t>(*n);
    }
    if (auto n = s.size("replay_body", 0, 16u << 20)) up.retry.replay_body_bytes = *n;
    if (auto d = s.dur("slow_start")) up.slow_start = *d;
    // A head must hold a status line and a few fields; past 1 MiB one upstream response
    // would pin that much memory per connection while it trickles in.
    if (auto n = s.size("max_response_head", 1024, 1u << 20)) up.max_response_head = static_cast<uint32_t>(*n);
    if (auto n = s.size("max_response_body")) up.max_response_body = *n;

    snap.upstreams.push_back(std::move(up));
}

// access_log = "off" | "stderr" | "PATH" | { path = "off" | "stderr" | PATH, format = "combined" | "json" }
// A relative PATH is relative to the file that names it.
void read_access_log(checker &ck, scope &ls, listener &l) {
    const node *v = ls.get("access_log");
    if (!v) return;
    auto target = [&](scope &s, std::string_view name) {
        const node *p = s.get(name);
        if (!p) return;
        auto text = s.string(name);
        if (!text) return;
        if (*text == "off") l.access_log.clear();
        else if (*text == "stderr") l.access_log = "stderr";
        else if (auto abs = s.path(name)) l.access_log = *abs;
    };
    if (v->is(node::kind::table)) {
        scope t(ck, *v, ls.key("access_log"));
        t.allow_only({"path", "format"});
        if (!t.get("path")) t.fail("path", "required: \"stderr\", \"off\" or a file path");
        target(t, "path");
        if (auto f = t.string("format")) {
            if (*f == "json") l.access_log_json = true;
            else if (*f != "combined") t.fail("format", "expected \"combined\" or \"json\", got \"" + *f + "\"");
        }
    } else {
        target(ls, "access_log");
    }
}

void read_limits(checker &ck, const node &t, const std::string &key, http_limits &lim) {
    scope s(ck, t, key);
    s.allow_only({"max_request_line", "max_header_bytes", "max_headers", "max_body", "header_timeout",
                  "idle_timeout", "body_timeout", "send_timeout", "max_requests"});
    if (auto n = s.size("max_request_line", 1, u32_max)) lim.max_request_line = static_cast<uint32_t>(*n);
    if (auto n = s.size("max_header_bytes", 1, u32_max)) lim.max_header_bytes = static_cast<uint32_t>(*n);
    if (auto n = s.integer("max_headers", 1, u32_max)) lim.max_headers = static_cast<uint32_t>(*n);
    if (auto n = s.size("max_body")) lim.max_body_bytes = *n;
    if (auto d = s.positive_dur("header_timeout")) lim.header_timeout = *d;
    if (auto d = s.positive_dur("idle_timeout")) lim.idle_timeout = *d;
    if (auto d = s.positive_dur("body_timeout")) lim.body_timeout = *d;
    if (auto d = s.positive_dur("send_timeout")) lim.send_timeout = *d;
    if (auto n = s.integer("max_requests", 0, u32_max)) lim.max_requests_per_conn = static_cast<uint32_t>(*n);
}

// The chain: [transport,] terminal. Returns false when it is unusable, so the
// caller does not pile route errors on top of a broken chain.
bool read_chain(checker &ck, const node *chain, listener &l) {
    if (!chain) return true;  // default: [{ module = "http" }]
    std::string key = join_key(l.key, "chain");
    if (!ck.array(*chain, key)) return false;
    const auto &items = chain->items;
    if (items.empty()) {
        ck.fail(*chain, key, "must not be empty (end it with { module = \"http\" } or an L4 terminal like { module = \"tcp\" })");
        return false;
    }
    std::vector<module_ref> refs;
    for (std::size_t j = 0; j < items.size(); ++j)
        if (auto r = ck.module(items[j], index_key(key, j))) refs.push_back(std::move(*r));
    if (refs.size() != items.size()) return false;

    bool ok = true;
    const std::size_t last = items.size() - 1;
    for (std::size_t j = 0; j < last; ++j) {
        if (refs[j].name == "http") {
            ck.fail(items[j], index_key(key, j), "\"http\" must be the last element of the chain");
            ok = false;
        }
    }
    if (last > 1) {
        ck.fail(items[1], index_key(key, 1),
                "at most one transport may precede the terminal (this chain has " + std::to_string(last) + ")");
        ok = false;
    }
    if (!ok) return false;

    if (refs[last].name == "http") {
        // The core's codec takes no options here: its settings are the listener's `limits`.
        ck.allow_only(items[last], index_key(key, last), {"module"});
        l.is_http = true;
    } else {
        l.is_http = false;
        l.stream = std::move(refs[last]);
    }
    if (last == 1) l.transport = std::move(refs[0]);
    return true;
}

// Adds the route to `l` only when it is sound: the snapshot never holds a half-read part.
void read_route(checker &ck, const node &t, const std::string &key, listener &l) {
    const std::size_t errors_before = ck.count();
    if (!ck.table(t, key)) return;
    scope s(ck, t, key);
    s.allow_only({"host", "path_prefix", "methods", "headers", "filters", "handler"});
    route r;
    r.key = key;

    if (auto host = s.string("host")) {
        std::string h = *host;
        for (char &c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string_view name = h;
        if (name.starts_with("*.")) name.remove_prefix(2);
        if (valid_hostname(name))
            r.host = h;
        else
            s.fail("host", "bad host \"" + *host + "\" (use a name like \"api.example.com\" or a wildcard like \"*.example.com\")");
    }
    if (auto prefix = s.string("path_prefix")) {
        bool clean = true;
        for (char c : *prefix)
            clean = clean && static_cast<unsigned char>(c) > 0x20 && c != 0x7f && c != '?' && c != '#';
        if (!prefix->starts_with('/'))
            s.fail("path_prefix", "must start with '/' (got \"" + *prefix + "\")");
        else if (!clean)
            s.fail("path_prefix", "must not contain spaces, control characters, '?' or '#'");
        else
            r.path_prefix = *prefix;
    }
    if (const node *methods = s.array("methods")) {
        for (std::size_t i = 0; i < methods->items.size(); ++i) {
            std::string mkey = index_key(s.key("methods"), i);
            auto m = ck.string(methods->items[i], mkey);
            if (!m) continue;
            if (valid_token(*m))
                r.methods.push_back(*m);
            else
                ck.fail(methods->items[i], mkey, "bad method \"" + *m + "\" (an HTTP token like \"GET\")");
        }
    }
    if (const node *headers = s.get("headers")) {
        if (!headers->is(node::kind::table)) {
            ck.fail(*headers, s.key("headers"), std::string("expected a table like { \"X-Canary\" = \"1\" }, got ") +
                                                    kind_name(headers->type));
        } else {
            for (const member &m : headers->members) {
                const std::string &name = m.key;
                const node &value = m.value;
                std::string hkey = s.key("headers") + "." + name;
                auto v = ck.string(value, hkey);
                if (!v) continue;
                if (!valid_token(name))
                    ck.fail(value, hkey, "bad header name \"" + name + "\" (an HTTP token like \"X-Canary\")");
                else if (!valid_field_value(*v))
                    ck.fail(value, hkey, "value must have no control characters and no surrounding spaces");
                else
                    r.headers.emplace_back(name, *v);
            }
        }
    }
    if (const node *filters = s.array("filters")) {
        for (std::size_t i = 0; i < filters->items.size(); ++i)
            if (auto f = ck.module(filters->items[i], index_key(s.key("filters"), i))) r.filters.push_back(std::move(*f));
    }
    if (!s.get("handler"))
        ck.fail(t, s.key("handler"), "required (e.g. handler = { module = \"proxy\", upstream = \"api\" })");
    else if (auto h = s.module("handler"))
        r.handler = std::move(*h);

    if (ck.count() == errors_before) l.routes.push_back(std::move(r));
}

void read_listeners(checker &ck, const node &arr, snapshot &snap) {
    std::map<std::string, std::string> names;  // name -> where first defined
    std::map<std::string, std::string> bound;  // canonical address -> "listener.x (file:line)"
    for (std::size_t i = 0; i < arr.items.size(); ++i) {
        const node &t = arr.items[i];
        const std::size_t errors_before = ck.count();
        std::size_t route_errors = 0;
        std::string fallback = index_key("listener", i);
        if (!ck.table(t, fallback)) continue;
        listener l;
        l.name = "listener" + std::to_string(i);
        if (const node *n = t.find("name")) {
            if (auto name = ck.string(*n, fallback + ".name")) {
                if (valid_name(*name))
                    l.name = *name;
                else
                    ck.fail(*n, fallback + ".name", "bad listener name \"" + *name + "\" (use letters, digits, '_' and '-')");
            }
        }
        l.key = "listener." + l.name;
        if (auto [it, fresh] = names.emplace(l.name, t.where()); !fresh)
            ck.fail(t, l.key, "duplicate listener name (first defined at " + it->second + ")");

        scope s(ck, t, l.key);
        s.allow_only({"name", "listen", "chain", "max_connections", "proxy_protocol", "limits", "route",
                      "trusted_proxies", "client_address_from", "access_log"});

        const node *listen = s.get("listen");
        std::vector<std::pair<const node *, std::string>> addrs;
        if (!listen) {
            ck.fail(t, s.key("listen"), "required (e.g. listen = \"0.0.0.0:8080\")");
        } else if (listen->is(node::kind::string)) {
            addrs.emplace_back(listen, s.key("listen"));
        } else if (listen->is(node::kind::array)) {
            if (listen->items.empty()) ck.fail(*listen, s.key("listen"), "needs at least one address");
            for (std::size_t j = 0; j < listen->items.size(); ++j)
                addrs.emplace_back(&listen->items[j], index_key(s.key("listen"), j));
        } else {
            ck.fail(*listen, s.key("listen"),
                    std::string("expected an address string or an array of them, got ") + kind_name(listen->type));
        }
        for (const auto &[v, key] : addrs) {
            auto text = ck.string(*v, key);
            if (!text) continue;
            auto canon = canonical_listen_address(*text);
            if (!canon) {
                ck.fail(*v, key, "bad address \"" + *text + "\"" + listen_hint);
                continue;
            }
            // SO_REUSEPORT would let two listeners bind the same address and split its traffic.
            if (!canon->ends_with(":0")) {
                if (auto [it, fresh] = bound.emplace(*canon, l.key + " (" + v->where() + ")"); !fresh)
                    ck.fail(*v, key, "address \"" + *text + "\" is already used by " + it->second);
            }
            l.addresses.push_back(*text);
        }

        if (auto n = s.integer("max_connections", 0, u32_max)) l.max_connections = static_cast<uint32_t>(*n);
        if (auto pp = s.boolean("proxy_protocol")) l.proxy_protocol = *pp;
        if (const node *tp = s.array("trusted_proxies")) {
            for (std::size_t j = 0; j < tp->items.size(); ++j)
                if (auto v = ck.string(tp->items[j], index_key(s.key("trusted_proxies"), j)))
                    l.trusted_proxies.push_back(*v);
        }
        if (auto from = s.string("client_address_from")) {
            if (*from == "x-forwarded-for" || *from == "forwarded")
                l.client_address_from = *from;
            else
                s.fail("client_address_from", "expected \"x-forwarded-for\" or \"forwarded\", got \"" + *from + "\"");
        }
        if (const node *lim = s.table("limits")) read_limits(ck, *lim, s.key("limits"), l.limits);
        read_access_log(ck, s, l);
        bool chain_ok = read_chain(ck, s.get("chain"), l);

        const node *routes = s.get("route");
        std::string rkey = s.key("route");
        if (routes && ck.array(*routes, rkey)) {
            if (chain_ok && !l.is_http) {
                ck.fail(*routes, rkey, "routes need a chain ending in { module = \"http\" }; this one ends in \"" +
                                           l.stream->name + "\"");
            } else {
                for (std::size_t j = 0; j < routes->items.size(); ++j) {
                    const std::size_t before = ck.count();
                    read_route(ck, routes->items[j], index_key(rkey, j), l);
                    route_errors += ck.count() - before;
                }
            }
        }
        if (chain_ok && l.is_http && (!routes || (routes->is(node::kind::array) && routes->items.empty())))
            ck.fail(t, rkey, "an http listener needs at least one [[listener.route]]");

        // A listener whose chain could be read reaches the snapshot even when other keys
        // of it failed, so `atlasd -t` still checks the modules of its routes and
        // reports every problem at once (a snapshot with errors never runs). A bad route
        // drops only itself.
        (void)errors_before;
        (void)route_errors;
        if (chain_ok && !(l.is_http && l.routes.empty())) snap.listeners.push_back(std::move(l));
    }
}

}  // namespace

bool is_seed_strategy(const std::string &policy) {
    for (const char *s : {"round_robin", "weighted_round_robin", "weighted", "random", "least_connections", "ip_hash"})
        if (policy == s) return true;
    return false;
}

module_ref implied(const std::string &name, const nlohmann::json &config, const node &at, const std::string &key) {
    module_ref ref;
    ref.name = name;
    ref.config_json = config.dump();
    ref.key = key;
    ref.file = at.src ? at.src->name : std::string();
    ref.line = at.line;
    ref.base_dir = at.src ? at.src->dir : std::string();
    return ref;
}

module_ref lb_module(const std::string &policy, nlohmann::json extra, const node &at, const std::string &key) {
    std::string name = policy;
    if (name == "weighted") name = "weighted_round_robin";  // seed alias
    if (name == "ip_hash") {                                // seed alias: hash on the client address
        name = "hash";
        if (!extra.contains("key")) extra["key"] = "client_ip";
    }
    return implied("lb_" + name, extra, at, key);
}

// `user` / `group`: names looked up now, so `atlasd -t` and a reload catch a typo
// before anything switches to it.
void read_identity(scope &s, server_settings &out) {
    std::optional<std::string> user = s.string("user");
    std::optional<std::string> group = s.string("group");
    std::vector<char> buf(16384);
    if (user) {
        passwd pw{}, *found = nullptr;
        int r = getpwnam_r(user->c_str(), &pw, buf.data(), buf.size(), &found);
        if (!found) {
            s.fail("user", r ? "cannot look up user \"" + *user + "\": " + std::strerror(r)
                             : "no such user \"" + *user + "\"");
        } else {
            out.switch_user = true;
            out.user = *user;
            out.uid = pw.pw_uid;
            out.gid = pw.pw_gid;
        }
    }
    if (group) {
        ::group gr{}, *found = nullptr;
        int r = getgrnam_r(group->c_str(), &gr, buf.data(), buf.size(), &found);
        if (!found)
            s.fail("group", r ? "cannot look up group \"" + *group + "\": " + std::strerror(r)
                              : "no such group \"" + *group + "\"");
        else if (!s.get("user"))
            s.fail("group", "needs server.user (atlasd switches group only together with the user)");
        else {
            out.group = *group;
            out.gid = gr.gr_gid;
        }
    } else if (out.switch_user) {
        ::group gr{}, *found = nullptr;
        getgrgid_r(out.gid, &gr, buf.data(), buf.size(), &found);
        out.group = found ? std::string(gr.gr_name) : std::to_string(out.gid);
    }
}

void read_server(scope s, server_settings &out) {
    s.allow_only({"workers", "module_dir", "drain_timeout", "pid_file", "watch_config", "user", "group",
                  "batch_wait_us"});
    if (auto n = s.integer("workers", 0, max_workers)) out.workers = static_cast<uint32_t>(*n);
    if (auto n = s.integer("batch_wait_us", 0, 1000)) out.batch_wait_us = static_cast<uint32_t>(*n);
    if (auto p = s.path("module_dir")) out.module_dir = *p;
    if (auto d = s.dur("drain_timeout")) out.drain_timeout = *d;
    if (auto p = s.path("pid_file")) out.pid_file = *p;
    if (auto w = s.boolean("watch_config")) out.watch_config = *w;
    read_identity(s, out);
}

void read_admin(scope s, admin_settings &out) {
    s.allow_only({"listen", "token_file"});
    out.enabled = true;
    std::optional<std::string> canon = canonical_listen_address(out.listen);
    if (auto a = s.string("listen")) {
        canon = canonical_listen_address(*a);
        if (canon)
            out.listen = *a;
        else
            s.fail("listen", "bad address \"" + *a + "\"" + listen_hint);
    }
    if (auto p = s.path("token_file")) {
        out.token_file = *p;
        std::ifstream in(*p);
        std::stringstream text;
        if (in) text << in.rdbuf();
        std::string token = text.str();
        while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
        size_t start = 0;
        while (start < token.size() && std::isspace(static_cast<unsigned char>(token[start]))) ++start;
        token.erase(0, start);
        bool printable = true;
        for (char c : token) printable = printable && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
        if (!in)
            s.fail("token_file", "cannot read \"" + *p + "\"");
        else if (token.size() < 16 || !printable)
            s.fail("token_file", "\"" + *p + "\" must hold one token of at least 16 visible characters");
        else
            out.token = token;
    }
    // Anyone who can reach the admin listener can change upstreams and reload: off
    // loopback it needs a token.
    if (canon && out.token_file.empty() && !(canon->starts_with("127.") || canon->starts_with("[::1]:")))
        s.fail("listen", "\"" + out.listen + "\" is not a loopback address: set admin.token_file to require a bearer token");
}

void build_new(const node &root, checker &ck, snapshot &snap) {
    scope top(ck, root, "");
    top.allow_only({"server", "admin", "upstream", "listener", "listen"});
    if (const node *listen = top.get("listen"))  // a table would have selected the flat format
        ck.fail(*listen, "listen", std::string("expected a table (the seed's [listen]), got ") + kind_name(listen->type) +
                                       "; the new format uses [[listener]]");
    if (const node *t = top.table("server")) read_server(scope(ck, *t, "server"), snap.server);
    if (const node *t = top.table("admin")) read_admin(scope(ck, *t, "admin"), snap.admin);
    if (const node *ups = top.table("upstream"))
        for (const auto &m : ups->members) read_upstream(ck, m.key, m.value, snap);
    const node *listeners = top.get("listener");
    if (!listeners)
        ck.fail(root, "listener", "no [[listener]] defined");
    else if (ck.array(*listeners, "listener"))
        read_listeners(ck, *listeners, snap);
}

}  // namespace atlas::config::detail
