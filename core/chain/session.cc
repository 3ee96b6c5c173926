#include "chain/session.hh"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "chain/access_log.hh"
#include "chain/log.hh"
#include "chain/proxy.hh"
#include "chain/response_headers.hh"
#include "chain/worker.hh"
#include "http/path.hh"
#include "http/response_head.hh"

namespace atlas::chain::session {

namespace {

// Above this much queued output we stop starting new pipelined requests.
constexpr uint64_t max_queued_output = 256 * 1024;
// Lingering close: how long we keep draining a client after our final response.
constexpr uint64_t linger_ms = 5000;

const config::http_limits &limits_of(const conn *c) { return c->listener->cfg->limits; }

// The ABI's opaque handle for an exchange is the exchange itself.
atlas_exchange_t *handle(exchange *ex) { return reinterpret_cast<atlas_exchange_t *>(ex); }

void push_segment(worker &w, conn *c, out_segment s) {
    if (c->out.empty()) c->last_send = w.now_ms_;
    if (s.ex) ++s.ex->pending_segments;
    c->out.push(s);
    w.mark_dirty(c);
}

void push_copy(worker &w, conn *c, exchange *ex, std::string_view bytes, atlas_done_fn done = nullptr,
               void *user = nullptr) {
    out_segment s;
    if (!bytes.empty()) {
        char *p = c->out.alloc(w.arena_pool_, bytes.size());
        std::memcpy(p, bytes.data(), bytes.size());
        s.data = p;
        s.len = bytes.size();
    }
    s.done = done;
    s.user = user;
    s.ex = ex;
    push_segment(w, c, s);
}

void push_ref(worker &w, conn *c, exchange *ex, const void *p, size_t n, atlas_done_fn done, void *user) {
    out_segment s;
    s.data = static_cast<const char *>(p);
    s.len = n;
    s.done = done;
    s.user = user;
    s.ex = ex;
    push_segment(w, c, s);
}

// Appends "Name: value\r\n".
char *put(char *p, std::string_view s) {
    if (s.empty()) return p;  // memcpy from a null view is undefined even for 0 bytes
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

// A response produced by the core itself for a request it will not route
// (parse errors, timeouts): always closes the connection.
void send_error(worker &w, conn *c, unsigned status) {
    std::string_view reason = http::reason_phrase(status);
    char body[96];
    int bl = std::snprintf(body, sizeof body, "%u %.*s\n", status, int(reason.size()), reason.data());
    char head[512];
    char *p = head + http::format_status_line(head, status);
    p = put(p, "Server: atlas\r\nDate: ");
    p = put(p, std::string_view(w.dates_.text(), 29));
    p += std::snprintf(p, 160, "\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", bl);
    push_copy(w, c, nullptr, std::string_view(head, size_t(p - head)));
    push_copy(w, c, nullptr, std::string_view(body, size_t(bl)));
    access_log::record_rejected(w, c, status, uint64_t(bl));
    c->listener->stats[w.index_].unrouted.count(status, 0);
    c->close_after_flush = true;
    c->in_start = c->in_end = 0;  // whatever else the client sent is not read
    c->scan_from = 0;
}

void destroy_exchange(worker &w, exchange *ex) {
    conn *c = ex->c;
    proxy::release(w, ex);
    if (ex->route) {
        for (size_t i = 0; i < ex->filter_states.size(); ++i) {
            module_instance *f = ex->route->filters[i];
            if (ex->filter_states[i] && f->filter->filter_destroy) f->filter->filter_destroy(ex->filter_states[i]);
        }
        if (ex->handler_called && ex->route->handler->handler->request_destroy)
            ex->route->handler->handler->request_destroy(ex->handler_state);
    }
    if (c) {
        auto it = std::find(c->retiring.begin(), c->retiring.end(), ex);
        if (it != c->retiring.end()) c->retiring.erase(it);
    }
    w.free_exchange(ex);
}

// Counted for the route that served it (or as unrouted) and its listener.
void count_exchange(worker &w, exchange *ex, unsigned status) {
    const listener_rt *l = ex->c ? ex->c->listener : nullptr;
    if (!l) return;
    uint64_t us = w.now_us_ > ex->start_us ? w.now_us_ - ex->start_us : 0;
    if (ex->route) ex->route->stats[w.index_].count(status, us);
    else l->stats[w.index_].unrouted.count(status, us);
}

void finish_exchange(worker &w, conn *c, exchange *ex) {
    access_log::record(w, ex, ex->status);
    count_exchange(w, ex, ex->status);
    c->cur = nullptr;
    ++c->requests;
    ex->finished = true;
    if (!ex->keep_alive) c->close_after_flush = true;
    c->idle_since = w.now_ms_;
    c->head_started = false;
    if (ex->pending_segments == 0) destroy_exchange(w, ex);
    else c->retiring.push_back(ex);
}

// The core answers in place of the handler (no route, bad path, limits...).
// `close`: the connection ends after it and any request body is not read;
// otherwise the body is read and discarded and keep-alive goes on.
void core_error(exchange *ex, unsigned status, bool close = true) {
    if (close) {
        ex->keep_alive = false;
        ex->body_done = true;
    }
    if (ex->head_sent) {
        if (!ex->complete) {
            ex->complete = true;
            ex->c->close_after_flush = true;
        }
        return;
    }
    std::string_view reason = http::reason_phrase(status);
    char body[96];
    int bl = std::snprintf(body, sizeof body, "%u %.*s\n", status, int(reason.size()), reason.data());
    ex->resp_headers.clear();
    respond(ex, status, "text/plain", std::string_view(body, size_t(bl)));
}

void deliver_body(worker &w, exchange *ex, std::string_view piece, bool last) {
    ex->c->last_body = w.now_ms_;
    if (ex->proxy) {
        proxy::on_client_body(w, ex, piece, last);
        return;
    }
    const atlas_http_handler_t *h = ex->route ? ex->route->handler->handler : nullptr;
    if (ex->handler_called && h && h->on_request_body)
        h->on_request_body(ex->handler_state, handle(ex), {piece.data(), piece.size()}, last);
}

bool over_body_limit(const conn *c, uint64_t n) {
    uint64_t max = limits_of(c).max_body_bytes;
    return max && n > max;
}

// Feeds body bytes of the current exchange; returns bytes consumed.
size_t feed_body(worker &w, conn *c, exchange *ex, std::string_view data) {
    if (ex->body == exchange::body_mode::length) {
        size_t n = size_t(std::min<uint64_t>(data.size(), ex->body_left));
        ex->body_left -= n;
        ex->body_received += n;
        bool last = ex->body_left == 0;
        if (last) ex->body_done = true;
        if (n || last) deliver_body(w, ex, data.substr(0, n), last);
        return n;
    }
    size_t used = 0;
    auto st = ex->chunked.feed(data, used, [&](std::string_view piece) { deliver_body(w, ex, piece, false); });
    ex->body_received = ex->chunked.body_bytes();
    if (st != http::chunked_decoder::status::error && over_body_limit(c, ex->body_received)) {
        core_error(ex, 413);
        c->close_after_flush = true;
        return data.size();
    }
    if (st == http::chunked_decoder::status::error) {
        log::rate_limited_warn("bad chunked request body from %s: %s", c->w->peer_of(c), ex->chunked.error_reason());
        core_error(ex, 400);
        c->close_after_flush = true;
        return data.size();
    }
    if (st == http::chunked_decoder::status::done) {
        ex->body_done = true;
        deliver_body(w, ex, {}, true);
    }
    return used;
}

void call_handler(worker &w, exchange *ex) {
    module_instance *h = ex->route->handler;
    conn *c = ex->c;
    ex->discard_first = false;
    ex->handler_called = true;
    int32_t rc = h->handler->on_request(h->config, c->rt->state(w.index_, h->slot), handle(ex), &ex->handler_state);
    if (rc != ATLAS_OK && !c->closing && !ex->complete) {
        log::warn("%s: handler failed", h->key.c_str());
        core_error(ex, 500);
    }
}

void run_chain(worker &w, exchange *ex) {
    const route_rt *r = ex->route;
    while (ex->filter_pos < r->filters.size()) {
        size_t i = ex->filter_pos++;
        module_instance *f = r->filters[i];
        if (!f->filter->on_request_head) continue;
        ex->in_filters = true;
        int32_t rc = f->filter->on_request_head(f->config, ex->c->rt->state(w.index_, f->slot), handle(ex), &ex->filter_states[i]);
        ex->in_filters = false;
        if (ex->c->closing) return;
        if (rc == ATLAS_STOP) return;
        if (rc == ATLAS_DONE) {
            if (!ex->complete) core_error(ex, 500);
            return;
        }
        if (rc < 0) {
            log::warn("%s: filter failed", f->key.c_str());
            core_error(ex, 500);
            return;
        }
    }
    module_instance *h = r->handler;
    conn *c = ex->c;
    if (ex->body != exchange::body_mode::none && ex->head.expect_continue) {
        push_copy(w, c, nullptr, "HTTP/1.1 100 Continue\r\n\r\n");
        ex->continue_sent = true;
    }
    if (ex->body != exchange::body_mode::none && !h->handler->on_request_body) {
        // A handler that takes no body answers once the body has been read and checked:
        // a malformed body then gets its 400 (as nginx does when discarding), and the
        // connection stays usable. consume() calls the handler when the body is done.
        ex->discard_first = true;
        return;
    }
    call_handler(w, ex);
}

std::string_view relocate(std::string_view sv, const char *from, size_t from_len, const char *to) {
    if (sv.data() >= from && sv.data() + sv.size() <= from + from_len && sv.data())
        return std::string_view(to + (sv.data() - from), sv.size());
    return sv;
}

void start_exchange(worker &w, conn *c, std::string_view raw, const http::request_head &parsed) {
    exchange *ex = w.alloc_exchange();
    ex->c = c;
    ex->start_ms = w.now_ms_;
    ex->start_us = w.now_us_;
    ex->head_buf.assign(raw.begin(), raw.end());
    const char *from = raw.data();
    const char *to = ex->head_buf.data();
    auto rel = [&](std::string_view sv) { return relocate(sv, from, raw.size(), to); };
    ex->head = parsed;
    ex->head.method = rel(parsed.method);
    ex->head.target = rel(parsed.target);
    ex->head.path_raw = rel(parsed.path_raw);
    ex->head.query = rel(parsed.query);
    ex->head.authority = rel(parsed.authority);
    ex->head.host = rel(parsed.host);
    ex->req_headers.resize(parsed.header_count);
    for (uint32_t i = 0; i < parsed.header_count; ++i)
        ex->req_headers[i] = {rel(parsed.headers[i].name), rel(parsed.headers[i].value)};
    ex->head.headers = ex->req_headers.data();
    c->cur = ex;

    // Host for routing: lowercase, port stripped (IPv6 literals keep their brackets).
    std::string_view h = ex->head.host;
    size_t colon = h.rfind(':');
    if (colon != std::string_view::npos && h.find(']', colon) == std::string_view::npos) h = h.substr(0, colon);
    ex->host.assign(h.begin(), h.end());
    for (char &ch : ex->host) ch = char(std::tolower(static_cast<unsigned char>(ch)));

    const config::http_limits &lim = limits_of(c);
    ex->keep_alive = ex->head.keep_alive && !w.draining_ &&
                     !(lim.max_requests_per_conn && c->requests + 1 >= lim.max_requests_per_conn);
    if (ex->head.chunked) {
        ex->body = exchange::body_mode::chunked;
        ex->chunked.reset();
        ex->body_done = false;
    } else if (ex->head.content_length > 0) {
        ex->body = exchange::body_mode::length;
        ex->body_left = uint64_t(ex->head.content_length);
        ex->body_done = false;
    }
    c->last_body = w.now_ms_;

    std::string_view method = ex->head.method;
    if (method == "CONNECT") {
        // Not a forward proxy: no tunnels by authority-form (RFC 9110 9.3.6).
        ex->resp_headers = "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n";
        ex->keep_alive = false;
        ex->body_done = true;
        respond(ex, 405, "text/plain", "405 Method Not Allowed\n");
        return;
    }
    if (ex->head.path_raw == "*") {
        // OPTIONS * asks about the server as a whole.
        ex->resp_headers = "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n";
        respond(ex, 200, {}, {});
        return;
    }
    if (ex->head.content_length >= 0 && over_body_limit(c, uint64_t(ex->head.content_length))) {
        core_error(ex, 413);
        return;
    }
    if (!http::normalize_path(ex->head.path_raw, ex->path)) {
        core_error(ex, 400);
        return;
    }
    const route_rt *route = match_route(*c->listener, ex->host, ex->path, method, ex->req_headers.data(),
                                        ex->req_headers.size());
    if (!route || !route->handler) {
        core_error(ex, 404, false);
        return;
    }
    ex->route = route;
    ex->filter_states.assign(route->filters.size(), nullptr);
    run_chain(w, ex);
}

// Runs the connection's state machine over `data`; returns the bytes consumed.
size_t consume(worker &w, conn *c, std::string_view data) {
    size_t pos = 0;
    while (!c->closing && !c->close_after_flush) {
        if (exchange *ex = c->cur) {
            if (!ex->body_done) {
                if (ex->body_paused || (!ex->handler_called && !ex->discard_first)) {
                    // A filter is still deciding or the handler paused the body: keep bytes buffered,
                    // unless the response is already complete (then the body is discarded below).
                    if (!ex->complete) break;
                }
                if (ex->complete && ex->head.expect_continue && !ex->continue_sent) {
                    // Final answer given before the client sent its body: it may never send it.
                    ex->keep_alive = false;
                    ex->body_done = true;
                } else {
                    if (pos == data.size()) break;
                    pos += feed_body(w, c, ex, data.substr(pos));
                    if (c->closing || c->close_after_flush) {
                        if (ex->complete && c->cur == ex) finish_exchange(w, c, ex);
                        break;
                    }
                    if (!ex->body_done) break;
                }
            }
            if (ex->discard_first && ex->body_done && !ex->complete) call_handler(w, ex);
            if (c->closing) break;
            if (!ex->complete) break;  // the handler answers later
            finish_exchange(w, c, ex);
            continue;
        }
        if (w.draining_ && c->requests > 0 && !w.in_idle_grace()) {
            c->close_after_flush = true;
            break;
        }
        if (c->output_bytes() > max_queued_output) {
            c->need_process = true;  // resumes once the client has read some output
            break;
        }
        if (pos == data.size()) break;
        const config::http_limits &lim = limits_of(c);
        http::parse_limits pl{lim.max_request_line, lim.max_header_bytes, lim.max_headers};
        http::request_head head;
        std::string_view rest = data.substr(pos);
        auto r = http::parse_request_head(rest, pl, head, w.scratch_headers_.data(),
                                          uint32_t(w.scratch_headers_.size()), c->scan_from);
        if (r == http::parse_result::incomplete) {
            if (!c->head_started) {
                c->head_started = true;
                c->head_start = w.now_ms_;
            }
            break;
        }
        if (r == http::parse_result::error) {
            log::rate_limited_warn("%u for a request from %s: %s", unsigned(head.error_status), w.peer_of(c),
                                   head.error_reason ? head.error_reason : "malformed");
            send_error(w, c, head.error_status ? head.error_status : 400);
            return data.size();
        }
        c->head_started = false;
        pos += head.head_length;
        start_exchange(w, c, rest.substr(0, head.head_length), head);
    }
    return pos;
}

void append_input(conn *c, const char *p, size_t n) {
    if (!n) return;
    if (c->in_start > 0 && c->in_start == c->in_end) c->in_start = c->in_end = 0;
    if (c->in_end + n > c->in.size()) {
        // Compact first; grow only when that is not enough.
        if (c->in_start > 0) {
            std::memmove(c->in.data(), c->in.data() + c->in_start, c->buffered());
            c->in_end -= c->in_start;
            c->in_start = 0;
        }
        if (c->in_end + n > c->in.size()) c->in.resize(std::max<size_t>(c->in_end + n, 4096));
    }
    std::memcpy(c->in.data() + c->in_end, p, n);
    c->in_end += n;
}

// Reading pauses while this much is buffered and an exchange holds it back.
size_t input_limit(const conn *c) { return size_t(limits_of(c).max_header_bytes) + 65536; }

void after_input(worker &w, conn *c) {
    if (c->buffered() == 0) {
        c->in_start = c->in_end = 0;
        if (c->in.capacity() > 65536) {
            c->in.clear();
            c->in.shrink_to_fit();
        }
    }
    // Paused, a client that resets is still noticed: its exchange ends (499) at once,
    // not when the upstream that holds its body back answers.
    w.pause_read(c, c->buffered() >= input_limit(c));
    if (c->eof_told && !c->cur && !c->closing && !c->need_process) {
        // The client sent all it will: answer what is complete, then close. (With
        // need_process set, complete pipelined requests still wait for output room.)
        c->close_after_flush = true;
        w.mark_dirty(c);
    }
}

}  // namespace

void on_data(worker &w, conn *c, const char *data, size_t len) {
    if (c->closing || c->lingering) return;  // lingering: discard
    if (c->close_after_flush) return;
    if (c->buffered() == 0) {
        size_t used = consume(w, c, std::string_view(data, len));
        if (!c->closing && !c->close_after_flush && used < len) append_input(c, data + used, len - used);
    } else {
        append_input(c, data, len);
        size_t used = consume(w, c, std::string_view(c->in.data() + c->in_start, c->buffered()));
        if (c->buffered()) c->in_start += used;
    }
    after_input(w, c);
}

void on_eof(worker &w, conn *c) {
    if (c->cur && !c->cur->body_done) {
        if (!c->cur->complete) {
            w.hard_close(c);  // the request body will never arrive
            return;
        }
        // Answered already: send what is queued, then close.
        c->cur->body_done = true;
        c->cur->keep_alive = false;
    }
    c->need_process = true;
    w.mark_dirty(c);
    after_input(w, c);
}

void process(worker &w, conn *c) {
    c->need_process = false;
    if (c->closing) return;
    if (exchange *ex = c->cur; ex && ex->resume_pending) {
        ex->resume_pending = false;
        if (ex->resume_status < 0) core_error(ex, 500);
        else if (ex->resume_status == ATLAS_DONE) {
            if (!ex->complete) core_error(ex, 500);
        } else {
            run_chain(w, ex);
        }
        if (c->closing) return;
    }
    if (c->lingering || c->tunnel) return;
    size_t used = consume(w, c, std::string_view(c->in.data() + c->in_start, c->buffered()));
    if (c->buffered()) c->in_start += used;
    after_input(w, c);
}

bool idle(const conn *c) {
    return !c->is_stream && !c->cur && c->buffered() == 0 && !c->output_pending() && c->retiring.empty();
}

void check_timeouts(worker &w, conn *c, uint64_t now) {
    if (c->closing) return;
    const config::http_limits &lim = limits_of(c);
    if (c->lingering) {
        if (now - c->linger_start > linger_ms) w.hard_close(c);
        return;
    }
    if (c->output_pending()) {
        if (now - c->last_send > uint64_t(lim.send_timeout.count())) w.hard_close(c);
        return;
    }
    if (c->is_stream || c->tunnel) return;  // idle timeouts of these belong to the stream handler / proxy
    if (exchange *ex = c->cur) {
        if (!ex->body_done && (ex->handler_called || ex->discard_first) && !ex->body_paused &&
            now - c->last_body > uint64_t(lim.body_timeout.count())) {
            if (!ex->head_sent) {
                core_error(ex, 408);
                c->close_after_flush = true;
                finish_exchange(w, c, ex);
                w.mark_dirty(c);
            } else {
                w.hard_close(c);
            }
        }
        return;
    }
    if (c->head_started) {
        if (now - c->head_start > uint64_t(lim.header_timeout.count())) {
            send_error(w, c, 408);
            w.mark_dirty(c);
        }
        return;
    }
    uint64_t limit = uint64_t(c->requests == 0 ? lim.header_timeout.count() : lim.idle_timeout.count());
    if (now - c->idle_since > limit) w.hard_close(c);
}

void segment_done(worker &w, out_segment &s, int32_t status) {
    if (s.done) s.done(s.user, status);
    if (exchange *ex = s.ex) {
        if (--ex->pending_segments == 0 && ex->finished) destroy_exchange(w, ex);
    }
}

void abort_all(worker &w, conn *c) {
    if (exchange *ex = c->cur) {
        access_log::record(w, ex, ex->head_sent ? ex->status : 499);  // 499: nginx's "client closed"
        count_exchange(w, ex, ex->head_sent ? ex->status : 499);
        c->cur = nullptr;
        const atlas_http_handler_t *h = ex->route ? ex->route->handler->handler : nullptr;
        if (ex->handler_called && h && h->on_abort && !ex->complete) h->on_abort(ex->handler_state, handle(ex));
        ex->pending_segments = 0;
        destroy_exchange(w, ex);
    }
    while (!c->retiring.empty()) {
        exchange *ex = c->retiring.back();
        ex->pending_segments = 0;
        destroy_exchange(w, ex);
    }
}

// ------------------------------------------------------------------ responses

namespace {

bool usable(exchange *ex) { return ex && ex->c && !ex->c->closing && !ex->finished; }

void complete_response(exchange *ex) {
    worker &w = *ex->c->w;
    if (ex->resp_chunked && ex->body_allowed) push_copy(w, ex->c, ex, "0\r\n\r\n");
    if (ex->resp_length >= 0 && ex->resp_written < uint64_t(ex->resp_length) && ex->body_allowed)
        ex->keep_alive = false;  // framing is broken: the client needs the close to notice
    ex->complete = true;
    ex->c->need_process = true;
    w.mark_dirty(ex->c);
}

}  // namespace

int32_t response_start(exchange *ex, uint32_t status, int64_t content_length) {
    if (!usable(ex)) return ATLAS_ECLOSED;
    // 101 only from the proxy, for an Upgrade it forwarded and accepted (proxy::start_tunnel).
    bool switching = status == 101 && ex->switching;
    if (ex->head_sent || (status < 200 && !switching) || status > 999) return ATLAS_EINVAL;
    worker &w = *ex->c->w;
    conn *c = ex->c;
    // Server is ours unless a module set one; a route with response filters gets it
    // among the headers first, so a filter can replace or remove it.
    bool server_set = response_headers::contains(ex->resp_headers, "Server");
    if (ex->route && ex->route->has_response_filters) {
        if (!server_set) ex->resp_headers.insert(0, "Server: atlas\r\n");
        server_set = true;
        // Response filters run in reverse order, only those whose request hook ran.
        for (size_t i = std::min(ex->filter_pos, ex->route->filters.size()); i-- > 0;) {
            module_instance *f = ex->route->filters[i];
            if (!f->filter->on_response_head) continue;
            uint32_t st = status;
            int32_t rc = f->filter->on_response_head(f->config, ex->filter_states[i], handle(ex), &st);
            if (rc < 0) log::warn("%s: response filter failed", f->key.c_str());
            else if (st >= 200 && st <= 999 && !switching) status = st;
            if (!usable(ex)) return ATLAS_ECLOSED;
        }
    }
    bool head = ex->head.is_head;
    bool no_body = status == 204 || status == 304;
    ex->body_allowed = !head && !no_body;
    ex->status = status;
    ex->resp_length = content_length;
    if (c->w->draining_) ex->keep_alive = false;

    char framing[64];
    size_t fl = 0;
    if (switching) {
        // No framing: after this head the connection carries the new protocol until closed.
        ex->body_allowed = true;
        ex->resp_length = -1;
        ex->keep_alive = false;
    } else if (status == 204) {
        fl = 0;
    } else if (content_length >= 0) {
        fl = http::format_content_length(framing, uint64_t(content_length));
    } else if (status == 304) {
        fl = 0;
    } else if (ex->head.version_minor >= 1) {
        fl = size_t(std::snprintf(framing, sizeof framing, "Transfer-Encoding: chunked\r\n"));
        ex->resp_chunked = ex->body_allowed;
    } else {
        ex->keep_alive = false;  // HTTP/1.0 with unknown length: the close ends the body
    }
    std::string_view conn_hdr;
    if (switching) conn_hdr = "Connection: upgrade\r\n";
    else if (!ex->keep_alive) conn_hdr = "Connection: close\r\n";
    else if (ex->head.version_minor == 0) conn_hdr = "Connection: keep-alive\r\n";

    char line[64];
    size_t ll = http::format_status_line(line, status);
    std::string_view server_hdr = server_set ? std::string_view() : std::string_view("Server: atlas\r\n");
    size_t total = ll + server_hdr.size() + 6 + 29 + 2 + ex->resp_headers.size() + fl + conn_hdr.size() + 2;
    char *buf = c->out.alloc(w.arena_pool_, total);
    char *p = put(buf, std::string_view(line, ll));
    p = put(p, server_hdr);
    p = put(p, "Date: ");
    p = put(p, std::string_view(w.dates_.text(), 29));
    p = put(p, "\r\n");
    p = put(p, ex->resp_headers);
    p = put(p, std::string_view(framing, fl));
    p = put(p, conn_hdr);
    p = put(p, "\r\n");
    out_segment s;
    s.data = buf;
    s.len = size_t(p - buf);
    s.ex = ex;
    push_segment(w, c, s);
    ex->head_sent = true;
    return ATLAS_OK;
}

int32_t response_write(exchange *ex, const atlas_iovec_t *iov, size_t iovcnt, uint32_t flags,
                       atlas_done_fn done, void *user) {
    if (!usable(ex)) return ATLAS_ECLOSED;
    if (!ex->head_sent || ex->complete || (iovcnt && !iov)) return ATLAS_EINVAL;
    worker &w = *ex->c->w;
    conn *c = ex->c;
    uint64_t total = 0;
    for (size_t i = 0; i < iovcnt; ++i) total += iov[i].len;
    if (ex->resp_length >= 0 && ex->resp_written + total > uint64_t(ex->resp_length)) return ATLAS_EINVAL;
    ex->resp_written += total;
    if (!ex->body_allowed || total == 0) {
        if (done) push_copy(w, c, ex, {}, done, user);
    } else {
        if (ex->resp_chunked) {
            char hdr[24];
            push_copy(w, c, ex, std::string_view(hdr, http::format_chunk_size(hdr, total)));
        }
        if (c->out.empty()) c->last_send = w.now_ms_;
        ex->pending_segments +=
            uint32_t(c->out.append_iov(w.arena_pool_, iov, iovcnt, flags & ATLAS_WRITE_REF, done, user, ex));
        w.mark_dirty(c);
        if (ex->resp_chunked) push_copy(w, c, ex, "\r\n");
    }
    if (flags & ATLAS_WRITE_END) complete_response(ex);
    return ATLAS_OK;
}

int32_t response_sendfile(exchange *ex, int fd, uint64_t offset, uint64_t length, uint32_t flags,
                          atlas_done_fn done, void *user) {
    if (!usable(ex)) return ATLAS_ECLOSED;
    if (!ex->head_sent || ex->complete || fd < 0) return ATLAS_EINVAL;
    if (ex->resp_length >= 0 && ex->resp_written + length > uint64_t(ex->resp_length)) return ATLAS_EINVAL;
    worker &w = *ex->c->w;
    conn *c = ex->c;
    ex->resp_written += length;
    if (!ex->body_allowed || length == 0) {
        if (done) push_copy(w, c, ex, {}, done, user);
    } else {
        if (ex->resp_chunked) {
            char hdr[24];
            push_copy(w, c, ex, std::string_view(hdr, http::format_chunk_size(hdr, length)));
        }
        out_segment s;
        s.fd = fd;
        s.file_off = offset;
        s.file_left = length;
        s.done = done;
        s.user = user;
        s.ex = ex;
        push_segment(w, c, s);
        if (ex->resp_chunked) push_copy(w, c, ex, "\r\n");
    }
    if (flags & ATLAS_WRITE_END) complete_response(ex);
    return ATLAS_OK;
}

int32_t respond(exchange *ex, uint32_t status, std::string_view content_type, std::string_view body) {
    if (!usable(ex)) return ATLAS_ECLOSED;
    if (ex->head_sent) return ATLAS_EINVAL;
    if (!content_type.empty()) {
        response_headers::remove(ex->resp_headers, "Content-Type");  // the one given here wins
        ex->resp_headers += "Content-Type: ";
        ex->resp_headers += content_type;
        ex->resp_headers += "\r\n";
    }
    int32_t rc = response_start(ex, status, int64_t(body.size()));
    if (rc != ATLAS_OK) return rc;
    atlas_iovec_t v{body.data(), body.size()};
    return response_write(ex, &v, 1, ATLAS_WRITE_END, nullptr, nullptr);
}

int32_t response_raw(exchange *ex, const void *bytes, size_t len, size_t head_only_len, atlas_done_fn done,
                     void *user) {
    if (!usable(ex)) return ATLAS_ECLOSED;
    if (ex->head_sent || (ex->route && ex->route->has_response_filters) || !bytes || head_only_len > len)
        return ATLAS_EINVAL;
    worker &w = *ex->c->w;
    push_ref(w, ex->c, ex, bytes, ex->head.is_head ? head_only_len : len, done, user);
    // The status and body size for the access log, from the bytes themselves.
    const char *b = static_cast<const char *>(bytes);
    if (head_only_len >= 12 && std::memcmp(b, "HTTP/1.", 7) == 0)
        ex->status = unsigned(b[9] - '0') * 100 + unsigned(b[10] - '0') * 10 + unsigned(b[11] - '0');
    ex->resp_written = len - head_only_len;
    ex->head_sent = true;
    ex->body_allowed = false;
    if (w.draining_) ex->keep_alive = false;
    complete_response(ex);
    return ATLAS_OK;
}

void resume(exchange *ex, int32_t status) {
    if (!usable(ex) || ex->handler_called || ex->in_filters) return;
    ex->resume_pending = true;
    ex->resume_status = status;
    ex->c->need_process = true;
    ex->c->w->mark_dirty(ex->c);
}

void response_cut(exchange *ex) {
    if (!usable(ex) || !ex->head_sent || ex->complete) return;
    core_error(ex, 502);  // with the head out: no more bytes, close once the queue is sent
    ex->c->need_process = true;
    ex->c->w->mark_dirty(ex->c);
}

void request_body_pause(exchange *ex, bool paused) {
    if (!usable(ex)) return;
    ex->body_paused = paused;
    if (!paused) {
        ex->c->need_process = true;
        ex->c->w->mark_dirty(ex->c);
    }
}

}  // namespace atlas::chain::session
