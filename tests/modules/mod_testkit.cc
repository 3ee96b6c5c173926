// mod_testkit: a test-only module that exercises the parts of the host API the
// shipped modules do not use yet, so the integration suite can drive them
// through a real atlasd:
//   http_filter  — adds "X-Filter: <name>" to responses (reverse order), pauses a
//                  request for `X-Test-Delay: <ms>` with a timer + exchange_resume,
//                  answers 403 itself for `X-Test-Deny`.
//   http_handler — echoes the request body: streams a chunked response in pieces
//                  from timers (response_start(-1), REF writes, done callbacks) and
//                  ends with the body length and a checksum. With the handler option
//                  `echo_headers = true` it instead answers 200 text/plain with the
//                  request headers it received, one "name: value\n" line each, in order.
//   stream_handler — an L4 echo: optional `banner` on open, every byte back, and a
//                  half-close answered with a half-close.
//   transport    — a toy cipher: XOR with `key` in both directions, so a test can
//                  see that bytes really pass through the transport.
#include <atlas/module.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace {

using atlas::module::slice;
using atlas::module::view;

atlas::module::context ctx;

struct filter_config {
    std::string name;
};

void *filter_config_create(atlas_slice_t json, atlas_slice_t, atlas_error_t *err) {
    return atlas::module::guard_config(err, [&]() -> void * {
        auto j = nlohmann::json::parse(view(json));
        auto c = new filter_config;
        c->name = j.value("name", "testkit");
        return c;
    });
}
void filter_config_destroy(void *c) { delete static_cast<filter_config *>(c); }

void resume_later(void *ex) { ctx.host->exchange_resume(static_cast<atlas_exchange_t *>(ex), ATLAS_CONTINUE); }

int32_t on_request_head(void *, void *, atlas_exchange_t *ex, void **) {
    atlas_slice_t v;
    if (ctx.host->header_get(ex, ATLAS_REQUEST, slice("X-Test-Deny"), &v)) {
        ctx.host->respond(ex, 403, slice("text/plain"), slice("denied by filter\n"));
        return ATLAS_DONE;
    }
    if (ctx.host->header_get(ex, ATLAS_REQUEST, slice("X-Test-Delay"), &v)) {
        uint64_t ms = std::strtoull(std::string(view(v)).c_str(), nullptr, 10);
        ctx.host->timer_start(ms, resume_later, ex);
        return ATLAS_STOP;
    }
    return ATLAS_CONTINUE;
}

int32_t on_response_head(void *cfg, void *, atlas_exchange_t *ex, uint32_t *) {
    auto *c = static_cast<filter_config *>(cfg);
    return ctx.host->header_add(ex, ATLAS_RESPONSE, slice("X-Filter"), slice(c->name));
}

const atlas_http_filter_t filter = {
    sizeof(atlas_http_filter_t), filter_config_create, filter_config_destroy, nullptr, nullptr,
    on_request_head, on_response_head, nullptr,
};

// ---- echo handler

struct echo {
    atlas_exchange_t *ex = nullptr;
    uint64_t bytes = 0;
    uint32_t sum = 0;
    bool body_done = false;
    bool aborted = false;
    int pieces_sent = 0;
    atlas_timer_t *timer = nullptr;
    std::string piece;  // REF memory: must live until its done callback
    bool piece_in_flight = false;
};

void send_next(void *p);

void piece_done(void *p, int32_t) {
    auto *e = static_cast<echo *>(p);
    e->piece_in_flight = false;
}

