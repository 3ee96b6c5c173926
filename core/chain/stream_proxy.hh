// The L4 proxy behind host->stream_forward: one `relay` per forwarded client connection,
// joining it to a connection to a server picked through the upstream's LB policy. Bytes
// are relayed as they come, both ways, with bounded buffers (a side that gets ahead is
// paused); half-closes are passed on once the other side has everything; a failed
// connect goes to the next server. Upstream connections here are never pooled: each
// client connection has its own.
#pragma once

#include <atlas/module.h>

#include <cstdint>
#include <string_view>

namespace atlas::chain {

class worker;
struct conn;

namespace stream_proxy {

struct relay;

// host->stream_forward.
int32_t forward(conn *c, const atlas_stream_options_t *opt);

// True for the server side of a relay (an outgoing connection).
bool is_server(const conn *c);

// From the connection layer, for either side of a relay: plain bytes, and the end of
// the peer's stream.
void on_data(worker &w, conn *c, const char *data, size_t len);
// The same for bytes still in the worker's receive buffer `bid` of `group` (a side
// without a transport): true when the relay keeps the buffer to send it on as it is (it
// goes back to the ring once sent), false when the bytes were copied and it may be
// reused now.
bool on_buffer(worker &w, conn *c, const char *data, size_t len, uint16_t bid, uint16_t group);
void on_eof(worker &w, conn *c);
// From the worker: the server side's connect completed (res < 0: it failed).
void on_connected(worker &w, conn *sc, int32_t res);
// The server side's TLS handshake is through (host->transport_set_info).
void on_handshake(worker &w, conn *sc);
// The same for the client side: the server connection is made now.
void on_client_handshake(worker &w, conn *c);
// Either side is being freed (its queued output has been failed already).
void on_closed(worker &w, conn *c);
// The worker's sweep: connect and idle timeouts.
void check_timeouts(worker &w, conn *c, uint64_t now);

// For the access log of a forwarded client connection: 200 once a server took it, 502
// when none could be reached, 503 when the upstream had no usable server, 499 when the
// client left first, 400 when its transport handshake never completed; the server
// ("ip:port", empty before one was picked).
unsigned status_of(const conn *client);
std::string_view server_of(const conn *client);

}  // namespace stream_proxy
}  // namespace atlas::chain
