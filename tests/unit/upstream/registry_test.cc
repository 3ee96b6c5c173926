// The upstream registry: membership publication, admin changes kept across a rebind,
// reports from workers applied on the main thread, and freeing retired servers only
// once no worker can reach them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "upstream/registry.hh"

using namespace atlas;
using namespace atlas::upstream;

namespace {

server_spec spec(const std::string &address, uint32_t weight = 1) {
    server_spec s;
    std::string err;
    REQUIRE(net::parse_address(address, s.addr, err));
    s.address = address;
    s.written = address;
    s.weight = weight;
    return s;
}

config::upstream upstream_cfg(const std::string &name = "api") {
    config::upstream u;
    u.name = name;
    u.key = "upstream." + name;
    return u;
}

std::vector<std::string> addresses(const group &g) {
    std::vector<std::string> out;
    for (server *s : g.current.load()->servers) out.push_back(s->address);
    return out;
}

}  // namespace

TEST_CASE("bind publishes the servers in order with their weights") {
    registry r(2);
    std::vector<uint32_t> published;
    r.on_publish = [&](uint32_t slot) { published.push_back(slot); };
    auto g = r.bind(upstream_cfg(), {spec("127.0.0.1:3001", 3), spec("127.0.0.1:3002")}, 0);
    auto m = g->current.load();
    REQUIRE(m);
    CHECK(m->version == 1);
    CHECK(m->usable == 2);
    REQUIRE(m->endpoints.size() == 2);
    CHECK(std::string(m->endpoints[0].address.ptr, m->endpoints[0].address.len) == "127.0.0.1:3001");
    CHECK(m->endpoints[0].weight == 3);
    CHECK(m->endpoints[0].usable);
    CHECK(published == std::vector<uint32_t>{0});
    CHECK(r.find("api") == g.get());
    CHECK(r.find("other") == nullptr);
}

TEST_CASE("rebinding keeps a server's object and state; admin changes survive it") {
    registry r(1);
    auto g = r.bind(upstream_cfg(), {spec("127.0.0.1:3001"), spec("127.0.0.1:3002")}, 0);
    server *first = g->find("127.0.0.1:3001");
    REQUIRE(first);
    first->health.passive_failure("refused", 1, 0);
    first->state.store(first->health.state());

    CHECK(r.add_server(*g, {spec("127.0.0.1:3003", 2)}, 1) == registry::change::ok);
    CHECK(r.add_server(*g, {spec("127.0.0.1:3003")}, 1) == registry::change::exists);
    CHECK(r.remove_server(*g, "127.0.0.1:3002", 2) == registry::change::ok);
    CHECK(r.remove_server(*g, "127.0.0.1:3999", 2) == registry::change::not_found);
    CHECK(addresses(*g) == std::vector<std::string>{"127.0.0.1:3001", "127.0.0.1:3003"});
    CHECK_FALSE(g->find("127.0.0.1:3003")->in_config);

    // A reload with the same servers: 3002 stays removed, 3003 stays added, 3001 keeps its state.
    auto again = r.bind(upstream_cfg(), {spec("127.0.0.1:3001"), spec("127.0.0.1:3002")}, 3);
    CHECK(again == g);
    CHECK(g->find("127.0.0.1:3001") == first);
    CHECK(first->health.state() == server_state::down);
    CHECK(addresses(*g) == std::vector<std::string>{"127.0.0.1:3001", "127.0.0.1:3003"});
    auto m = g->current.load();
    CHECK(m->usable == 1);
    CHECK_FALSE(m->endpoints[0].usable);

    // Putting a removed config server back makes it the config's again.
    CHECK(r.add_server(*g, {spec("127.0.0.1:3002")}, 4) == registry::change::ok);
    CHECK(g->find("127.0.0.1:3002")->in_config);
    CHECK(g->added.count("127.0.0.1:3002") == 0);
}

TEST_CASE("drain takes a server out of picking without changing its health") {
    registry r(1);
    auto g = r.bind(upstream_cfg(), {spec("127.0.0.1:3001"), spec("127.0.0.1:3002")}, 0);
    std::vector<std::string> reasons;
    r.on_state_change = [&](const group &, const server &, const state_change &c) { reasons.push_back(c.reason); };
    CHECK(r.set_draining(*g, "127.0.0.1:3002", true, 1) == registry::change::ok);
    auto m = g->current.load();
    CHECK(m->usable == 1);
    CHECK_FALSE(m->endpoints[1].usable);
    CHECK(g->find("127.0.0.1:3002")->health.state() == server_state::up);
    CHECK(r.set_draining(*g, "127.0.0.1:3002", false, 2) == registry::change::ok);
    CHECK(g->current.load()->usable == 2);
    CHECK(reasons == std::vector<std::string>{"admin: drain", "admin: ready"});
    CHECK(r.set_draining(*g, "nope:1", true, 3) == registry::change::not_found);
}

