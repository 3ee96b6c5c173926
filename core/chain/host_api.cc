#include "chain/host_api.hh"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "chain/l4.hh"
#include "chain/log.hh"
#include "chain/proxy.hh"
#include "chain/response_headers.hh"
#include "chain/session.hh"
#include "chain/stream_proxy.hh"
#include "chain/worker.hh"

namespace atlas::chain {

namespace {

std::string g_config_dir;
const runtime *g_building = nullptr;  // the runtime whose module configs are being created

std::string_view view(atlas_slice_t s) { return {s.ptr ? s.ptr : "", s.len}; }
atlas_slice_t slice(std::string_view s) { return {s.data(), s.size()}; }

exchange *ex_of(atlas_exchange_t *e) { return reinterpret_cast<exchange *>(e); }

using response_headers::iequals_nocase;

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char ch : s) {
        if (std::isalnum(ch)) continue;
        if (!std::strchr("!#$%&'*+-.^_`|~", ch) || ch == 0) return false;
    }
    return true;
}

bool is_field_value(std::string_view s) {
    for (unsigned char ch : s)
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
    return true;
}

bool framing_header(std::string_view n) {
    return iequals_nocase(n, "content-length") || iequals_nocase(n, "transfer-encoding") || iequals_nocase(n, "connection");
}

// ---- logging and worker services

void h_log(const atlas_module_t *self, atlas_log_level_t level, atlas_slice_t message) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    const char *lv = unsigned(level) < 4 ? names[level] : "info";
    std::string line;
    if (self && self->name) line = std::string("mod_") + self->name + ": ";
    line.append(view(message));
    std::replace(line.begin(), line.end(), '\n', ' ');
    log::line(lv, line);
}

atlas_worker_t *h_current_worker() { return reinterpret_cast<atlas_worker_t *>(worker::current()); }
uint32_t h_worker_index(const atlas_worker_t *w) {
    return w ? reinterpret_cast<const worker *>(w)->index_ : 0;
}
uint32_t h_worker_count() {
    worker *w = worker::current();
    return w ? w->count_ : 0;
}
int32_t h_post(atlas_worker_t *w, atlas_task_fn fn, void *user) {
    if (!w || !fn) return ATLAS_EINVAL;
    return reinterpret_cast<worker *>(w)->post([fn, user] { fn(user); }) ? ATLAS_OK : ATLAS_ECLOSED;
}
atlas_timer_t *h_timer_start(uint64_t delay_ms, atlas_task_fn fn, void *user) {
    worker *w = worker::current();
    if (!w || !fn) return nullptr;
    return reinterpret_cast<atlas_timer_t *>(w->timers_.start(w->now_ms_ + delay_ms, fn, user));
}
void h_timer_cancel(atlas_timer_t *t) {
    worker *w = worker::current();
    if (w && t) w->timers_.cancel(reinterpret_cast<event::timer *>(t));
}
uint64_t h_now_ms() {
    worker *w = worker::current();
    return w ? w->now_ms_ : event::monotonic_ms();
}
atlas_slice_t h_http_date() {
    worker *w = worker::current();
    if (!w) return {"", 0};
    return {w->dates_.text(), 29};
}

// ---- request view

int32_t h_request_info(atlas_exchange_t *e, atlas_request_info_t *out) {
    exchange *ex = ex_of(e);
    if (!ex || !out || out->struct_size < offsetof(atlas_request_info_t, is_head) + sizeof(bool))
        return ATLAS_EINVAL;
    atlas_request_info_t r{};
    r.struct_size = sizeof r;
    r.version_minor = ex->head.version_minor;
    r.method = slice(ex->head.method);
    r.target = slice(ex->head.target);
    r.path = slice(ex->path);
    r.query = slice(ex->head.query);
    r.host = slice(ex->head.host);
    r.route_prefix = ex->route ? slice(ex->route->path_prefix) : atlas_slice_t{"", 0};
    r.peer = slice(ex->c->w->peer_address(ex->c));
    r.content_length = ex->head.chunked ? -1 : ex->head.content_length;
    r.chunked = ex->head.chunked;
    r.has_body = ex->head.chunked || ex->head.content_length > 0;
    r.keep_alive = ex->keep_alive;
    r.is_head = ex->head.is_head;
    uint32_t size = std::min<uint32_t>(out->struct_size, sizeof r);
    std::memcpy(out, &r, size);
    out->struct_size = size;
    return ATLAS_OK;
}

size_t h_header_count(atlas_exchange_t *e, atlas_header_side_t side) {
    exchange *ex = ex_of(e);
    if (!ex) return 0;
    if (side == ATLAS_REQUEST) return ex->req_headers.size();
    size_t n = 0;
    response_headers::for_each(ex->resp_headers, [&](size_t, auto, auto, size_t, size_t) { return ++n, true; });
    return n;
}

