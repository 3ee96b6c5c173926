// The new format: every section, its defaults, and the one-line errors for bad input.
#include <doctest/doctest.h>

#include "helpers.hh"

using namespace atlas::config;
using atlas::config::test::errors_of;
using atlas::config::test::has_error;
using atlas::config::test::json_of;
using atlas::config::test::minimal_listener;
using atlas::config::test::parse;

namespace {

// DESIGN.md §5, verbatim.
const char *design_example = R"([server]
workers = 0                          # 0 = one per CPU
module_dir = "/usr/lib/atlas/modules"

[admin]
listen = "127.0.0.1:9901"            # JSON status/metrics/runtime changes; loopback by default

[upstream.api]
lb = "least_connections"             # loads mod_lb_least_connections.so
servers = [{ address = "127.0.0.1:3001", weight = 3 }, { address = "127.0.0.1:3002" }]
keepalive = { idle_per_worker = 32, idle_timeout = "60s" }
timeouts = { connect = "5s", read = "30s", write = "30s" }
health = { path = "/health", interval = "5s", timeout = "2s", rise = 2, fall = 3 }

[[listener]]
name = "web"
listen = ["0.0.0.0:8443"]
chain = [{ module = "tls", cert = "/etc/atlas/tls/site.pem", key = "/etc/atlas/tls/site.key" },
         { module = "http" }]

  [[listener.route]]
  host = "api.example.com"
  path_prefix = "/api/"
  filters = [{ module = "headers", add = { "X-Gateway" = "atlas" }, remove = ["Server"] }]
  handler = { module = "proxy", upstream = "api", strip_prefix = false, websocket = true }

  [[listener.route]]
  path_prefix = "/"
  handler = { module = "static", root = "/var/www/html" }
)";

// A listener around one route body, for route tests.
std::string with_route(const std::string &route_body) {
    return "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n[[listener.route]]\n" + route_body + "\n";
}

// A listener with the given chain and routes.
std::string with_chain(const std::string &chain, bool route = true) {
    std::string s = "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\nchain = " + chain + "\n";
    if (route) s += "[[listener.route]]\nhandler = { module = \"static\", root = \"/srv\" }\n";
    return s;
}

}  // namespace

TEST_CASE("the DESIGN example loads into the model") {
    auto r = parse(design_example);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &s = r.snap;
    CHECK(s.server.workers == 0);
    CHECK(s.server.module_dir == "/usr/lib/atlas/modules");
    CHECK(s.admin.enabled);
    CHECK(s.admin.listen == "127.0.0.1:9901");

    REQUIRE(s.upstreams.size() == 1);
    const auto &up = s.upstreams[0];
    CHECK(up.name == "api");
    CHECK(up.key == "upstream.api");
    CHECK(up.lb.name == "lb_least_connections");
    CHECK(up.lb.config_json == "{}");
    CHECK(up.lb.key == "upstream.api.lb");
    REQUIRE(up.servers.size() == 2);
    CHECK(up.servers[0].address == "127.0.0.1:3001");
    CHECK(up.servers[0].weight == 3);
    CHECK(up.servers[1].weight == 1);
    CHECK(up.keepalive_idle_per_worker == 32);
    CHECK(up.keepalive_idle_timeout == duration(60000));
    CHECK(up.connect_timeout == duration(5000));
    CHECK(up.read_timeout == duration(30000));
    CHECK(up.write_timeout == duration(30000));
    CHECK(up.health.enabled);
    CHECK(up.health.http);
    CHECK(up.health.path == "/health");
    CHECK(up.health.interval == duration(5000));
    CHECK(up.health.timeout == duration(2000));
    CHECK(up.health.rise == 2);
    CHECK(up.health.fall == 3);

    REQUIRE(s.listeners.size() == 1);
    const auto &l = s.listeners[0];
    CHECK(l.name == "web");
    CHECK(l.key == "listener.web");
    CHECK(l.addresses == std::vector<std::string>{"0.0.0.0:8443"});
    CHECK(l.is_http);
    CHECK_FALSE(l.stream.has_value());
    REQUIRE(l.transport.has_value());
    CHECK(l.transport->name == "tls");
    CHECK(l.transport->key == "listener.web.chain[0]");
    CHECK(json_of(l.transport->config_json) ==
          nlohmann::json{{"cert", "/etc/atlas/tls/site.pem"}, {"key", "/etc/atlas/tls/site.key"}});
    REQUIRE(l.routes.size() == 2);
    const auto &api = l.routes[0];
    CHECK(api.key == "listener.web.route[0]");
    CHECK(api.host == std::optional<std::string>("api.example.com"));
    CHECK(api.path_prefix == "/api/");
    REQUIRE(api.filters.size() == 1);
    CHECK(api.filters[0].name == "headers");
    CHECK(api.filters[0].key == "listener.web.route[0].filters[0]");
    // Canonical JSON: keys sorted, nested tables and arrays kept, `module` removed.
    CHECK(api.filters[0].config_json == R"({"add":{"X-Gateway":"atlas"},"remove":["Server"]})");
    CHECK(api.handler.name == "proxy");
    CHECK(api.handler.key == "listener.web.route[0].handler");
    CHECK(api.handler.file == "atlas.toml");
    CHECK(api.handler.line == 25);
    CHECK(api.handler.base_dir == "/etc/atlas");
    CHECK(api.handler.config_json == R"({"strip_prefix":false,"upstream":"api","websocket":true})");
    const auto &web = l.routes[1];
    CHECK_FALSE(web.host.has_value());
    CHECK(web.path_prefix == "/");
    CHECK(web.methods.empty());
    CHECK(web.handler.name == "static");
    CHECK(json_of(web.handler.config_json) == nlohmann::json{{"root", "/var/www/html"}});

    // The effective config keeps declaration order.
    auto j = nlohmann::ordered_json::parse(s.effective_json);
    CHECK(j.begin().key() == "server");
    CHECK(j["listener"][0]["chain"][0]["module"] == "tls");
}

