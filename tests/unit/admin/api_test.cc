// The admin API's endpoints over a registry, without sockets: routing, the token, bad
// input, runtime membership changes and the metrics text.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "admin/api.hh"
#include "admin/metrics.hh"
#include "upstream/registry.hh"

using namespace atlas;
using json = nlohmann::json;

namespace {

upstream::server_spec spec(const std::string &address, uint32_t weight = 1) {
    upstream::server_spec s;
    std::string err;
    REQUIRE(net::parse_address(address, s.addr, err));
    s.address = s.written = address;
    s.weight = weight;
    return s;
}

struct fixture {
    upstream::registry reg{2};
    admin::context ctx;
    int changed = 0;
    int reloads = 0;
    bool reload_ok = true;

    fixture() {
        config::upstream u;
        u.name = "api";
        u.lb.name = "lb_round_robin";
        u.health.enabled = true;
        reg.bind(u, {spec("127.0.0.1:3001", 2), spec("127.0.0.1:3002")}, 0);
        ctx.registry = &reg;
        ctx.runtime = [] { return std::shared_ptr<chain::runtime>(); };
        ctx.membership_changed = [this] { ++changed; };
        ctx.reload = [this] {
            ++reloads;
            admin::reload_outcome o;
            o.ok = reload_ok;
            if (!reload_ok) o.errors.push_back("atlas.toml:3: upstream.api.retries: must be an integer between 0 and 16");
            return o;
        };
        ctx.now_ms = [] { return uint64_t(5000); };
    }

    admin::response call(std::string_view method, const std::string &path, std::string_view body = {},
                         std::string_view auth = {}) {
        admin::request r;
        r.method = method;
        r.path = path;
        r.body = body;
        r.authorization = auth;
        return admin::handle(ctx, r);
    }

    json body(const admin::response &r) { return json::parse(r.body); }
};

}  // namespace

TEST_CASE("status has the Go seed's fields") {
    fixture f;
    auto r = f.call("GET", "/status");
    CHECK(r.status == 200);
    CHECK(r.content_type == "application/json");
    json j = f.body(r);
    CHECK(j["active_backends"] == 2);
    CHECK(j["total_backends"] == 2);
    REQUIRE(j["backends"].size() == 2);
    CHECK(j["backends"][0]["url"] == "http://127.0.0.1:3001");
    CHECK(j["backends"][0]["alive"] == true);
    CHECK(j["backends"][0]["current_connections"] == 0);
    CHECK(j["backends"][0]["counters"]["requests"] == 0);
}

TEST_CASE("a token guards every endpoint") {
    fixture f;
    f.ctx.token = "0123456789abcdef";
    for (const char *path : {"/status", "/metrics", "/upstreams", "/nope"}) {
        auto r = f.call("GET", path);
        CHECK(r.status == 401);
        bool challenge = false;
        for (auto &[k, v] : r.headers) challenge = challenge || (k == "WWW-Authenticate" && v.starts_with("Bearer"));
        CHECK(challenge);
    }
    CHECK(f.call("GET", "/status", {}, "Bearer 0123456789abcdeX").status == 401);
    CHECK(f.call("GET", "/status", {}, "Bearer 0123456789abcdef0").status == 401);
    CHECK(f.call("GET", "/status", {}, "Basic 0123456789abcdef").status == 401);
    CHECK(f.call("GET", "/status", {}, "Bearer 0123456789abcdef").status == 200);
    CHECK(f.call("GET", "/status", {}, "bearer 0123456789abcdef").status == 200);
}

TEST_CASE("servers: add, conflict, bad input, remove, drain") {
    fixture f;
    auto r = f.call("POST", "/upstreams/api/servers", R"({"address": "127.0.0.1:3003", "weight": 5})");
    CHECK(r.status == 201);
    CHECK(f.body(r)["added"][0]["weight"] == 5);
    CHECK(f.body(r)["added"][0]["source"] == "admin");
    CHECK(f.changed == 1);
    CHECK(f.reg.find("api")->current.load()->servers.size() == 3);
    CHECK(f.call("POST", "/upstreams/api/servers", R"({"address": "127.0.0.1:3003"})").status == 409);

    for (const char *bad : {"", "{", "[]", R"({"weight": 1})", R"({"address": 7})", R"({"address": "nohost"})",
                            R"({"address": "a:1", "weight": 0})", R"({"address": "a:1", "weight": "x"})",
                            R"({"address": "127.0.0.1:3009", "colour": "red"})", R"({"address": "x.invalid:80"})"}) {
        INFO(bad);
        auto b = f.call("POST", "/upstreams/api/servers", bad);
        CHECK(b.status == 400);
        CHECK(f.body(b).contains("error"));
    }
    CHECK(f.call("POST", "/upstreams/nope/servers", R"({"address": "127.0.0.1:1"})").status == 404);

    auto d = f.call("POST", "/upstreams/api/servers/127.0.0.1:3002/drain");
    CHECK(d.status == 200);
    CHECK(f.body(d)["state"] == "drained");
    CHECK(f.reg.find("api")->current.load()->usable == 2);
    CHECK(f.body(f.call("POST", "/upstreams/api/servers/127.0.0.1:3002/ready"))["state"] == "up");
    CHECK(f.call("GET", "/upstreams/api/servers/127.0.0.1:3002/drain").status == 405);

    auto one = f.body(f.call("GET", "/upstreams/api/servers/127.0.0.1:3002"));
    REQUIRE(one["changes"].size() == 2);  // no state change, but noted (newest first)
    CHECK(one["changes"][0]["reason"] == "admin: ready");
    CHECK(one["changes"][1]["reason"] == "admin: drain");
    CHECK(one["changes"][1]["from"] == one["changes"][1]["to"]);
    CHECK(one["checks"]["passed"] == 0);

    CHECK(f.call("DELETE", "/upstreams/api/servers/127.0.0.1:3003").status == 200);
    CHECK(f.call("DELETE", "/upstreams/api/servers/127.0.0.1:3003").status == 404);
    CHECK(f.call("GET", "/upstreams/api/servers/127.0.0.1:3003").status == 404);
    CHECK(f.reg.find("api")->current.load()->servers.size() == 2);
}