void send_next(void *p) {
    auto *e = static_cast<echo *>(p);
    e->timer = nullptr;
    if (e->aborted || e->piece_in_flight) {
        if (!e->aborted) e->timer = ctx.host->timer_start(1, send_next, e);
        return;
    }
    if (e->pieces_sent < 3) {
        e->piece = "piece " + std::to_string(e->pieces_sent) + "\n";
        atlas_iovec_t v{e->piece.data(), e->piece.size()};
        e->piece_in_flight = true;
        ctx.host->response_write(e->ex, &v, 1, ATLAS_WRITE_REF, piece_done, e);
        ++e->pieces_sent;
        e->timer = ctx.host->timer_start(5, send_next, e);
        return;
    }
    if (!e->body_done) {
        e->timer = ctx.host->timer_start(5, send_next, e);
        return;
    }
    char tail[96];
    int n = std::snprintf(tail, sizeof tail, "bytes=%llu sum=%u\n", (unsigned long long)e->bytes, e->sum);
    atlas_iovec_t v{tail, size_t(n)};
    ctx.host->response_write(e->ex, &v, 1, ATLAS_WRITE_END, nullptr, nullptr);  // copied
}

struct handler_config {
    bool echo_headers = false;
};

void *handler_config_create(atlas_slice_t json, atlas_slice_t, atlas_error_t *err) {
    return atlas::module::guard_config(err, [&]() -> void * {
        auto j = nlohmann::json::parse(view(json));
        auto c = std::make_unique<handler_config>();
        for (auto &[k, v] : j.items()) {
            if (k == "echo_headers" && v.is_boolean()) {
                c->echo_headers = v.get<bool>();
            } else {
                throw std::runtime_error(k + ": unknown key or wrong type (the testkit handler takes "
                                             "echo_headers = true|false)");
            }
        }
        return c.release();
    });
}
void handler_config_destroy(void *c) { delete static_cast<handler_config *>(c); }

// The request headers as the handler sees them (after the filters ran).
int32_t echo_headers(atlas_exchange_t *ex) {
    std::string body;
    size_t n = ctx.host->header_count(ex, ATLAS_REQUEST);
    for (size_t i = 0; i < n; ++i) {
        atlas_slice_t name, value;
        if (!ctx.host->header_at(ex, ATLAS_REQUEST, i, &name, &value)) break;
        body.append(view(name)).append(": ").append(view(value)).append("\n");
    }
    return ctx.host->respond(ex, 200, slice("text/plain"), slice(body));
}

int32_t on_request(void *cfg, void *, atlas_exchange_t *ex, void **state) {
    if (cfg && static_cast<handler_config *>(cfg)->echo_headers) return echo_headers(ex);  // no state
    auto *e = new echo();
    e->ex = ex;
    *state = e;
    atlas_request_info_t ri{};
    ri.struct_size = sizeof ri;
    ctx.host->exchange_request_info(ex, &ri);
    e->body_done = !ri.has_body;  // on_request_body is only called when a body follows
    ctx.host->header_set(ex, ATLAS_RESPONSE, slice("Content-Type"), slice("text/plain"));
    int32_t rc = ctx.host->response_start(ex, 200, -1);
    if (rc != ATLAS_OK) return rc;
    e->timer = ctx.host->timer_start(1, send_next, e);
    return ATLAS_OK;
}

void on_request_body(void *s, atlas_exchange_t *, atlas_slice_t data, bool last) {
    auto *e = static_cast<echo *>(s);
    if (!e) return;  // echo_headers: the body is not looked at
    e->bytes += data.len;
    for (size_t i = 0; i < data.len; ++i) e->sum = e->sum * 31 + uint8_t(data.ptr[i]);
    if (last) e->body_done = true;
}

void on_abort(void *s, atlas_exchange_t *) {
    if (s) static_cast<echo *>(s)->aborted = true;
}

void request_destroy(void *s) {
    auto *e = static_cast<echo *>(s);
    if (!e) return;
    if (e->timer) ctx.host->timer_cancel(e->timer);
    delete e;
}

const atlas_http_handler_t handler = {
    sizeof(atlas_http_handler_t), handler_config_create, handler_config_destroy, nullptr, nullptr,
    on_request, on_request_body, on_abort, request_destroy,
};

