// The HTTP/1.1 side of a client connection: turns received bytes into exchanges,
// runs the route's filters and handler, frames responses and decides keep-alive.
// Called by the worker's event handling; never touches the ring directly.
#pragma once

#include <atlas/module.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace atlas::chain {

class worker;
struct conn;
struct exchange;
struct out_segment;

namespace session {

// New bytes from the socket (valid during the call only).
void on_data(worker &w, conn *c, const char *data, size_t len);
// The client closed its sending side.
void on_eof(worker &w, conn *c);
// End of an event-loop turn: buffered input and resumed chains continue here.
void process(worker &w, conn *c);
// Periodic check of the connection's timeouts.
void check_timeouts(worker &w, conn *c, uint64_t now);
// The connection is going away: abort and release every exchange.
void abort_all(worker &w, conn *c);
// A queued segment was sent (status ATLAS_OK) or dropped (ATLAS_ECLOSED).
void segment_done(worker &w, out_segment &s, int32_t status);
// The connection may close now if it is idle (used by drain).
bool idle(const conn *c);

// Response API behind the host table.
int32_t respond(exchange *ex, uint32_t status, std::string_view content_type, std::string_view body);
int32_t response_start(exchange *ex, uint32_t status, int64_t content_length);
int32_t response_write(exchange *ex, const atlas_iovec_t *iov, size_t iovcnt, uint32_t flags,
                       atlas_done_fn done, void *user);
int32_t response_sendfile(exchange *ex, int fd, uint64_t offset, uint64_t length, uint32_t flags,
                          atlas_done_fn done, void *user);
int32_t response_raw(exchange *ex, const void *bytes, size_t len, size_t head_only_len,
                     atlas_done_fn done, void *user);
void resume(exchange *ex, int32_t status);
// The response, head already sent, cannot be completed: what is queued still goes out,
// then the connection closes without ending the message, so the client sees it cut
// short (an unfinished chunked body or fewer bytes than its Content-Length).
void response_cut(exchange *ex);
void request_body_pause(exchange *ex, bool paused);

}  // namespace session
}  // namespace atlas::chain
