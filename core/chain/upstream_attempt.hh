// One use of an upstream group by a proxied request (HTTP, proxy.hh) or connection (L4,
// stream_proxy.hh): the server its LB policy picked, the servers tried before, and what
// each outcome tells the server's health state machine, counters and retry budget.
// Both proxies share it so a server is picked, probed, blamed and released alike.
#pragma once

#include <atlas/module.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "upstream/registry.hh"

namespace atlas::chain {

class worker;
struct conn;
struct runtime;
struct upstream_rt;

struct upstream_attempt {
    const runtime *rt = nullptr;  // the client connection's: module states, registry
    const upstream_rt *up = nullptr;
    // The server of the current attempt: it counts this use in flight (so it is not
    // freed) until release(), which is the last use of it.
    upstream::server *srv = nullptr;
    int32_t taken = -1;         // its index, as told to the LB policy (on_take)
    uint64_t taken_version = 0; // in the membership of this version
    uint32_t attempts = 0;      // servers tried
    bool probe = false;         // the half-open probe of srv
    std::vector<upstream::server *> tried;  // servers already attempted, srv excluded

    // Back to a fresh state for the next use; keeps `tried`'s capacity.
    void reset();
};

namespace attempt {

enum class pick_result {
    picked,     // a.srv is set and counts the use in flight
    no_usable,  // the upstream has no usable server at all (answer 503)
    no_other,   // none left that was not tried already (answer the last failure's 502)
};

// Picks a usable server not tried yet through the upstream's LB policy (hash_key: the
// client address; exchange: for header/cookie keys, NULL for L4), skipping one that
// just tripped and taking the probe slot of a half-open one.
pick_result pick(worker &w, upstream_attempt &a, std::string_view hash_key, atlas_exchange_t *exchange);

// The attempt on a.srv is over: the LB policy and the in-flight count let go of it.
void release(worker &w, upstream_attempt &a);

// The current attempt failed because of the server: `connection` for refused, reset,
// closed and timed out (passive detection and the breaker count those), else a protocol
// error or a 5xx (the breaker only). A client that went away never counts.
void failed(worker &w, upstream_attempt &a, std::string_view why, bool connection);
// The server is reachable: its run of connection failures ends.
void reachable(upstream_attempt &a);
// The server did its job: its run of errors ends and a probe reports success.
void succeeded(upstream_attempt &a, std::string_view why);
// An error that is not a connection failure (a 5xx): counts towards the breaker.
void count_error(upstream_attempt &a, std::string_view why);

// Failure bookkeeping for a retry: a.srv joins the tried servers and is released.
void give_up_server(worker &w, upstream_attempt &a);
// Is there a usable server this use has not been sent to yet?
bool another_server(worker &w, const upstream_attempt &a);
// Another retry within the upstream's budget? (Counts the refusal when not.)
bool budget_allows(worker &w, const upstream_attempt &a);
// Seconds until the first server of the upstream may take traffic again (Retry-After).
unsigned retry_after_s(worker &w, const upstream_attempt &a);

// This worker's counters for server s.
upstream::server_shard &shard_of(const worker &w, upstream::server *s);

// A new non-blocking connection to `server`, registered with the worker on runtime `rt`
// and connecting (the worker's connect completion reports to its owner). nullptr when
// no socket could be made.
conn *connect(worker &w, upstream::server *server, const std::shared_ptr<runtime> &rt);

}  // namespace attempt
}  // namespace atlas::chain
