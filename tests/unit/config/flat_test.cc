// The seed's flat format: each mode, each strategy name, TLS, and its errors.
#include <doctest/doctest.h>

#include "helpers.hh"

using namespace atlas::config;
using atlas::config::test::errors_of;
using atlas::config::test::has_error;
using atlas::config::test::json_of;

namespace {

load_result flat(const std::string &text) { return load_text(text, "atlas.toml", "/srv/site"); }

// The seed README's configuration block, as written there (apart from the comments).
const char *seed_readme = R"([listen]
address = "0.0.0.0"
port = 8080
mode = "http"  # http, tcp, or static
workers = 4

# Optional TLS
[listen.tls]
cert = "/path/to/cert.pem"
key = "/path/to/key.pem"

[[upstreams]]
name = "backend"
address = "127.0.0.1"
port = 8081

[routing]
strategy = "round_robin"  # round_robin, random, least_connections

# For static file serving
[static_files]
root = "/var/www/html"
)";

const char *one_upstream = "[[upstreams]]\nname = \"b\"\naddress = \"127.0.0.1\"\nport = 3000\n";

}  // namespace

TEST_CASE("flat: the seed README config") {
    auto r = flat(seed_readme);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &s = r.snap;
    CHECK(s.server.workers == 4);
    REQUIRE(s.listeners.size() == 1);
    const auto &l = s.listeners[0];
    CHECK(l.name == "default");
    CHECK(l.key == "listen");
    CHECK(l.addresses == std::vector<std::string>{"0.0.0.0:8080"});
    CHECK(l.is_http);
    REQUIRE(l.transport.has_value());
    CHECK(l.transport->name == "tls");
    CHECK(l.transport->key == "listen.tls");
    CHECK(l.transport->line == 8);
    CHECK(json_of(l.transport->config_json) ==
          nlohmann::json{{"cert", "/path/to/cert.pem"}, {"key", "/path/to/key.pem"}});
    REQUIRE(l.routes.size() == 1);
    CHECK(l.routes[0].path_prefix == "/");
    CHECK_FALSE(l.routes[0].host.has_value());
    CHECK(l.routes[0].handler.name == "proxy");
    CHECK(l.routes[0].handler.config_json == R"({"upstream":"default"})");
    REQUIRE(s.upstreams.size() == 1);
    CHECK(s.upstreams[0].name == "default");
    CHECK(s.upstreams[0].lb.name == "lb_round_robin");
    REQUIRE(s.upstreams[0].servers.size() == 1);
    CHECK(s.upstreams[0].servers[0].address == "127.0.0.1:8081");
    CHECK(s.upstreams[0].servers[0].weight == 1);
    CHECK(nlohmann::json::parse(s.effective_json)["listen"]["tls"]["cert"] == "/path/to/cert.pem");
}

TEST_CASE("flat: mode = \"http\" with weights and the default strategy") {
    auto r = flat(R"([listen]
address = "127.0.0.1"
port = 8080

[[upstreams]]
name = "a"
address = "10.0.0.1"
port = 3000
weight = 3

[[upstreams]]
name = "b"
address = "backend.internal"
port = 3001
)");
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &up = r.snap.upstreams.at(0);
    CHECK(up.lb.name == "lb_round_robin");
    REQUIRE(up.servers.size() == 2);
    CHECK(up.servers[0].address == "10.0.0.1:3000");
    CHECK(up.servers[0].weight == 3);
    CHECK(up.servers[1].address == "backend.internal:3001");
    CHECK(r.snap.listeners.at(0).is_http);
    CHECK(r.snap.listeners.at(0).routes.at(0).handler.name == "proxy");
    CHECK(r.snap.server.workers == 0);
}

TEST_CASE("flat: mode = \"tcp\"") {
    auto r = flat(std::string("[listen]\naddress = \"::\"\nport = 5432\nmode = \"tcp\"\n") + one_upstream);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &l = r.snap.listeners.at(0);
    CHECK(l.addresses == std::vector<std::string>{"[::]:5432"});  // IPv6 gets brackets
    CHECK_FALSE(l.is_http);
    REQUIRE(l.stream.has_value());
    CHECK(l.stream->name == "tcp");
    CHECK(l.stream->config_json == R"({"upstream":"default"})");
    CHECK(l.routes.empty());
    CHECK(r.snap.upstreams.at(0).servers.at(0).address == "127.0.0.1:3000");
}

