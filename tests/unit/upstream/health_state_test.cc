// The server health state machine: hysteresis, passive detection, circuit breaker,
// half-open probes, cooldowns, slow start and the recorded reasons.
#include <doctest/doctest.h>

#include "upstream/health_state.hh"

using namespace atlas::upstream;

namespace {

health_settings active(uint32_t rise = 2, uint32_t fall = 3) {
    health_settings s;
    s.active = true;
    s.rise = rise;
    s.fall = fall;
    s.interval_ms = 1000;
    return s;
}

}  // namespace

TEST_CASE("active checks: fall failures in a row take a server down, rise passes bring it back") {
    health_state h(active(2, 3));
    CHECK(h.state() == server_state::up);
    CHECK_FALSE(h.check_result(false, "status 500", 1));
    CHECK_FALSE(h.check_result(false, "status 500", 2));
    CHECK_FALSE(h.check_result(true, "status 200", 3));  // a pass resets the count
    CHECK_FALSE(h.check_result(false, "timed out", 4));
    CHECK_FALSE(h.check_result(false, "timed out", 5));
    CHECK(h.check_result(false, "connect: Connection refused", 6));
    CHECK(h.state() == server_state::down);
    REQUIRE(h.history().size() == 1);
    CHECK(h.history().back().from == server_state::up);
    CHECK(h.history().back().to == server_state::down);
    CHECK(h.history().back().reason == "health check failed 3 times in a row (fall 3): connect: Connection refused");
    CHECK(h.usable_in(6) == 2000);  // rise x interval

    CHECK_FALSE(h.check_result(true, "status 200", 7));
    CHECK(h.usable_in(7) == 1000);
    CHECK_FALSE(h.check_result(false, "status 503", 8));
    CHECK_FALSE(h.check_result(true, "status 200", 9));
    CHECK(h.check_result(true, "status 200", 10));
    CHECK(h.state() == server_state::up);
    CHECK(h.history().back().reason == "health check passed 2 times in a row (rise 2): status 200");
    CHECK(h.last_check_ok());
    CHECK(h.last_check_ms() == 10);
}

TEST_CASE("passive failures: down at once; with checks they decide, without them a probe after the cooldown") {
    SUBCASE("with active checks") {
        health_state h(active(1, 3));
        CHECK(h.passive_failure("connect failed: Connection refused", 1, 100));
        CHECK(h.state() == server_state::down);
        CHECK(h.history().back().reason ==
              "passive: connect failed: Connection refused (1 failure in a row, fails 1)");
        CHECK_FALSE(h.tick(1000000));  // no cooldown: only checks bring it back
        CHECK(h.check_result(true, "status 200", 1000001));
        CHECK(h.state() == server_state::up);
    }
    SUBCASE("without active checks") {
        health_settings s;
        s.passive_fails = 2;
        s.passive_cooldown_ms = 500;
        health_state h(s);
        CHECK_FALSE(h.passive_failure("reset", 1, 100));  // below the threshold
        CHECK(h.passive_failure("reset", 2, 100));
        CHECK(h.usable_in(200) == 400);
        CHECK_FALSE(h.tick(599));
        CHECK(h.tick(600));
        CHECK(h.state() == server_state::half_open);
        CHECK(h.usable_in(600) == 0);
        CHECK(h.probe_result(false, "connect failed", 700));
        CHECK(h.state() == server_state::down);  // back where it came from, a new cooldown
        CHECK(h.tick(1200));
        CHECK(h.probe_result(true, "status 200", 1300));
        CHECK(h.state() == server_state::up);
        CHECK(h.history().size() == 5);
    }
    SUBCASE("off") {
        health_settings s;
        s.passive_fails = 0;
        health_state h(s);
        CHECK_FALSE(h.passive_failure("reset", 100, 1));
        CHECK(h.state() == server_state::up);
    }
}

TEST_CASE("circuit breaker: opens at its threshold, half-opens after the cooldown, the probe decides") {
    health_settings s;
    s.passive_fails = 0;
    s.breaker_failures = 5;
    s.breaker_cooldown_ms = 1000;
    health_state h(s);
    CHECK_FALSE(h.breaker_trip("status 503", 4, 10));
    CHECK(h.breaker_trip("status 503", 5, 10));
    CHECK(h.state() == server_state::open);
    CHECK(h.history().back().reason == "circuit breaker: 5 failures or 5xx in a row (last: status 503)");
    CHECK(h.usable_in(500) == 510);
    CHECK_FALSE(h.tick(1009));
    CHECK(h.tick(1010));
    CHECK(h.state() == server_state::half_open);
    CHECK(h.probe_result(false, "status 500", 1100));
    CHECK(h.state() == server_state::open);
    CHECK(h.tick(2100));
    CHECK(h.probe_result(true, "status 200", 2200));
    CHECK(h.state() == server_state::up);
    CHECK(h.history().back().reason == "probe request succeeded: status 200");
    CHECK_FALSE(h.probe_result(true, "late", 2300));  // only a half-open server takes a probe verdict
}

TEST_CASE("an open circuit ignores passing checks but failing ones take it down") {
    health_settings s = active(1, 2);
    s.breaker_failures = 1;
    health_state h(s);
    CHECK(h.breaker_trip("status 500", 1, 0));
    CHECK_FALSE(h.check_result(true, "status 200", 1));
    CHECK(h.state() == server_state::open);
    CHECK_FALSE(h.check_result(false, "status 500", 2));
    CHECK(h.check_result(false, "status 500", 3));
    CHECK(h.state() == server_state::down);
}

TEST_CASE("slow start ramps the weight after a server comes back") {
    health_settings s = active(1, 1);
    s.slow_start_ms = 10000;
    health_state h(s);
    CHECK(h.effective_weight(10, 0) == 10);  // never came back: full weight
    CHECK(h.check_result(false, "x", 0));
    CHECK(h.effective_weight(10, 100) == 10);  // down: not slow-starting
    CHECK(h.check_result(true, "ok", 1000));
    CHECK(h.in_slow_start(1000));
    CHECK(h.effective_weight(10, 1000) == 1);  // at least 1
    CHECK(h.effective_weight(10, 6000) == 5);
    CHECK(h.effective_weight(10, 10999) == 9);
    CHECK(h.effective_weight(10, 11000) == 10);
    CHECK_FALSE(h.in_slow_start(11000));
}

TEST_CASE("history keeps the last changes only") {
    health_state h(active(1, 1));
    for (uint64_t t = 0; t < 40; ++t) h.check_result(t % 2 == 1, "x", t);
    CHECK(h.history().size() == health_state::history_size);
    CHECK(h.history().back().at_ms == 39);
}

TEST_CASE("settings from the config") {
    atlas::config::upstream u;
    u.health.enabled = true;
    u.health.rise = 4;
    u.health.fall = 5;
    u.health.interval = std::chrono::milliseconds(1500);
    u.passive.fails = 3;
    u.breaker.failures = 7;
    u.slow_start = std::chrono::milliseconds(2000);
    health_settings s = health_settings::of(u);
    CHECK(s.active);
    CHECK(s.rise == 4);
    CHECK(s.fall == 5);
    CHECK(s.interval_ms == 1500);
    CHECK(s.passive_fails == 3);
    CHECK(s.breaker_failures == 7);
    CHECK(s.slow_start_ms == 2000);
}