TEST_CASE("defaults") {
    auto r = parse(R"(
[upstream.b]
[[listener]]
listen = "127.0.0.1:8080"
  [[listener.route]]
  handler = { module = "static" }
)");
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &s = r.snap;
    CHECK_FALSE(s.admin.enabled);
    CHECK(s.admin.listen == "127.0.0.1:9901");
    CHECK(s.server.workers == 0);
    CHECK(s.server.drain_timeout == duration(30000));
    CHECK(s.server.batch_wait_us == 100);
    CHECK(s.server.module_dir.empty());
    const auto &l = s.listeners.at(0);
    CHECK(l.name == "listener0");
    CHECK(l.key == "listener.listener0");
    CHECK(l.is_http);  // default chain [{ module = "http" }]
    CHECK_FALSE(l.transport.has_value());
    CHECK(l.max_connections == 0);
    CHECK_FALSE(l.proxy_protocol);
    CHECK(l.limits.max_request_line == 8192);
    CHECK(l.limits.header_timeout == duration(10000));
    CHECK(l.routes.at(0).path_prefix == "/");
    CHECK(l.routes.at(0).handler.config_json == "{}");
    const auto &up = s.upstreams.at(0);
    CHECK(up.lb.name == "lb_round_robin");
    CHECK(up.lb.config_json == "{}");
    CHECK(up.servers.empty());
    CHECK(up.keepalive_idle_per_worker == 32);
    CHECK_FALSE(up.health.enabled);
    CHECK(up.passive.fails == 1);
    CHECK(up.passive.cooldown == duration(10000));
    CHECK(up.breaker.failures == 0);
    CHECK(up.retry.retries == 1);
    CHECK(up.retry.budget_percent == 20);
    CHECK(up.retry.budget_min_per_second == 10);
    CHECK(up.retry.replay_body_bytes == 65536);
    CHECK(up.slow_start == duration(0));
    CHECK(up.max_response_head == 65536);
    CHECK(up.max_response_body == 0);  // unlimited
}