TEST_CASE("flat: mode = \"static\"") {
    auto r = flat("[listen]\naddress = \"[::1]\"\nport = 80\nmode = \"static\"\n[static_files]\nroot = \"public/\"\n");
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &l = r.snap.listeners.at(0);
    CHECK(l.addresses == std::vector<std::string>{"[::1]:80"});
    CHECK(l.is_http);
    REQUIRE(l.routes.size() == 1);
    CHECK(l.routes[0].path_prefix == "/");
    CHECK(l.routes[0].handler.name == "static");
    CHECK(l.routes[0].handler.key == "static_files");
    CHECK(l.routes[0].handler.config_json == R"({"root":"/srv/site/public"})");  // relative to the file
    CHECK(r.snap.upstreams.empty());

    auto missing = flat("[listen]\nport = 80\nmode = \"static\"\n");
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].message == "atlas.toml:3: static_files.root: required when listen.mode = \"static\"");

    auto no_root = flat("[listen]\nport = 80\nmode = \"static\"\n[static_files]\n");
    REQUIRE(no_root.errors.size() == 1);
    CHECK(no_root.errors[0].message.find("static_files.root: required") != std::string::npos);
}

TEST_CASE("flat: every strategy name") {
    struct row {
        const char *strategy;
        const char *module;
        const char *config;
    };
    const row rows[] = {
        {"round_robin", "lb_round_robin", "{}"},
        {"weighted_round_robin", "lb_weighted_round_robin", "{}"},
        {"weighted", "lb_weighted_round_robin", "{}"},
        {"random", "lb_random", "{}"},
        {"least_connections", "lb_least_connections", "{}"},
        {"ip_hash", "lb_hash", R"({"key":"client_ip"})"},
    };
    for (const auto &c : rows) {
        CAPTURE(std::string(c.strategy));
        auto r = flat(std::string("[listen]\nport = 8080\n") + one_upstream + "[routing]\nstrategy = \"" + c.strategy + "\"\n");
        INFO(errors_of(r));
        REQUIRE(r.ok());
        const auto &lb = r.snap.upstreams.at(0).lb;
        CHECK(lb.name == c.module);
        CHECK(lb.config_json == c.config);
        CHECK(lb.key == "routing.strategy");
        CHECK(lb.line == 8);
    }
    auto bad = flat(std::string("[listen]\nport = 8080\n") + one_upstream + "[routing]\nstrategy = \"fastest\"\n");
    REQUIRE(bad.errors.size() == 1);
    CHECK(bad.errors[0].message.starts_with("atlas.toml:8: routing.strategy: unknown strategy \"fastest\""));
}

TEST_CASE("flat: TLS paths resolve against the file's directory") {
    auto r = flat(std::string("[listen]\nport = 8443\n[listen.tls]\ncert = \"certs/server.pem\"\nkey = \"../keys/server.key\"\n") +
                  one_upstream);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    CHECK(json_of(r.snap.listeners.at(0).transport->config_json) ==
          nlohmann::json{{"cert", "/srv/site/certs/server.pem"}, {"key", "/srv/keys/server.key"}});
    CHECK(r.snap.listeners.at(0).addresses == std::vector<std::string>{"0.0.0.0:8443"});  // address defaults

    auto missing = flat(std::string("[listen]\nport = 8443\n[listen.tls]\ncert = \"c.pem\"\n") + one_upstream);
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].message.starts_with("atlas.toml:3: listen.tls.key: required"));
}

