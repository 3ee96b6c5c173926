// The HTTP/1.1 reverse proxy behind host->proxy_forward: one `call` per proxied
// exchange, upstream connections as worker connections of their own kind, and a
// per-worker keep-alive pool per upstream server. The request goes out re-serialised
// from the parsed one (upstream/request_writer), the response head is parsed by the
// strict http/response_parser, bodies stream both ways with bounded buffers.
#pragma once

#include <atlas/module.h>

#include "http/request_parser.hh"  // header_field

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace atlas::upstream {
struct server;
struct membership;
}  // namespace atlas::upstream

namespace atlas::chain {

class worker;
struct conn;
struct exchange;

namespace proxy {

struct call;

// Per worker: idle keep-alive connections per upstream server, and finished calls
// kept for reuse (a proxied request allocates nothing once these are warm).
struct pools {
    std::unordered_map<const upstream::server *, std::vector<conn *>> idle;
    std::vector<call *> spare_calls;
    std::vector<http::header_field> response_fields;  // parse storage for upstream response heads
    std::vector<uint32_t> loads;  // the shared in-flight counts, read for one LB pick
    std::vector<uint8_t> tried;   // LB bitmap of one pick
    pools() = default;
    pools(const pools &) = delete;
    pools &operator=(const pools &) = delete;
    ~pools();
};

// host->proxy_forward.
int32_t forward(exchange *ex, const atlas_proxy_options_t *opt);

// From the HTTP session: a piece of the client's request body (decoded from chunked).
void on_client_body(worker &w, exchange *ex, std::string_view piece, bool last);
// The exchange is being destroyed (finished or aborted): let go of its upstream side.
void release(worker &w, exchange *ex);

// For the access log: the client as the proxy resolved it, and the server picked
// ("ip:port"); empty when the exchange was not proxied.
std::string_view client_of(const exchange *ex);
std::string_view server_of(const exchange *ex);

// From the connection layer (l4), for a client connection in tunnel mode (conn::tunnel): bytes of
// the new protocol, and the client's half-close.
void tunnel_from_client(worker &w, conn *c, const char *data, size_t len);
void tunnel_client_eof(worker &w, conn *c);

// From the worker, for connections with conn::upstream set.
void on_connected(worker &w, conn *uc, int32_t res);
void on_data(worker &w, conn *uc, const char *data, size_t len);
void on_eof(worker &w, conn *uc);
// A receive on the upstream connection failed (reset and the like); it is closed after.
void on_recv_error(worker &w, conn *uc, int32_t res);
void on_closed(worker &w, conn *uc);  // the connection is being freed
void check_timeouts(worker &w, conn *uc, uint64_t now);
// Drain: pooled idle connections would keep the worker alive.
void close_idle(worker &w);
// A new membership: pooled connections to servers that left it or take no traffic close.
void close_idle_unusable(worker &w, const upstream::membership &m);

}  // namespace proxy
}  // namespace atlas::chain