TEST_CASE("upstream resilience: health, passive, circuit breaker, retries") {
    auto r = parse(std::string(R"([upstream.api]
servers = ["127.0.0.1:3001"]
health = { type = "http", path = "/healthz?full=1", host = "api.internal", status = "200-204", interval = "1s", timeout = "500ms", rise = 3, fall = 2 }
passive = { fails = 2, cooldown = "3s" }
circuit_breaker = { failures = 5, cooldown = "20s" }
retries = 3
retry_budget = { percent = 50, min_per_second = 2 }
replay_body = "8k"
slow_start = "30s"
[upstream.db]
health = { interval = 2 }
[upstream.one]
health = { path = "/", status = 204 }
)") + minimal_listener);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &api = r.snap.upstreams.at(0);
    CHECK(api.health.http);
    CHECK(api.health.path == "/healthz?full=1");
    CHECK(api.health.host == "api.internal");
    CHECK(api.health.status_min == 200);
    CHECK(api.health.status_max == 204);
    CHECK(api.health.interval == duration(1000));
    CHECK(api.health.timeout == duration(500));
    CHECK(api.health.rise == 3);
    CHECK(api.health.fall == 2);
    CHECK(api.passive.fails == 2);
    CHECK(api.passive.cooldown == duration(3000));
    CHECK(api.breaker.failures == 5);
    CHECK(api.breaker.cooldown == duration(20000));
    CHECK(api.retry.retries == 3);
    CHECK(api.retry.budget_percent == 50);
    CHECK(api.retry.budget_min_per_second == 2);
    CHECK(api.retry.replay_body_bytes == 8192);
    CHECK(api.slow_start == duration(30000));
    const auto &db = r.snap.upstreams.at(1);  // no path, no type: a TCP connect check
    CHECK(db.health.enabled);
    CHECK_FALSE(db.health.http);
    CHECK(db.health.interval == duration(2000));
    const auto &one = r.snap.upstreams.at(2);
    CHECK(one.health.status_min == 204);
    CHECK(one.health.status_max == 204);
}

TEST_CASE("upstream resilience: bad values name the key") {
    auto r = parse(std::string(R"([upstream.api]
health = { type = "grpc", interval = "0s", status = "300-200", rise = 0 }
passive = { fails = -1 }
circuit_breaker = { cooldown = "5s" }
retries = 99
retry_budget = { percent = 150 }
[upstream.tcp]
health = { type = "tcp", path = "/x" }
)") + minimal_listener);
    CHECK(has_error(r, "atlas.toml:2: upstream.api.health.type: expected \"http\" or \"tcp\", got \"grpc\""));
    CHECK(has_error(r, "atlas.toml:2: upstream.api.health.interval: must be longer than 0"));
    CHECK(has_error(r, "upstream.api.health.status: bad status range \"300-200\""));
    CHECK(has_error(r, "upstream.api.health.rise: must be an integer between 1 and 1000"));
    CHECK(has_error(r, "atlas.toml:3: upstream.api.passive.fails: must be an integer between 0 and 1000"));
    CHECK(has_error(r, "atlas.toml:4: upstream.api.circuit_breaker.failures: required"));
    CHECK(has_error(r, "atlas.toml:5: upstream.api.retries: must be an integer between 0 and 16"));
    CHECK(has_error(r, "atlas.toml:6: upstream.api.retry_budget.percent: must be an integer between 0 and 100"));
    CHECK(has_error(r, "atlas.toml:8: upstream.tcp.health.path: only for type = \"http\" checks"));
}

TEST_CASE("upstream response limits: sizes") {
    auto r = parse(std::string(R"([upstream.api]
servers = ["127.0.0.1:3001"]
max_response_head = "8k"
max_response_body = "10MiB"
[upstream.raw]
max_response_head = 1048576
max_response_body = 0
)") + minimal_listener);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    CHECK(r.snap.upstreams.at(0).max_response_head == 8192);
    CHECK(r.snap.upstreams.at(0).max_response_body == 10u << 20);
    CHECK(r.snap.upstreams.at(1).max_response_head == 1u << 20);
    CHECK(r.snap.upstreams.at(1).max_response_body == 0);
}

TEST_CASE("upstream response limits: bad values name the key") {
    auto r = parse(std::string(R"([upstream.api]
max_response_head = "512"
max_response_body = "lots"
[upstream.big]
max_response_head = "2m"
max_response_body = -1
[upstream.typed]
max_response_head = true
)") + minimal_listener);
    INFO(errors_of(r));
    CHECK(has_error(r, "atlas.toml:2: upstream.api.max_response_head: must be at least 1024 bytes"));
    CHECK(has_error(r, "atlas.toml:3: upstream.api.max_response_body: bad size \"lots\""));
    CHECK(has_error(r, "atlas.toml:5: upstream.big.max_response_head: must be at most 1048576 bytes"));
    CHECK(has_error(r, "atlas.toml:6: upstream.big.max_response_body: bad size -1"));
    CHECK(has_error(r, "atlas.toml:8: upstream.typed.max_response_head: expected a size, got a boolean"));
    CHECK(r.errors.size() == 5);
}

TEST_CASE("upstream tls: the client side of mod_tls, or another module") {
    auto r = parse(std::string(R"([upstream.a]
tls = { ca = "ca.pem", sni = "api.internal", verify = true }
health = { type = "tcp" }
[upstream.b]
tls = true
[upstream.c]
tls = { module = "mytls", pin = "x" }
[upstream.d]
tls = false
)") + minimal_listener);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &a = r.snap.upstreams.at(0);
    REQUIRE(a.tls);
    CHECK(a.tls->name == "tls");
    CHECK(a.tls->key == "upstream.a.tls");
    CHECK(a.tls->line == 2);
    CHECK(nlohmann::json::parse(a.tls->config_json) == nlohmann::json{{"ca", "ca.pem"}, {"sni", "api.internal"}, {"verify", true}});
    REQUIRE(r.snap.upstreams.at(1).tls);
    CHECK(r.snap.upstreams.at(1).tls->config_json == "{}");
    REQUIRE(r.snap.upstreams.at(2).tls);
    CHECK(r.snap.upstreams.at(2).tls->name == "mytls");
    CHECK(r.snap.upstreams.at(2).tls->config_json == R"({"pin":"x"})");
    CHECK_FALSE(r.snap.upstreams.at(3).tls);
}

TEST_CASE("upstream tls: bad values name the key") {
    auto r = parse(std::string(R"([upstream.a]
tls = "yes"
[upstream.b]
health = { path = "/health" }
tls = {}
)") + minimal_listener);
    CHECK(has_error(r, "atlas.toml:2: upstream.a.tls: expected true or a table like"));
    CHECK(has_error(r, "atlas.toml:5: upstream.b.health: HTTP checks are sent in the clear and this upstream speaks TLS"));
}

TEST_CASE("admin: token file, loopback rule") {
    atlas::config::test::temp_dir d;
    d.write("token", "  0123456789abcdef0123\n");
    d.write("short", "abc\n");
    auto ok = load_text(std::string("[admin]\nlisten = \"0.0.0.0:9901\"\ntoken_file = \"token\"\n") + minimal_listener,
                        "atlas.toml", d.str());
    INFO(errors_of(ok));
    REQUIRE(ok.ok());
    CHECK(ok.snap.admin.token == "0123456789abcdef0123");
    CHECK(ok.snap.admin.token_file == d.str() + "/token");

    auto open = parse(std::string("[admin]\nlisten = \"0.0.0.0:9901\"\n") + minimal_listener);
    CHECK(has_error(open, "atlas.toml:2: admin.listen: \"0.0.0.0:9901\" is not a loopback address: set admin.token_file"));
    auto v6 = parse(std::string("[admin]\nlisten = \"[::1]:9901\"\n") + minimal_listener);
    CHECK(v6.ok());
    auto missing = load_text(std::string("[admin]\ntoken_file = \"nope\"\n") + minimal_listener, "atlas.toml", d.str());
    CHECK(has_error(missing, "admin.token_file: cannot read \"" + d.str() + "/nope\""));
    auto short_token = load_text(std::string("[admin]\ntoken_file = \"short\"\n") + minimal_listener, "atlas.toml", d.str());
    CHECK(has_error(short_token, "must hold one token of at least 16 visible characters"));
}

TEST_CASE("server and admin settings") {
    auto r = parse(std::string(R"([server]
workers = 8
module_dir = "modules"
drain_timeout = "1m30s"
pid_file = "/run/atlas.pid"
batch_wait_us = 0
[admin]
listen = "[::1]:9000"
)") + minimal_listener);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    CHECK(r.snap.server.workers == 8);
    CHECK(r.snap.server.module_dir == "/etc/atlas/modules");  // relative to the file's directory
    CHECK(r.snap.server.drain_timeout == duration(90000));
    CHECK(r.snap.server.pid_file == "/run/atlas.pid");
    CHECK(r.snap.server.batch_wait_us == 0);
    CHECK(r.snap.admin.enabled);
    CHECK(r.snap.admin.listen == "[::1]:9000");

    auto empty_admin = parse(std::string("[admin]\n") + minimal_listener);
    CHECK(empty_admin.ok());
    CHECK(empty_admin.snap.admin.enabled);

    auto bad = parse(std::string("[server]\nworkers = -1\n[admin]\nlisten = \"localhost:9901\"\n") + minimal_listener);
    CHECK(has_error(bad, "atlas.toml:2: server.workers: must be an integer between 0 and 4096"));
    CHECK(has_error(bad, "atlas.toml:4: admin.listen: bad address \"localhost:9901\""));

    auto long_wait = parse(std::string("[server]\nbatch_wait_us = 5000\n") + minimal_listener);
    CHECK(has_error(long_wait, "atlas.toml:2: server.batch_wait_us: must be an integer between 0 and 1000"));
}

TEST_CASE("listener limits: sizes, durations, integers") {
    auto r = parse(R"(
[[listener]]
name = "web"
listen = ["127.0.0.1:8080", "[::1]:8080"]
max_connections = 10000
proxy_protocol = true
limits = { max_request_line = "4k", max_header_bytes = 32768, max_headers = 50, max_body = "10MiB", header_timeout = "5s", idle_timeout = 30, body_timeout = "250ms", send_timeout = "1m", max_requests = 1000 }
  [[listener.route]]
  handler = { module = "static" }
)");
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &l = r.snap.listeners.at(0);
    CHECK(l.addresses == std::vector<std::string>{"127.0.0.1:8080", "[::1]:8080"});
    CHECK(l.max_connections == 10000);
    CHECK(l.proxy_protocol);
    CHECK(l.limits.max_request_line == 4096);
    CHECK(l.limits.max_header_bytes == 32768);
    CHECK(l.limits.max_headers == 50);
    CHECK(l.limits.max_body_bytes == 10u << 20);
    CHECK(l.limits.header_timeout == duration(5000));
    CHECK(l.limits.idle_timeout == duration(30000));  // bare integer = seconds
    CHECK(l.limits.body_timeout == duration(250));
    CHECK(l.limits.send_timeout == duration(60000));
    CHECK(l.limits.max_requests_per_conn == 1000);
}

TEST_CASE("listener timeouts of zero are refused, naming the key") {
    auto r = parse(R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
limits = { header_timeout = "0s", idle_timeout = 0, body_timeout = "0ms", send_timeout = "1ms" }
  [[listener.route]]
  handler = { module = "static" }
)");
    INFO(errors_of(r));
    REQUIRE(r.errors.size() == 3);
    for (const char *key : {"header_timeout", "idle_timeout", "body_timeout"})
        CHECK(has_error(r, std::string("listener.web.limits.") + key +
                               ": must be more than 0 (a zero timeout would close every connection at once)"));
}

TEST_CASE("bad durations and sizes") {
    auto r = parse(R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
  [listener.limits]
  header_timeout = "5x"
  idle_timeout = -5
  body_timeout = 1.5
  max_body = "lots"
  max_header_bytes = "8g"
  max_request_line = 0
  [[listener.route]]
  handler = { module = "static" }
)");
    INFO(errors_of(r));
    CHECK(has_error(r, "atlas.toml:6: listener.web.limits.header_timeout: bad duration \"5x\" (use e.g. \"5s\" or \"250ms\")"));
    CHECK(has_error(r, "atlas.toml:7: listener.web.limits.idle_timeout: bad duration -5"));
    CHECK(has_error(r, "atlas.toml:8: listener.web.limits.body_timeout: expected a duration string, got a float"));
    CHECK(has_error(r, "atlas.toml:9: listener.web.limits.max_body: bad size \"lots\""));
    CHECK(has_error(r, "atlas.toml:10: listener.web.limits.max_header_bytes: must be at most 4294967295 bytes"));
    CHECK(has_error(r, "atlas.toml:11: listener.web.limits.max_request_line: must be at least 1 bytes"));
    CHECK(r.errors.size() == 6);
}

TEST_CASE("unknown keys are errors outside module tables") {
    auto r = parse(R"([server]
wrokers = 3
[admin]
port = 1
[upstream.api]
servers = [{ address = "a:1", wieght = 2 }]
keepalive = { idle = 3 }
timeouts = { conect = "1s" }
health = { anything = "goes", nested = { x = 1 } }
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
limit = {}
limits = { max_body_size = 1 }
  [[listener.route]]
  prefix = "/"
  handler = { module = "proxy", anything = "goes", deeper = { x = 1 } }
  filters = [{ module = "headers", whatever = true }]
[extra]
)");
    INFO(errors_of(r));
    CHECK(has_error(r, "atlas.toml:2: server.wrokers: unknown key"));
    CHECK(has_error(r, "atlas.toml:4: admin.port: unknown key"));
    CHECK(has_error(r, "atlas.toml:6: upstream.api.servers[0].wieght: unknown key"));
    CHECK(has_error(r, "atlas.toml:7: upstream.api.keepalive.idle: unknown key"));
    CHECK(has_error(r, "atlas.toml:8: upstream.api.timeouts.conect: unknown key"));
    CHECK(has_error(r, "atlas.toml:9: upstream.api.health.anything: unknown key"));
    CHECK(has_error(r, "atlas.toml:9: upstream.api.health.nested: unknown key"));
    CHECK(has_error(r, "atlas.toml:13: listener.web.limit: unknown key"));
    CHECK(has_error(r, "atlas.toml:14: listener.web.limits.max_body_size: unknown key"));
    CHECK(has_error(r, "atlas.toml:16: listener.web.route[0].prefix: unknown key"));
    CHECK(has_error(r, "atlas.toml:19: extra: unknown key"));
    CHECK(r.errors.size() == 11);  // nothing from the handler or filters (their modules check those)
}

TEST_CASE("wrong types name the expected type") {
    auto r = parse(R"(server = 3
[upstream.api]
servers = "a:1"
keepalive = { idle_per_worker = "many" }
health = "yes"
lb = 5
[[listener]]
name = 7
listen = 8080
chain = "http"
max_connections = 1.5
route = { handler = { module = "static" } }
proxy_protocol = "v2"
)");
    INFO(errors_of(r));
    CHECK(has_error(r, "atlas.toml:1: server: expected a table, got an integer"));
    CHECK(has_error(r, "atlas.toml:3: upstream.api.servers: expected an array, got a string"));
    CHECK(has_error(r, "atlas.toml:4: upstream.api.keepalive.idle_per_worker: must be an integer >= 0 (got a string)"));
    CHECK(has_error(r, "atlas.toml:5: upstream.api.health: expected a table, got a string"));
    CHECK(has_error(r, "atlas.toml:6: upstream.api.lb: expected a policy name or { module = \"...\", ... }, got an integer"));
    CHECK(has_error(r, "atlas.toml:8: listener[0].name: expected a string, got an integer"));
    CHECK(has_error(r, "atlas.toml:9: listener.listener0.listen: expected an address string or an array of them, got an integer"));
    CHECK(has_error(r, "atlas.toml:10: listener.listener0.chain: expected an array, got a string"));
    CHECK(has_error(r, "atlas.toml:11: listener.listener0.max_connections: must be an integer >= 0 (got a float)"));
    CHECK(has_error(r, "atlas.toml:12: listener.listener0.route: expected an array, got a table"));
    CHECK(has_error(r, "atlas.toml:13: listener.listener0.proxy_protocol: must be true or false (got a string)"));
}

TEST_CASE("listener addresses") {
    SUBCASE("accepted") {
        for (const char *a : {"0.0.0.0:80", "127.0.0.1:0", "[::]:443", "[::1]:8080", "[fe80::1]:65535", "10.1.2.3:65535"}) {
            CAPTURE(std::string(a));
            auto r = parse(std::string("[[listener]]\nlisten = \"") + a +
                           "\"\n[[listener.route]]\nhandler = { module = \"static\" }\n");
            CHECK_MESSAGE(r.ok(), errors_of(r));
        }
    }
    SUBCASE("refused") {
        for (const char *a : {"localhost:80", "::1:80", "1.2.3.4", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3:80",
                              "[::1]", "[::1]80", "[1.2.3.4]:80", ":80", "1.2.3.4:", "1.2.3.4:8o", "*:80", ""}) {
            CAPTURE(std::string(a));
            auto r = parse(std::string("[[listener]]\nlisten = \"") + a +
                           "\"\n[[listener.route]]\nhandler = { module = \"static\" }\n");
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0].message.starts_with("atlas.toml:2: listener.listener0.listen: "));
        }
    }
    SUBCASE("bad element in a list, empty list") {
        auto r = parse("[[listener]]\nlisten = [\"127.0.0.1:1\", \"example.com:80\"]\n"
                       "[[listener.route]]\nhandler = { module = \"static\" }\n"
                       "[[listener]]\nlisten = []\n[[listener.route]]\nhandler = { module = \"static\" }\n");
        CHECK(has_error(r, "atlas.toml:2: listener.listener0.listen[1]: bad address \"example.com:80\" (use \"ip:port\" or \"[ip6]:port\" with a literal IP, port 0-65535)"));
        CHECK(has_error(r, "atlas.toml:6: listener.listener1.listen: needs at least one address"));
    }
    SUBCASE("missing") {
        auto r = parse("[[listener]]\nname = \"web\"\n[[listener.route]]\nhandler = { module = \"static\" }\n");
        CHECK(has_error(r, "listener.web.listen: required"));
    }
    SUBCASE("the same address twice; port 0 may repeat") {
        auto r = parse(std::string(minimal_listener) +
                       "[[listener]]\nname = \"b\"\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:0\"]\n"
                       "[[listener.route]]\nhandler = { module = \"static\" }\n"
                       "[[listener]]\nname = \"c\"\nlisten = \"127.0.0.1:0\"\n"
                       "[[listener.route]]\nhandler = { module = \"static\" }\n");
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message ==
              "atlas.toml:9: listener.b.listen[0]: address \"127.0.0.1:8080\" is already used by listener.web (atlas.toml:4)");
    }
}

TEST_CASE("listener names") {
    auto r = parse(std::string(minimal_listener) + minimal_listener +
                   "[[listener]]\nname = \"bad name\"\nlisten = \"127.0.0.1:9\"\n"
                   "[[listener.route]]\nhandler = { module = \"static\" }\n");
    INFO(errors_of(r));
    CHECK(has_error(r, "atlas.toml:8: listener.web: duplicate listener name (first defined at atlas.toml:2)"));
    CHECK(has_error(r, "atlas.toml:14: listener[2].name: bad listener name \"bad name\""));
}

TEST_CASE("upstream servers") {
    SUBCASE("plain strings and tables, hostnames and IPv6") {
        auto r = parse(std::string(R"([upstream.api]
servers = ["backend.internal:8080", { address = "[::1]:3000", weight = 5 }, "10.0.0.1:1", "my_host-2:65535"]
)") + minimal_listener);
        INFO(errors_of(r));
        REQUIRE(r.ok());
        const auto &sv = r.snap.upstreams.at(0).servers;
        REQUIRE(sv.size() == 4);
        CHECK(sv[0].address == "backend.internal:8080");
        CHECK(sv[0].weight == 1);
        CHECK(sv[1].address == "[::1]:3000");
        CHECK(sv[1].weight == 5);
    }
    SUBCASE("bad ones") {
        auto r = parse(std::string(R"([upstream.api]
servers = [
  "a:0",
  { address = "b:1", weight = 0 },
  "nohost",
  "::1:80",
  { weight = 2 },
  "bad host:80",
  { address = "c:1", weight = "heavy" },
  "[zz]:80",
  3,
]
)") + minimal_listener);
        INFO(errors_of(r));
        CHECK(has_error(r, "atlas.toml:3: upstream.api.servers[0]: bad address \"a:0\" (use \"host:port\" or \"[ip6]:port\", port 1-65535)"));
        CHECK(has_error(r, "atlas.toml:4: upstream.api.servers[1].weight: must be an integer >= 1"));
        CHECK(has_error(r, "atlas.toml:5: upstream.api.servers[2]: bad address \"nohost\""));
        CHECK(has_error(r, "atlas.toml:6: upstream.api.servers[3]: bad address \"::1:80\""));
        CHECK(has_error(r, "atlas.toml:7: upstream.api.servers[4].address: required"));
        CHECK(has_error(r, "atlas.toml:8: upstream.api.servers[5]: bad address \"bad host:80\""));
        CHECK(has_error(r, "atlas.toml:9: upstream.api.servers[6].weight: must be an integer >= 1 (got a string)"));
        CHECK(has_error(r, "atlas.toml:10: upstream.api.servers[7]: bad address \"[zz]:80\""));
        CHECK(has_error(r, "atlas.toml:11: upstream.api.servers[8]: expected \"host:port\" or { address = \"host:port\", weight = N }, got an integer"));
        CHECK(r.errors.size() == 9);
    }
    SUBCASE("bad upstream name") {
        auto r = parse(std::string("[upstream.\"a b\"]\n") + minimal_listener);
        CHECK(has_error(r, "atlas.toml:1: upstream.a b: bad upstream name"));
    }
}

TEST_CASE("upstream lb policies") {
    auto lb_of = [](const std::string &lb) {
        auto r = parse("[upstream.api]\nlb = " + lb + "\n" + minimal_listener);
        INFO(errors_of(r));
        REQUIRE(r.ok());
        return r.snap.upstreams.at(0).lb;
    };
    CHECK(lb_of("\"round_robin\"").name == "lb_round_robin");
    CHECK(lb_of("\"weighted_round_robin\"").name == "lb_weighted_round_robin");
    CHECK(lb_of("\"weighted\"").name == "lb_weighted_round_robin");
    CHECK(lb_of("\"random\"").name == "lb_random");
    CHECK(lb_of("\"least_connections\"").name == "lb_least_connections");
    CHECK(lb_of("\"my_policy\"").name == "lb_my_policy");  // third-party policies load by name
    auto ip_hash = lb_of("\"ip_hash\"");
    CHECK(ip_hash.name == "lb_hash");
    CHECK(ip_hash.config_json == R"({"key":"client_ip"})");
    auto table = lb_of("{ module = \"hash\", key = \"header:x-user\", replicas = 160 }");
    CHECK(table.name == "lb_hash");
    CHECK(table.config_json == R"({"key":"header:x-user","replicas":160})");
    CHECK(table.key == "upstream.api.lb");
    CHECK(table.line == 2);

    auto bad = parse(std::string("[upstream.a]\nlb = \"Round-Robin\"\n[upstream.b]\nlb = { key = 1 }\n") + minimal_listener);
    CHECK(has_error(bad, "atlas.toml:2: upstream.a.lb: bad policy name \"Round-Robin\""));
    CHECK(has_error(bad, "atlas.toml:4: upstream.b.lb: missing `module`"));
}

TEST_CASE("routes") {
    SUBCASE("host: exact or wildcard, lowercased") {
        auto r = parse(with_route("host = \"API.Example.COM\"\nhandler = { module = \"static\" }") +
                       "[[listener.route]]\nhost = \"*.Example.com\"\nhandler = { module = \"static\" }\n");
        INFO(errors_of(r));
        REQUIRE(r.ok());
        CHECK(r.snap.listeners[0].routes[0].host == std::optional<std::string>("api.example.com"));
        CHECK(r.snap.listeners[0].routes[1].host == std::optional<std::string>("*.example.com"));
    }
    SUBCASE("bad hosts") {
        for (const char *h : {"", "a..b", "*", "*.", "a.*.b", "ex ample.com", "example.com:8080", "[::1]", "a.b.", "é.com"}) {
            CAPTURE(std::string(h));
            auto r = parse(with_route(std::string("host = \"") + h + "\"\nhandler = { module = \"static\" }"));
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0].message.starts_with("atlas.toml:5: listener.web.route[0].host: "));
        }
    }
    SUBCASE("path_prefix and methods") {
        auto r = parse(with_route("path_prefix = \"/api/v1/\"\nmethods = [\"GET\", \"HEAD\", \"PURGE\"]\n"
                                  "handler = { module = \"static\" }"));
        INFO(errors_of(r));
        REQUIRE(r.ok());
        CHECK(r.snap.listeners[0].routes[0].path_prefix == "/api/v1/");
        CHECK(r.snap.listeners[0].routes[0].methods == std::vector<std::string>{"GET", "HEAD", "PURGE"});

        auto bad = parse(with_route("path_prefix = \"api\"\nmethods = [\"GET\", \"BAD METHOD\", 3]\n"
                                    "handler = { module = \"static\" }") +
                         "[[listener.route]]\npath_prefix = \"/a b\"\nhandler = { module = \"static\" }\n");
        INFO(errors_of(bad));
        CHECK(has_error(bad, "atlas.toml:5: listener.web.route[0].path_prefix: must start with '/' (got \"api\")"));
        CHECK(has_error(bad, "atlas.toml:6: listener.web.route[0].methods[1]: bad method \"BAD METHOD\""));
        CHECK(has_error(bad, "atlas.toml:6: listener.web.route[0].methods[2]: expected a string, got an integer"));
        CHECK(has_error(bad, "atlas.toml:9: listener.web.route[1].path_prefix: must not contain spaces"));
    }
    SUBCASE("header conditions") {
        auto r = parse(with_route("headers = { \"X-Canary\" = \"1\", \"X-Debug\" = \"*\" }\n"
                                  "handler = { module = \"static\" }"));
        INFO(errors_of(r));
        REQUIRE(r.ok());
        using pairs = std::vector<std::pair<std::string, std::string>>;
        CHECK(r.snap.listeners[0].routes[0].headers == pairs{{"X-Canary", "1"}, {"X-Debug", "*"}});

        auto bad = parse(with_route("headers = { \"Bad Name\" = \"1\", \"X-A\" = \"\", \"X-B\" = 2, \"X-C\" = \" 1\" }\n"
                                    "handler = { module = \"static\" }"));
        INFO(errors_of(bad));
        CHECK(has_error(bad, "atlas.toml:5: listener.web.route[0].headers.Bad Name: bad header name \"Bad Name\""));
        CHECK(has_error(bad, "atlas.toml:5: listener.web.route[0].headers.X-A: must not be empty"));
        CHECK(has_error(bad, "atlas.toml:5: listener.web.route[0].headers.X-C: value must have no control characters"));
        CHECK(has_error(bad, "atlas.toml:5: listener.web.route[0].headers.X-B: expected a string, got an integer"));
        auto not_table = parse(with_route("headers = [\"X-A\"]\nhandler = { module = \"static\" }"));
        CHECK(has_error(not_table, "atlas.toml:5: listener.web.route[0].headers: expected a table"));
    }
    SUBCASE("filters in order, handler required") {
        auto r = parse(with_route("filters = [{ module = \"a\" }, { module = \"b\", n = 1 }]\nhandler = { module = \"static\" }"));
        INFO(errors_of(r));
        REQUIRE(r.ok());
        const auto &f = r.snap.listeners[0].routes[0].filters;
        REQUIRE(f.size() == 2);
        CHECK(f[0].name == "a");
        CHECK(f[1].name == "b");
        CHECK(f[1].key == "listener.web.route[0].filters[1]");
        CHECK(f[1].config_json == R"({"n":1})");

        auto missing = parse(with_route("path_prefix = \"/\""));
        REQUIRE(missing.errors.size() == 1);
        CHECK(missing.errors[0].message.starts_with("atlas.toml:4: listener.web.route[0].handler: required"));
    }
    SUBCASE("an http listener needs routes") {
        auto r = parse("[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n");
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message ==
              "atlas.toml:1: listener.web.route: an http listener needs at least one [[listener.route]]");
    }
}

TEST_CASE("chains") {
    SUBCASE("http terminal with a transport") {
        auto r = parse(with_chain("[{ module = \"tls\", cert = \"c.pem\" }, { module = \"http\" }]"));
        INFO(errors_of(r));
        REQUIRE(r.ok());
        const auto &l = r.snap.listeners[0];
        CHECK(l.is_http);
        REQUIRE(l.transport.has_value());
        CHECK(l.transport->name == "tls");
        CHECK(l.transport->config_json == R"({"cert":"c.pem"})");  // modules resolve against base_dir
        CHECK(l.transport->base_dir == "/etc/atlas");
        CHECK_FALSE(l.stream.has_value());
    }
    SUBCASE("L4 terminal, with and without transport") {
        auto r = parse(with_chain("[{ module = \"tcp\", upstream = \"db\" }]", false) +
                       "[[listener]]\nname = \"t\"\nlisten = \"127.0.0.1:8081\"\n"
                       "chain = [{ module = \"tls\" }, { module = \"tcp\", upstream = \"db\" }]\n");
        INFO(errors_of(r));
        REQUIRE(r.ok());
        const auto &l = r.snap.listeners[0];
        CHECK_FALSE(l.is_http);
        REQUIRE(l.stream.has_value());
        CHECK(l.stream->name == "tcp");
        CHECK(l.stream->key == "listener.web.chain[0]");
        CHECK(l.stream->config_json == R"({"upstream":"db"})");
        CHECK(l.routes.empty());
        CHECK(r.snap.listeners[1].transport->name == "tls");
        CHECK(r.snap.listeners[1].stream->name == "tcp");
    }
    SUBCASE("routes are not allowed on an L4 chain") {
        auto r = parse(with_chain("[{ module = \"tcp\" }]"));
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message.starts_with("atlas.toml:5: listener.web.route: routes need a chain ending in"));
    }
    SUBCASE("broken chains") {
        struct row {
            const char *chain;
            const char *error;
        };
        const row rows[] = {
            {"[]", "listener.web.chain: must not be empty"},
            {"[{ module = \"http\" }, { module = \"tcp\" }]", "listener.web.chain[0]: \"http\" must be the last element"},
            {"[{ module = \"tls\" }, { module = \"pp\" }, { module = \"http\" }]",
             "listener.web.chain[1]: at most one transport may precede the terminal"},
            {"[{ module = \"http\", keepalive = true }]", "listener.web.chain[0].keepalive: unknown key"},
            {"[{ cert = \"x\" }, { module = \"http\" }]", "listener.web.chain[0]: missing `module`"},
            {"[\"http\"]", "listener.web.chain[0]: expected a module table like { module = \"name\", ... }, got a string"},
            {"[{ module = \"TLS\" }, { module = \"http\" }]", "listener.web.chain[0].module: bad module name \"TLS\" (use [a-z0-9_]+)"},
            {"[{ module = \"\" }, { module = \"http\" }]", "listener.web.chain[0].module: must not be empty"},
        };
        for (const auto &c : rows) {
            CAPTURE(std::string(c.chain));
            auto r = parse(with_chain(c.chain));
            INFO(errors_of(r));
            REQUIRE(r.errors.size() == 1);  // a broken chain adds no route errors on top
            CHECK(r.errors[0].message.find(c.error) != std::string::npos);
        }
    }
}

TEST_CASE("module tables: config_json carries every TOML type") {
    auto r = parse(with_route(R"(handler = { module = "x", s = "str", i = -3, f = 1.5, b = true, a = [1, "two", [3]], t = { u = { v = 1 } }, d = 1979-05-27T07:32:00Z, ld = 1979-05-27, lt = 07:32:00 })"));
    INFO(errors_of(r));
    REQUIRE(r.ok());
    auto j = json_of(r.snap.listeners[0].routes[0].handler.config_json);
    CHECK(j["s"] == "str");
    CHECK(j["i"] == -3);
    CHECK(j["f"] == 1.5);
    CHECK(j["b"] == true);
    CHECK(j["a"] == nlohmann::json::array({1, "two", nlohmann::json::array({3})}));
    CHECK(j["t"]["u"]["v"] == 1);
    CHECK(j["d"] == "1979-05-27T07:32:00Z");
    CHECK(j["ld"] == "1979-05-27");
    CHECK(j["lt"] == "07:32:00");
    CHECK_FALSE(j.contains("module"));
}

TEST_CASE("module tables declared as TOML sub-tables") {
    auto r = parse(R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
  [[listener.route]]
  path_prefix = "/files/"
    [listener.route.handler]
    module = "static"
    root = "/srv/files"
    index = ["index.html"]
)");
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &h = r.snap.listeners[0].routes[0].handler;
    CHECK(h.name == "static");
    CHECK(h.line == 7);
    CHECK(h.config_json == R"({"index":["index.html"],"root":"/srv/files"})");
}

TEST_CASE("no listener, and the seed's top-level listen written wrong") {
    auto none = parse("[server]\nworkers = 1\n");
    REQUIRE(none.errors.size() == 1);
    CHECK(none.errors[0].message == "atlas.toml: listener: no [[listener]] defined");

    auto wrong = parse(std::string("listen = \"0.0.0.0:80\"\n") + minimal_listener);
    REQUIRE(wrong.errors.size() == 1);
    CHECK(wrong.errors[0].message.starts_with("atlas.toml:1: listen: expected a table"));
}

TEST_CASE("all errors are collected, one line each") {
    auto r = parse(R"([server]
workers = "four"
drain_timeout = "soon"
[upstream.api]
servers = ["nope"]
[[listener]]
name = "web"
listen = "web:80"
  [[listener.route]]
  path_prefix = "x"
  handler = { module = "Proxy" }
)");
    INFO(errors_of(r));
    CHECK(r.errors.size() == 6);
    for (const auto &e : r.errors) {
        CHECK(e.message.starts_with("atlas.toml:"));
        CHECK(e.message.find('\n') == std::string::npos);
    }
}

TEST_CASE("rejected parts are left out of the snapshot") {
    // main.cc still checks the modules of what remains, so nothing half-read may stay;
    // a listener with a bad key of its own stays (without the bad value) so that its
    // routes' modules are checked in the same `atlasd -t` run.
    auto r = parse(R"(
[[listener]]
name = "good"
listen = "127.0.0.1:8080"
  [[listener.route]]
  path_prefix = "/ok/"
  handler = { module = "static" }
  [[listener.route]]
  path_prefix = "/bad/"
  handler = { module = "Nope" }
  [[listener.route]]
  filters = [{ nomodule = 1 }]
  handler = { module = "static" }

[[listener]]
name = "bad_address"
listen = "nowhere"
  [[listener.route]]
  handler = { module = "static" }

[[listener]]
name = "only_bad_routes"
listen = "127.0.0.1:8081"
  [[listener.route]]
  handler = { cfg = 1 }

[[listener]]
name = "bad_chain"
listen = "127.0.0.1:8082"
chain = [{ module = "http" }, { module = "http" }]
)");
    INFO(errors_of(r));
    CHECK(r.errors.size() == 5);
    REQUIRE(r.snap.listeners.size() == 2);
    CHECK(r.snap.listeners[1].name == "bad_address");
    CHECK(r.snap.listeners[1].addresses.empty());
    const auto &l = r.snap.listeners[0];
    CHECK(l.name == "good");
    REQUIRE(l.routes.size() == 1);
    CHECK(l.routes[0].path_prefix == "/ok/");
    CHECK(l.routes[0].key == "listener.good.route[0]");
    for (const auto &rt : l.routes) CHECK_FALSE(rt.handler.name.empty());
}
