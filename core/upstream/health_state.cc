#include "upstream/health_state.hh"

#include <algorithm>

namespace atlas::upstream {

const char *state_name(server_state s) {
    switch (s) {
        case server_state::up: return "up";
        case server_state::down: return "down";
        case server_state::open: return "open";
        case server_state::half_open: return "half_open";
    }
    return "?";
}

health_settings health_settings::of(const config::upstream &u) {
    health_settings s;
    s.active = u.health.enabled;
    s.rise = u.health.rise;
    s.fall = u.health.fall;
    s.interval_ms = uint64_t(u.health.interval.count());
    s.passive_fails = u.passive.fails;
    s.passive_cooldown_ms = uint64_t(u.passive.cooldown.count());
    s.breaker_failures = u.breaker.failures;
    s.breaker_cooldown_ms = uint64_t(u.breaker.cooldown.count());
    s.slow_start_ms = uint64_t(u.slow_start.count());
    return s;
}

void health_state::configure(const health_settings &s) {
    s_ = s;
    passes_ = fails_ = 0;
    // A server kept down only by checks that are no longer configured would never come
    // back: give it the passive cooldown instead.
    if (state_ == server_state::down && !s_.active && until_ == 0) until_ = since_ + s_.passive_cooldown_ms;
}

void health_state::note(std::string reason, uint64_t now) {
    if (history_.size() == history_size) history_.pop_front();
    history_.push_back({now, state_, state_, std::move(reason)});
}

void health_state::change(server_state to, std::string reason, uint64_t now) {
    if (history_.size() == history_size) history_.pop_front();
    history_.push_back({now, state_, to, std::move(reason)});
    if (to == server_state::up && state_ != server_state::up) up_since_ = now;
    state_ = to;
    since_ = now;
    passes_ = fails_ = 0;
}

bool health_state::check_result(bool pass, std::string_view detail, uint64_t now) {
    last_check_ = now;
    last_check_ok_ = pass;
    last_check_detail_.assign(detail);
    if (pass) {
        fails_ = 0;
        ++passes_;
        // Only checks bring a down server back (traffic cannot reach it); an open
        // circuit waits for its cooldown and probe, whatever the checks say.
        if (state_ == server_state::down && passes_ >= s_.rise) {
            change(server_state::up,
                   "health check passed " + std::to_string(passes_) + " time" + (passes_ == 1 ? "" : "s") +
                       " in a row (rise " + std::to_string(s_.rise) + "): " + std::string(detail),
                   now);
            return true;
        }
        return false;
    }
    passes_ = 0;
    ++fails_;
    if (state_ != server_state::down && fails_ >= s_.fall) {
        uint32_t n = fails_;
        until_ = 0;  // checks decide when it comes back
        change(server_state::down,
               "health check failed " + std::to_string(n) + " time" + (n == 1 ? "" : "s") + " in a row (fall " +
                   std::to_string(s_.fall) + "): " + std::string(detail),
               now);
        return true;
    }
    return false;
}

bool health_state::passive_failure(std::string_view why, uint32_t consecutive, uint64_t now) {
    if (s_.passive_fails == 0 || consecutive < s_.passive_fails) return false;
    if (state_ != server_state::up) return false;  // half-open probes report through probe_result
    until_ = s_.active ? 0 : now + s_.passive_cooldown_ms;
    change(server_state::down,
           "passive: " + std::string(why) + " (" + std::to_string(consecutive) + " failure" +
               (consecutive == 1 ? "" : "s") + " in a row, fails " + std::to_string(s_.passive_fails) + ")",
           now);
    return true;
}

bool health_state::breaker_trip(std::string_view why, uint32_t consecutive, uint64_t now) {
    if (s_.breaker_failures == 0 || consecutive < s_.breaker_failures) return false;
    if (state_ != server_state::up) return false;
    until_ = now + s_.breaker_cooldown_ms;
    change(server_state::open,
           "circuit breaker: " + std::to_string(consecutive) + " failures or 5xx in a row (last: " + std::string(why) +
               ")",
           now);
    return true;
}

bool health_state::probe_result(bool ok, std::string_view detail, uint64_t now) {
    if (state_ != server_state::half_open) return false;
    if (ok) {
        change(server_state::up, "probe request succeeded: " + std::string(detail), now);
        return true;
    }
    bool breaker = half_open_from_ == server_state::open;
    until_ = now + (breaker ? s_.breaker_cooldown_ms : s_.passive_cooldown_ms);
    change(half_open_from_, "probe request failed: " + std::string(detail), now);
    return true;
}

bool health_state::tick(uint64_t now) {
    bool cooled = until_ != 0 && now >= until_;
    if (state_ == server_state::open && cooled) {
        half_open_from_ = server_state::open;
        until_ = 0;
        change(server_state::half_open, "circuit breaker cooldown over: one probe request decides", now);
        return true;
    }
    if (state_ == server_state::down && !s_.active && cooled) {
        half_open_from_ = server_state::down;
        until_ = 0;
        change(server_state::half_open, "passive cooldown over: one probe request decides", now);
        return true;
    }
    return false;
}

uint64_t health_state::usable_in(uint64_t now) const {
    switch (state_) {
        case server_state::up:
        case server_state::half_open:
            return 0;
        case server_state::open:
            return until_ > now ? until_ - now : 0;
        case server_state::down:
            if (!s_.active) return until_ > now ? until_ - now : 0;
            return uint64_t(s_.rise > passes_ ? s_.rise - passes_ : 1) * s_.interval_ms;
    }
    return 0;
}

bool health_state::in_slow_start(uint64_t now) const {
    return state_ == server_state::up && s_.slow_start_ms && up_since_ && now - up_since_ < s_.slow_start_ms;
}

uint32_t health_state::effective_weight(uint32_t weight, uint64_t now) const {
    if (!in_slow_start(now)) return weight;
    uint64_t w = uint64_t(weight) * (now - up_since_) / s_.slow_start_ms;
    return uint32_t(std::clamp<uint64_t>(w, 1, weight));
}

}  // namespace atlas::upstream
