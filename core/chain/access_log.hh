// Access log: one line per HTTP exchange, nginx's "combined" format or one JSON object,
// and one line per connection of a stream (L4) listener, in nginx's stream style or JSON,
// per listener (listener_rt::log_fd). Lines collect in a per-worker buffer per log and
// are written whole with O_APPEND, so lines of different workers never interleave; the
// buffers go out when large, on the worker's 1 s sweep and when the worker stops.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace atlas::chain {

class worker;
struct conn;
struct exchange;

namespace access_log {

// Per worker: pending lines by log descriptor.
using buffers = std::vector<std::pair<int, std::string>>;

// The exchange is over with `status` (499: the client went away before a response
// head). Nothing happens when its listener logs nothing.
void record(worker &w, exchange *ex, unsigned status);
// The codec answered `status` (400, 408, 414, 431...) to bytes that never became a
// request: logged with "-" for the request (JSON: empty method, target and protocol).
void record_rejected(worker &w, conn *c, unsigned status, uint64_t bytes);
// A connection of a stream listener is over: client, bytes each way, duration, the
// server it was forwarded to and a status (stream_proxy::status_of; 400 for a bad PROXY
// header).
void record_stream(worker &w, conn *c, unsigned status = 0);
// Writes every pending buffer.
void flush(worker &w);

}  // namespace access_log
}  // namespace atlas::chain