TEST_CASE("flat: errors") {
    SUBCASE("unknown keys everywhere") {
        auto r = flat(R"([listen]
port = 8080
backlog = 10
[listen.tls]
cert = "c"
key = "k"
ciphers = "x"
[[upstreams]]
address = "127.0.0.1"
port = 1
timeout = 3
[routing]
strategy = "random"
sticky = true
[static_files]
root = "x"
cache = true
[logging]
)");
        INFO(errors_of(r));
        CHECK(has_error(r, "atlas.toml:3: listen.backlog: unknown key"));
        CHECK(has_error(r, "atlas.toml:7: listen.tls.ciphers: unknown key"));
        CHECK(has_error(r, "atlas.toml:11: upstreams[0].timeout: unknown key"));
        CHECK(has_error(r, "atlas.toml:14: routing.sticky: unknown key"));
        CHECK(has_error(r, "atlas.toml:17: static_files.cache: unknown key"));
        CHECK(has_error(r, "atlas.toml:18: logging: unknown key"));
        CHECK(r.errors.size() == 6);
    }
    SUBCASE("bad values") {
        auto r = flat(R"([listen]
address = "example.com"
port = 70000
mode = "udp"
workers = -2
[[upstreams]]
name = "a"
address = "bad host"
port = 0
weight = 0
[[upstreams]]
name = "b"
)");
        INFO(errors_of(r));
        CHECK(has_error(r, "atlas.toml:2: listen.address: bad address \"example.com\""));
        CHECK(has_error(r, "atlas.toml:3: listen.port: must be an integer between 0 and 65535"));
        CHECK(has_error(r, "atlas.toml:4: listen.mode: must be \"http\", \"tcp\" or \"static\" (got \"udp\")"));
        CHECK(has_error(r, "atlas.toml:5: listen.workers: must be an integer between 0 and 4096"));
        CHECK(has_error(r, "atlas.toml:9: upstreams[0].port: must be an integer between 1 and 65535"));
        CHECK(has_error(r, "atlas.toml:10: upstreams[0].weight: must be an integer >= 1"));
        CHECK(has_error(r, "upstreams[1].address: required"));
        CHECK(has_error(r, "upstreams[1].port: required"));
        CHECK(r.errors.size() == 8);
    }
    SUBCASE("http and tcp need upstreams") {
        for (const char *mode : {"http", "tcp"}) {
            auto r = flat(std::string("[listen]\nport = 8080\nmode = \"") + mode + "\"\n");
            REQUIRE(r.errors.size() == 1);
            CHECK(r.errors[0].message == std::string("atlas.toml:3: upstreams: at least one [[upstreams]] entry is required when listen.mode = \"") + mode + "\"");
        }
        auto r = flat("[listen]\nport = 8080\n");
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message.starts_with("atlas.toml:1: upstreams: at least one"));
    }
    SUBCASE("port is required") {
        auto r = flat(std::string("[listen]\naddress = \"127.0.0.1\"\n") + one_upstream);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message == "atlas.toml:1: listen.port: required (e.g. port = 8080)");
    }
    SUBCASE("mixing with [[listener]]") {
        auto r = flat(std::string("[listen]\nport = 8080\n") + one_upstream +
                      "[[listener]]\nlisten = \"127.0.0.1:1\"\n");
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message.starts_with("atlas.toml:7: listener: [[listener]] cannot be mixed with the seed's flat [listen] table (at atlas.toml:1)"));
    }
    SUBCASE("workers in both [listen] and [server]") {
        auto r = flat(std::string("[server]\nworkers = 2\n[listen]\nport = 8080\nworkers = 4\n") + one_upstream);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message == "atlas.toml:5: listen.workers: conflicts with server.workers at atlas.toml:2");
    }
}

TEST_CASE("flat: [server] and [admin] from the new format are accepted alongside") {
    auto r = flat(std::string("[server]\ndrain_timeout = \"3s\"\n[admin]\nlisten = \"127.0.0.1:9999\"\n[listen]\nport = 8080\n") +
                  one_upstream);
    INFO(errors_of(r));
    REQUIRE(r.ok());
    CHECK(r.snap.server.drain_timeout == duration(3000));
    CHECK(r.snap.admin.enabled);
    CHECK(r.snap.admin.listen == "127.0.0.1:9999");
}

TEST_CASE("flat: conf.d can add upstreams") {
    atlas::config::test::temp_dir d;
    d.write("atlas.toml", std::string("[listen]\nport = 8080\n") + one_upstream);
    d.write("conf.d/more.toml", "[[upstreams]]\nname = \"c\"\naddress = \"127.0.0.2\"\nport = 3000\n");
    auto r = load(d.str());
    INFO(errors_of(r));
    REQUIRE(r.ok());
    REQUIRE(r.snap.upstreams.at(0).servers.size() == 2);
    CHECK(r.snap.upstreams[0].servers[1].address == "127.0.0.2:3000");
}

TEST_CASE("flat: a broken listener is left out of the snapshot") {
    for (const char *text : {"[listen]\nport = 8080\nmode = \"udp\"\n",
                             "[listen]\naddress = \"nowhere\"\nport = 8080\n",
                             "[listen]\nport = 8080\n[listen.tls]\ncert = \"c\"\n",
                             "[listen]\nport = 8080\nmode = \"static\"\n"}) {
        CAPTURE(std::string(text));
        auto r = flat(std::string(text) + one_upstream);
        CHECK_FALSE(r.ok());
        CHECK(r.snap.listeners.empty());
    }
}