bool h_header_at(atlas_exchange_t *e, atlas_header_side_t side, size_t index, atlas_slice_t *name,
                 atlas_slice_t *value) {
    exchange *ex = ex_of(e);
    if (!ex) return false;
    if (side == ATLAS_REQUEST) {
        if (index >= ex->req_headers.size()) return false;
        if (name) *name = slice(ex->req_headers[index].name);
        if (value) *value = slice(ex->req_headers[index].value);
        return true;
    }
    bool found = false;
    response_headers::for_each(ex->resp_headers, [&](size_t i, std::string_view n, std::string_view v, size_t, size_t) {
        if (i != index) return true;
        if (name) *name = slice(n);
        if (value) *value = slice(v);
        found = true;
        return false;
    });
    return found;
}

bool h_header_get(atlas_exchange_t *e, atlas_header_side_t side, atlas_slice_t name, atlas_slice_t *value) {
    exchange *ex = ex_of(e);
    if (!ex) return false;
    std::string_view want = view(name);
    if (side == ATLAS_REQUEST) {
        for (const auto &h : ex->req_headers)
            if (iequals_nocase(h.name, want)) {
                if (value) *value = slice(h.value);
                return true;
            }
        return false;
    }
    bool found = false;
    response_headers::for_each(ex->resp_headers, [&](size_t, std::string_view n, std::string_view v, size_t, size_t) {
        if (!iequals_nocase(n, want)) return true;
        if (value) *value = slice(v);
        found = true;
        return false;
    });
    return found;
}

size_t h_header_remove(atlas_exchange_t *e, atlas_header_side_t side, atlas_slice_t name) {
    exchange *ex = ex_of(e);
    if (!ex) return 0;
    std::string_view want = view(name);
    size_t removed = 0;
    if (side == ATLAS_REQUEST) {
        auto &v = ex->req_headers;
        auto it = std::remove_if(v.begin(), v.end(), [&](const http::header_field &h) { return iequals_nocase(h.name, want); });
        removed = size_t(v.end() - it);
        v.erase(it, v.end());
        ex->head.headers = v.data();
        ex->head.header_count = uint32_t(v.size());
        return removed;
    }
    if (ex->head_sent) return 0;
    return response_headers::remove(ex->resp_headers, want);
}

int32_t h_header_add(atlas_exchange_t *e, atlas_header_side_t side, atlas_slice_t name, atlas_slice_t value) {
    exchange *ex = ex_of(e);
    if (!ex) return ATLAS_EINVAL;
    std::string_view n = view(name), v = view(value);
    if (!is_token(n) || !is_field_value(v)) return ATLAS_EINVAL;
    if (side == ATLAS_REQUEST) {
        ex->req_strings.emplace_front(n);
        std::string_view ns = ex->req_strings.front();
        ex->req_strings.emplace_front(v);
        std::string_view vs = ex->req_strings.front();
        ex->req_headers.push_back({ns, vs});
        ex->head.headers = ex->req_headers.data();
        ex->head.header_count = uint32_t(ex->req_headers.size());
        return ATLAS_OK;
    }
    if (ex->head_sent || framing_header(n)) return ATLAS_EINVAL;
    ex->resp_headers.append(n);
    ex->resp_headers.append(": ");
    ex->resp_headers.append(v);
    ex->resp_headers.append("\r\n");
    return ATLAS_OK;
}

int32_t h_header_set(atlas_exchange_t *e, atlas_header_side_t side, atlas_slice_t name, atlas_slice_t value) {
    exchange *ex = ex_of(e);
    if (!ex) return ATLAS_EINVAL;
    if (!is_token(view(name)) || !is_field_value(view(value))) return ATLAS_EINVAL;
    if (side == ATLAS_RESPONSE && (ex->head_sent || framing_header(view(name)))) return ATLAS_EINVAL;
    h_header_remove(e, side, name);
    return h_header_add(e, side, name, value);
}

void h_body_pause(atlas_exchange_t *e, bool paused) { session::request_body_pause(ex_of(e), paused); }

