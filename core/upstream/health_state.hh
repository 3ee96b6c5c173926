// One server's health: a single state machine fed by active checks, passive failures
// seen by real traffic, the circuit breaker and half-open probe requests, with
// hysteresis (rise/fall), cooldowns and slow start. Pure logic on the main thread; the
// registry publishes its outcome to the workers. Keeps the last state changes with
// their reasons, so an operator can see why a server flapped.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "config/model.hh"

namespace atlas::upstream {

enum class server_state : uint8_t {
    up,         // gets traffic
    down,       // failed health checks or passive detection
    open,       // circuit breaker open: no traffic until the cooldown ends
    half_open,  // one probe request at a time decides
};

const char *state_name(server_state s);

struct state_change {
    uint64_t at_ms = 0;  // monotonic
    server_state from = server_state::up, to = server_state::up;
    std::string reason;
};

struct health_settings {
    bool active = false;            // health checks run
    uint32_t rise = 2, fall = 3;
    uint64_t interval_ms = 5000;
    uint32_t passive_fails = 1;     // 0: passive detection off
    uint64_t passive_cooldown_ms = 10000;
    uint32_t breaker_failures = 0;  // 0: no circuit breaker
    uint64_t breaker_cooldown_ms = 30000;
    uint64_t slow_start_ms = 0;

    static health_settings of(const config::upstream &u);
};

class health_state {
public:
    static constexpr size_t history_size = 16;

    explicit health_state(const health_settings &s = {}) : s_(s) {}

    // New settings (reload): the state is kept, counts against thresholds restart.
    void configure(const health_settings &s);
    // The server exists from `now` (what "since" shows until its first change).
    void begin(uint64_t now) { since_ = now; }
    // An event worth an operator's eye that is no state change (admin drain, say).
    void note(std::string reason, uint64_t now);

    server_state state() const { return state_; }
    // Each event returns true when the state changed.
    bool check_result(bool pass, std::string_view detail, uint64_t now);
    // `consecutive` failures in a row reported by traffic (refused, reset, timed out).
    bool passive_failure(std::string_view why, uint32_t consecutive, uint64_t now);
    // `consecutive` failures or 5xx in a row: the breaker's threshold was reached.
    bool breaker_trip(std::string_view why, uint32_t consecutive, uint64_t now);
    // The half-open probe request's outcome.
    bool probe_result(bool ok, std::string_view detail, uint64_t now);
    // Cooldowns: down (without active checks) or open becomes half_open once over.
    bool tick(uint64_t now);

    // Milliseconds from `now` until this server may take traffic again (0 = it may now).
    uint64_t usable_in(uint64_t now) const;
    // Weight during slow start: ramps from 1 to `weight` after the server came back up.
    uint32_t effective_weight(uint32_t weight, uint64_t now) const;
    bool in_slow_start(uint64_t now) const;

    const std::deque<state_change> &history() const { return history_; }
    uint64_t since_ms() const { return since_; }
    uint32_t check_passes() const { return passes_; }
    uint32_t check_failures() const { return fails_; }
    // The last active check: when (0 = none yet), whether it passed, what it saw.
    uint64_t last_check_ms() const { return last_check_; }
    bool last_check_ok() const { return last_check_ok_; }
    const std::string &last_check_detail() const { return last_check_detail_; }

private:
    void change(server_state to, std::string reason, uint64_t now);

    health_settings s_;
    server_state state_ = server_state::up;
    server_state half_open_from_ = server_state::open;  // where a failed probe goes back to
    uint64_t since_ = 0;       // when the current state began
    uint64_t until_ = 0;       // down (passive) / open: when the cooldown ends
    uint64_t up_since_ = 0;    // slow start reference; 0 = never came back
    uint32_t passes_ = 0, fails_ = 0;  // consecutive active check results
    uint64_t last_check_ = 0;
    bool last_check_ok_ = false;
    std::string last_check_detail_;
    std::deque<state_change> history_;
};

}  // namespace atlas::upstream