// ---- L4 echo

struct stream_config {
    std::string banner;
};

void *stream_config_create(atlas_slice_t json, atlas_slice_t, atlas_error_t *err) {
    return atlas::module::guard_config(err, [&]() -> void * {
        auto j = nlohmann::json::parse(view(json));
        auto c = new stream_config;
        c->banner = j.value("banner", "");
        return c;
    });
}
void stream_config_destroy(void *c) { delete static_cast<stream_config *>(c); }

struct stream_conn {
    atlas_conn_t *conn;
};

void *stream_open(void *cfg, void *, atlas_conn_t *conn) {
    auto *c = static_cast<stream_config *>(cfg);
    if (!c->banner.empty()) {
        atlas_iovec_t v{c->banner.data(), c->banner.size()};
        ctx.host->conn_send(conn, &v, 1, 0, nullptr, nullptr);
    }
    return new stream_conn{conn};
}

void stream_data(void *, atlas_conn_t *conn, atlas_slice_t data) {
    atlas_iovec_t v{data.ptr, data.len};
    ctx.host->conn_send(conn, &v, 1, 0, nullptr, nullptr);  // copied: data dies after the call
}

void stream_eof(void *, atlas_conn_t *conn) { ctx.host->conn_shutdown_write(conn); }

void stream_close(void *s) { delete static_cast<stream_conn *>(s); }

const atlas_stream_handler_t stream = {
    sizeof(atlas_stream_handler_t), stream_config_create, stream_config_destroy, nullptr, nullptr,
    stream_open, stream_data, stream_eof, stream_close,
};

// ---- XOR transport

struct xor_config {
    uint8_t key = 0x5a;
};

void *xor_config_create(atlas_slice_t json, atlas_slice_t, atlas_error_t *err) {
    return atlas::module::guard_config(err, [&]() -> void * {
        auto j = nlohmann::json::parse(view(json));
        auto c = new xor_config;
        int k = j.value("key", 0x5a);
        if (k < 1 || k > 255) throw std::runtime_error("key: must be 1..255");
        c->key = uint8_t(k);
        return c;
    });
}
void xor_config_destroy(void *c) { delete static_cast<xor_config *>(c); }

struct xor_conn {
    uint8_t key;
    std::string buf;
};

void *xor_open(void *cfg, void *, atlas_conn_t *) { return new xor_conn{static_cast<xor_config *>(cfg)->key, {}}; }

int32_t xor_wire(void *s, atlas_conn_t *conn, atlas_slice_t wire) {
    auto *x = static_cast<xor_conn *>(s);
    x->buf.assign(wire.ptr, wire.len);
    for (char &ch : x->buf) ch = char(uint8_t(ch) ^ x->key);
    return ctx.host->transport_deliver(conn, slice(x->buf));
}

int32_t xor_plain(void *s, atlas_conn_t *conn, const atlas_iovec_t *iov, size_t n) {
    auto *x = static_cast<xor_conn *>(s);
    std::string out;
    for (size_t i = 0; i < n; ++i) out.append(static_cast<const char *>(iov[i].base), iov[i].len);
    for (char &ch : out) ch = char(uint8_t(ch) ^ x->key);
    return ctx.host->transport_emit(conn, slice(out));
}

void xor_close(void *s) { delete static_cast<xor_conn *>(s); }

const atlas_transport_t transport = {
    sizeof(atlas_transport_t), xor_config_create, xor_config_destroy, nullptr, nullptr,
    xor_open, xor_wire, xor_plain, nullptr, xor_close, nullptr, nullptr,
};

const atlas_module_t descriptor = {
    ATLAS_MODULE_HEAD, "testkit", "0", "test-only filter, streaming handler, L4 echo and toy transport",
    &handler, &filter, &stream, &transport, nullptr,
};

}  // namespace

ATLAS_MODULE_ENTRY(ctx, descriptor)