TEST_CASE("routing: unknown paths, wrong methods, HEAD") {
    fixture f;
    CHECK(f.call("GET", "/nope").status == 404);
    CHECK(f.call("GET", "/upstreams/zzz").status == 404);
    CHECK(f.call("GET", "/upstreams/api/other").status == 404);
    auto m = f.call("DELETE", "/status");
    CHECK(m.status == 405);
    CHECK(m.headers.at(0).first == "Allow");
    CHECK(f.call("GET", "/reload").status == 405);
    CHECK(f.call("HEAD", "/upstreams").status == 200);
    CHECK(f.body(f.call("GET", "/upstreams/api"))["servers_total"] == 2);
}

TEST_CASE("reload reports what the new config got wrong") {
    fixture f;
    CHECK(f.call("POST", "/reload").status == 200);
    f.reload_ok = false;
    auto r = f.call("POST", "/reload");
    CHECK(r.status == 400);
    CHECK(f.body(r)["errors"][0] == "atlas.toml:3: upstream.api.retries: must be an integer between 0 and 16");
    CHECK(f.reloads == 2);
}

TEST_CASE("the Go seed's /backends") {
    fixture f;
    CHECK(f.call("POST", "/backends", R"({"url": "http://127.0.0.1:3005/"})").status == 201);
    CHECK(f.reg.find("api")->find("127.0.0.1:3005"));
    CHECK(f.call("DELETE", "/backends", R"({"url": "http://127.0.0.1:3005"})").status == 200);
    CHECK_FALSE(f.reg.find("api")->find("127.0.0.1:3005"));
    CHECK(f.call("POST", "/backends", R"({"url": "http://127.0.0.1:3005", "upstream": "x"})").status == 404);
    config::upstream other;
    other.name = "other";
    other.lb.name = "lb_random";
    f.reg.bind(other, {}, 0);
    CHECK(f.call("POST", "/backends", R"({"url": "http://127.0.0.1:3006"})").status == 400);  // which one?
}

TEST_CASE("metrics: counters summed over workers, per server and state") {
    fixture f;
    upstream::group &g = *f.reg.find("api");
    upstream::server &s = *g.members[0];
    s.shards[0].attempts.add(3);
    s.shards[1].attempts.add(4);
    s.shards[1].responses[1].add(7);
    s.shards[0].latency.observe(2000);     // 2 ms
    s.shards[1].latency.observe(3000000);  // 3 s
    auto r = f.call("GET", "/metrics");
    CHECK(r.status == 200);
    CHECK(r.content_type == "text/plain; version=0.0.4; charset=utf-8");
    const std::string &t = r.body;
    CHECK(t.find("# TYPE atlas_upstream_requests_total counter\n") != std::string::npos);
    CHECK(t.find("atlas_upstream_requests_total{upstream=\"api\",server=\"127.0.0.1:3001\"} 7\n") != std::string::npos);
    CHECK(t.find("atlas_upstream_responses_total{upstream=\"api\",server=\"127.0.0.1:3001\",code=\"2xx\"} 7\n") !=
          std::string::npos);
    CHECK(t.find("atlas_upstream_response_duration_seconds_bucket{upstream=\"api\",server=\"127.0.0.1:3001\",le=\"0.005\"} 1\n") !=
          std::string::npos);
    CHECK(t.find("atlas_upstream_response_duration_seconds_bucket{upstream=\"api\",server=\"127.0.0.1:3001\",le=\"2.5\"} 1\n") !=
          std::string::npos);
    CHECK(t.find("atlas_upstream_response_duration_seconds_bucket{upstream=\"api\",server=\"127.0.0.1:3001\",le=\"5\"} 2\n") !=
          std::string::npos);
    CHECK(t.find("atlas_upstream_response_duration_seconds_bucket{upstream=\"api\",server=\"127.0.0.1:3001\",le=\"+Inf\"} 2\n") !=
          std::string::npos);
    CHECK(t.find("atlas_upstream_response_duration_seconds_sum{upstream=\"api\",server=\"127.0.0.1:3001\"} 3.002000\n") !=
          std::string::npos);
    CHECK(t.find("atlas_upstream_server_state{upstream=\"api\",server=\"127.0.0.1:3002\",state=\"up\"} 1\n") !=
          std::string::npos);
    CHECK(t.find("atlas_upstream_server_state{upstream=\"api\",server=\"127.0.0.1:3002\",state=\"down\"} 0\n") !=
          std::string::npos);
    CHECK(t.back() == '\n');
}