int32_t h_respond(atlas_exchange_t *e, uint32_t status, atlas_slice_t ctype, atlas_slice_t body) {
    if (ctype.len && !is_field_value(view(ctype))) return ATLAS_EINVAL;
    return session::respond(ex_of(e), status, view(ctype), view(body));
}
int32_t h_response_start(atlas_exchange_t *e, uint32_t status, int64_t length) {
    return session::response_start(ex_of(e), status, length);
}
int32_t h_response_write(atlas_exchange_t *e, const atlas_iovec_t *iov, size_t n, uint32_t flags,
                         atlas_done_fn done, void *user) {
    return session::response_write(ex_of(e), iov, n, flags, done, user);
}
int32_t h_response_sendfile(atlas_exchange_t *e, int fd, uint64_t off, uint64_t len, uint32_t flags,
                            atlas_done_fn done, void *user) {
    return session::response_sendfile(ex_of(e), fd, off, len, flags, done, user);
}
int32_t h_response_raw(atlas_exchange_t *e, const void *bytes, size_t len, size_t head_len, atlas_done_fn done,
                       void *user) {
    return session::response_raw(ex_of(e), bytes, len, head_len, done, user);
}
void h_resume(atlas_exchange_t *e, int32_t status) { session::resume(ex_of(e), status); }

void h_error_set(atlas_error_t *err, atlas_slice_t message) {
    if (!err) return;
    size_t n = std::min(message.len, sizeof err->message - 1);
    if (n) std::memcpy(err->message, message.ptr, n);
    err->message[n] = 0;
    for (size_t i = 0; i < n; ++i)
        if (err->message[i] == '\n' || err->message[i] == '\r') err->message[i] = ' ';
    err->code = ATLAS_ERROR;
}

// ---- connections: stream handlers and transports

conn *conn_of(atlas_conn_t *c) { return reinterpret_cast<conn *>(c); }

int32_t h_conn_send(atlas_conn_t *c, const atlas_iovec_t *iov, size_t n, uint32_t flags, atlas_done_fn done,
                    void *user) {
    return l4::send(conn_of(c), iov, n, flags, done, user);
}
// A connection handed to the L4 proxy (stream_forward) is the proxy's to pause and shut.
void h_conn_shutdown_write(atlas_conn_t *c) {
    if (c && !conn_of(c)->relay) l4::shutdown_write(conn_of(c));
}
void h_conn_close(atlas_conn_t *c) { l4::close(conn_of(c)); }
void h_conn_pause_read(atlas_conn_t *c, bool paused) {
    if (c && !conn_of(c)->relay) l4::pause_read(conn_of(c), paused);
}
atlas_slice_t h_conn_peer(atlas_conn_t *c) { return l4::peer(conn_of(c)); }
int32_t h_transport_deliver(atlas_conn_t *c, atlas_slice_t plain) { return l4::transport_deliver(conn_of(c), plain); }
int32_t h_transport_emit(atlas_conn_t *c, atlas_slice_t wire) { return l4::transport_emit(conn_of(c), wire); }
void h_transport_eof(atlas_conn_t *c) { l4::transport_eof(conn_of(c)); }
void h_transport_set_info(atlas_conn_t *c, const atlas_transport_info_t *info) { l4::transport_set_info(conn_of(c), info); }

atlas_slice_t h_config_dir() { return slice(g_config_dir); }

atlas_upstream_t *h_upstream_find(atlas_slice_t name) {
    if (!g_building) return nullptr;
    const upstream_rt *u = find_upstream(*g_building, view(name));
    return reinterpret_cast<atlas_upstream_t *>(const_cast<upstream_rt *>(u));
}

int32_t h_proxy_forward(atlas_exchange_t *e, const atlas_proxy_options_t *opt) {
    return proxy::forward(ex_of(e), opt);
}

int32_t h_stream_forward(atlas_conn_t *c, const atlas_stream_options_t *opt) {
    return stream_proxy::forward(conn_of(c), opt);
}

const atlas_host_api_t g_host = {
    sizeof(atlas_host_api_t),
    ATLAS_ABI_MAJOR,
    ATLAS_ABI_MINOR,
    {ATLAS_VERSION, sizeof(ATLAS_VERSION) - 1},
    h_log,
    h_current_worker,
    h_worker_index,
    h_worker_count,
    h_post,
    h_timer_start,
    h_timer_cancel,
    h_now_ms,
    h_http_date,
    h_request_info,
    h_header_count,
    h_header_at,
    h_header_get,
    h_header_add,
    h_header_set,
    h_header_remove,
    h_body_pause,
    h_respond,
    h_response_start,
    h_response_write,
    h_response_sendfile,
    h_response_raw,
    h_resume,
    h_error_set,
    h_conn_send,
    h_conn_shutdown_write,
    h_conn_close,
    h_conn_pause_read,
    h_conn_peer,
    h_transport_deliver,
    h_transport_emit,
    h_config_dir,
    h_upstream_find,
    h_proxy_forward,
    h_transport_eof,
    h_transport_set_info,
    h_stream_forward,
};

}  // namespace

const atlas_host_api_t *host_api() { return &g_host; }

void set_config_dir(std::string dir) { g_config_dir = std::move(dir); }

void set_building_runtime(const runtime *rt) { g_building = rt; }

}  // namespace atlas::chain