TEST_CASE("reports from workers move the state and publish; Retry-After knows when") {
    registry r(1);
    config::upstream u = upstream_cfg();
    u.passive.fails = 1;
    u.passive.cooldown = std::chrono::milliseconds(3000);
    auto g = r.bind(u, {spec("127.0.0.1:3001")}, 0);
    server *s = g->members[0].get();
    s->consecutive_failures.store(1);
    report rep;
    rep.group_slot = g->slot;
    rep.server_id = s->id;
    rep.consecutive = 1;
    rep.why = "connect failed: Connection refused";
    r.post(rep);
    r.take_reports(1000);
    CHECK(s->state.load() == server_state::down);
    CHECK(s->consecutive_failures.load() == 0);  // spent on this transition
    auto m = g->current.load();
    CHECK(m->usable == 0);
    CHECK(m->usable_at_ms == 4000);

    r.tick(3999);
    CHECK(s->state.load() == server_state::down);
    r.tick(4000);
    CHECK(s->state.load() == server_state::half_open);
    CHECK(g->current.load()->usable == 1);  // picked, one probe at a time
    s->probe_taken.store(true);
    rep.what = report::kind::probe_dropped;
    r.post(rep);
    r.take_reports(4100);
    CHECK_FALSE(s->probe_taken.load());
    rep.what = report::kind::probe_ok;
    rep.why = "status 200";
    r.post(rep);
    r.take_reports(4200);
    CHECK(s->state.load() == server_state::up);

    // A report made before a success (or a state change) reset the count is old news.
    rep.what = report::kind::failure;
    rep.consecutive = 1;
    s->consecutive_failures.store(0);
    r.post(rep);
    r.take_reports(4250);
    CHECK(s->state.load() == server_state::up);
    s->state.store(server_state::down);  // a worker's trip ahead of it is undone too
    r.post(rep);
    r.take_reports(4260);
    CHECK(s->state.load() == server_state::up);

    rep.server_id = 999;  // a server that does not exist (or was freed) is ignored
    rep.what = report::kind::failure;
    r.post(rep);
    r.take_reports(4300);
    CHECK(s->state.load() == server_state::up);
}

TEST_CASE("a removed server is freed only once every worker moved on and nothing is in flight") {
    registry r(2);
    auto g = r.bind(upstream_cfg(), {spec("127.0.0.1:3001"), spec("127.0.0.1:3002")}, 0);
    server *gone = g->find("127.0.0.1:3002");
    gone->inflight.store(1);
    CHECK(r.remove_server(*g, "127.0.0.1:3002", 1) == registry::change::ok);
    CHECK(gone->retired.load());
    uint64_t v = g->current.load()->version;
    REQUIRE(g->retired.size() == 1);
    g->acks[0].store(v);
    r.tick(2);
    CHECK(g->retired.size() == 1);  // worker 1 has not taken the new membership yet
    g->acks[1].store(v);
    r.tick(3);
    CHECK(g->retired.size() == 1);  // still in flight
    gone->inflight.store(0);
    r.tick(4);
    CHECK(g->retired.empty());
}

TEST_CASE("slow start republishes growing weights") {
    registry r(1);
    config::upstream u = upstream_cfg();
    u.health.enabled = true;
    u.health.rise = 1;
    u.health.fall = 1;
    u.slow_start = std::chrono::milliseconds(4000);
    auto g = r.bind(u, {spec("127.0.0.1:3001", 8), spec("127.0.0.1:3002", 8)}, 0);
    server *s = g->members[0].get();
    r.check_result(*g, *s, false, "status 500", 0);
    CHECK(g->current.load()->usable == 1);
    r.check_result(*g, *s, true, "status 200", 1000);
    CHECK(g->current.load()->endpoints[0].weight == 1);
    r.tick(3000);
    CHECK(g->current.load()->endpoints[0].weight == 4);
    r.tick(5000);
    CHECK(g->current.load()->endpoints[0].weight == 8);
    uint64_t v = g->current.load()->version;
    r.tick(6000);
    CHECK(g->current.load()->version == v);  // nothing changed: nothing published
    CHECK(s->checks_passed == 1);
    CHECK(s->checks_failed == 1);
}
