// Connection-level chain pieces: the transport between the socket and the chain
// (e.g. TLS), and stream handlers that own a whole connection (L4). The HTTP
// codec (session.hh) sits on the same plumbing when there is no stream handler.
#pragma once

#include <atlas/module.h>

#include <cstddef>

namespace atlas::chain {

class worker;
struct conn;
struct module_instance;

namespace l4 {

// A connection was accepted: open its transport and stream handler states.
// false = a module refused the connection (close it).
bool open(worker &w, conn *c);
// An upstream connection `uc` is connected: start its client-side transport `t`
// (the upstream's `tls`). false when the module refused.
bool open_client(worker &w, conn *uc, const module_instance *t);
// Bytes from the socket (through the transport when there is one).
void on_wire(worker &w, conn *c, const char *data, size_t len);
// The client shut down its sending side.
void on_eof(worker &w, conn *c);
// Transport: encrypt (or otherwise transform) queued chain output into the socket queue.
void pump(worker &w, conn *c);
// Output has drained: run a pending half-close / transport shutdown. Returns true when
// it queued more bytes (flush again before closing).
bool on_drained(worker &w, conn *c);
// The connection is being freed: let the modules free their per-connection state.
void closed(worker &w, conn *c);

// Host API behind atlas_host_api_t's conn_* and transport_* calls.
int32_t send(conn *c, const atlas_iovec_t *iov, size_t iovcnt, uint32_t flags, atlas_done_fn done,
             void *user);
void shutdown_write(conn *c);
void close(conn *c);
void pause_read(conn *c, bool paused);
atlas_slice_t peer(conn *c);
int32_t transport_deliver(conn *c, atlas_slice_t plain);
int32_t transport_emit(conn *c, atlas_slice_t wire);
void transport_eof(conn *c);
void transport_set_info(conn *c, const atlas_transport_info_t *info);

}  // namespace l4
}  // namespace atlas::chain
