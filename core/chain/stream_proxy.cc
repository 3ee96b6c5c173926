#include "chain/stream_proxy.hh"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "chain/l4.hh"
#include "chain/log.hh"
#include "chain/upstream_attempt.hh"
#include "chain/worker.hh"
#include "net/proxy_protocol.hh"

namespace atlas::chain::stream_proxy {

namespace {

// Bounded buffering: past this much queued for one side, the other side's reads pause
// until it drains (as do the client's, before the server connection is through).
constexpr uint64_t max_backlog = 256 * 1024;
constexpr uint64_t default_idle_ms = 10 * 60 * 1000;
// Receive buffers relays may hold at once, of those the worker's group has: past this
// the bytes are copied, so that receives (every connection's, for the 4 KiB group) do not
// run out of buffers.
constexpr unsigned max_held_share_num = 1, max_held_share_den = 2;

}  // namespace

struct relay {
    conn *client = nullptr;
    conn *server = nullptr;   // the current attempt's connection
    upstream_attempt at;
    uint32_t flags = 0;       // ATLAS_STREAM_*
    uint64_t idle_ms = default_idle_ms;
    uint64_t connect_started = 0;
    uint64_t active = 0;      // last byte either way (ms)
    std::string early;        // client bytes that came before the server connection was through
    bool connected = false;   // a server took the connection (the access log's 200)
    bool client_done = false; // the client ended its stream
    bool server_done = false; // the server ended its stream
    bool client_waits = false;      // client reads paused: the early buffer is full
    bool client_backpressure = false;  // client reads paused: the server's queue is full
    bool server_backpressure = false;  // server reads paused: the client's queue is full
    unsigned status = 0;      // 502 / 503 when the connection could not be forwarded
};

namespace {

const config::upstream &cfg_of(const relay *r) { return *r->at.up->cfg; }

void update_client_pause(relay *r) {
    if (conn *c = r->client; c && !c->closing) l4::pause_read(c, r->client_waits || r->client_backpressure);
}

// `done` of a segment queued under backpressure: the reading side may go on. Keyed by the
// relay, which outlives both connections' queues (they are failed before it goes).
void resume_client(void *user, int32_t status) {
    auto *r = static_cast<relay *>(user);
    if (status < 0 || !r->client_backpressure) return;
    r->client_backpressure = false;
    update_client_pause(r);
}

void resume_server(void *user, int32_t status) {
    auto *r = static_cast<relay *>(user);
    if (status < 0 || !r->server_backpressure) return;
    r->server_backpressure = false;
    if (conn *sc = r->server; sc && !sc->closing) l4::pause_read(sc, false);
}

// A held receive buffer was sent (or its connection went): back to the ring. `user`
// is 1 + (group << 16 | buffer id).
void release_buffer(void *user, int32_t) {
    worker *w = worker::current();
    auto held = uint32_t(reinterpret_cast<uintptr_t>(user) - 1);
    uint16_t group = uint16_t(held >> 16);
    w->ring_.recycle(uint16_t(held & 0xffff), group);
    --w->held_[group];
}

// Queues bytes for `to`: copied, or (bid >= 0) the receive buffer of `group` they are
// in, referenced until sent. Past the backlog limit the side they came from pauses until
// they are sent.
void write(worker &w, relay *r, conn *to, std::string_view bytes, int bid = -1, uint16_t group = 0) {
    if (!to || to->closing || bytes.empty()) return;
    bool to_client = to == r->client;
    bool pause = to->output_bytes() + bytes.size() > max_backlog;
    atlas_done_fn resume = pause ? (to_client ? resume_server : resume_client) : nullptr;
    if (to->out.empty()) to->last_send = w.now_ms_;
    if (bid >= 0) {
        ++w.held_[group];
        out_segment s;
        s.data = bytes.data();
        s.len = bytes.size();
        s.done = release_buffer;
        s.user = reinterpret_cast<void *>((uintptr_t(group) << 16 | uintptr_t(bid)) + 1);
        to->out.push(s);
        if (resume) to->out.append_iov(w.arena_pool_, nullptr, 0, false, resume, r, nullptr);
    } else {
        atlas_iovec_t v{bytes.data(), bytes.size()};
        to->out.append_iov(w.arena_pool_, &v, 1, false, resume, pause ? r : nullptr, nullptr);
    }
    w.mark_dirty(to);
    if (!pause) return;
    if (to_client && !r->server_backpressure) {
        r->server_backpressure = true;
        if (r->server) l4::pause_read(r->server, true);
    } else if (!to_client && !r->client_backpressure) {
        r->client_backpressure = true;
        update_client_pause(r);
    }
}

// The addresses a PROXY header names: what the client's own header said, else its socket's.
bool client_addresses(const conn *c, net::address &src, net::address &dst) {
    if (c->proxy_header && !c->proxy_header->said.local) {
        src = c->proxy_header->said.source;
        dst = c->proxy_header->said.destination;
        return true;
    }
    src.length = dst.length = sizeof(sockaddr_storage);
    return getpeername(c->fd, reinterpret_cast<sockaddr *>(&src.storage), &src.length) == 0 &&
           getsockname(c->fd, reinterpret_cast<sockaddr *>(&dst.storage), &dst.length) == 0;
}

// The PROXY header goes first on the wire: in the clear, before a TLS handshake.
void queue_proxy_header(worker &w, relay *r, conn *sc) {
    if (!(r->flags & (ATLAS_STREAM_PROXY_V1 | ATLAS_STREAM_PROXY_V2)) || !r->client) return;
    net::address src, dst;
    if (!client_addresses(r->client, src, dst)) src = dst = net::address{};  // unknown: UNKNOWN / LOCAL
    std::string h = r->flags & ATLAS_STREAM_PROXY_V1 ? net::proxy_protocol::build_v1(src, dst)
                                                      : net::proxy_protocol::build_v2(src, dst);
    // With TLS to the server it goes into the wire queue the transport's first flight
    // will follow (the transport is not open yet).
    if (r->at.up->tls && !sc->wire_) sc->wire_ = std::make_unique<out_queue>();
    out_queue &q = r->at.up->tls ? sc->wire() : sc->out;
    atlas_iovec_t v{h.data(), h.size()};
    if (q.empty()) sc->last_send = w.now_ms_;
    q.append_iov(w.arena_pool_, &v, 1, false, nullptr, nullptr, nullptr);
}

// Lets go of the current attempt's connection (not of its server).
void drop_server_conn(worker &w, relay *r) {
    conn *sc = r->server;
    if (!sc) return;
    r->server = nullptr;
    sc->relay = nullptr;
    w.hard_close(sc);
}

// The connection cannot be forwarded: the client is closed (nothing was sent to it).
void fail(worker &w, relay *r, unsigned status, const char *why) {
    const char *name = cfg_of(r).name.c_str();
    if (r->at.srv) log::rate_limited_warn("upstream %s, server %s: %s", name, r->at.srv->address.c_str(), why);
    else log::rate_limited_warn("upstream %s: %s", name, why);
    r->status = status;
    drop_server_conn(w, r);
    if (conn *c = r->client) w.hard_close(c);
}

void connect_next(worker &w, relay *r);

// The attempt on r->at.srv failed before the server took the connection: the next server
// when the upstream's retries and budget allow it, else the client is closed.
void retry_or_fail(worker &w, relay *r, const char *why) {
    if (r->client && !r->client->closing && r->at.attempts <= cfg_of(r).retry.retries &&
        attempt::another_server(w, r->at) && attempt::budget_allows(w, r->at)) {
        log::rate_limited_warn("upstream %s, server %s: %s; trying another server", cfg_of(r).name.c_str(),
                               r->at.srv ? r->at.srv->address.c_str() : "?", why);
        drop_server_conn(w, r);
        attempt::give_up_server(w, r->at);
        connect_next(w, r);
        return;
    }
    fail(w, r, 502, why);
}

void connect_next(worker &w, relay *r) {
    const char *no_server = "no usable server";
    switch (attempt::pick(w, r->at, w.peer_address(r->client), nullptr)) {
        case attempt::pick_result::no_other:
            fail(w, r, 502, "no other server to try");
            return;
        case attempt::pick_result::no_usable:
            fail(w, r, 503, no_server);
            return;
        case attempt::pick_result::picked:
            break;
    }
    conn *sc = attempt::connect(w, r->at.srv, r->client->rt);
    if (!sc) {
        fail(w, r, 502, "cannot create a socket");
        return;
    }
    sc->relay = r;
    r->server = sc;
    r->connect_started = w.now_ms_;
}

// The server connection is usable: what the client sent so far, and its half-close,
// follow the PROXY header.
void start_relaying(worker &w, relay *r, conn *sc) {
    r->connected = true;
    if (!r->early.empty()) {
        write(w, r, sc, r->early);
        std::string().swap(r->early);
    }
    r->client_waits = false;
    update_client_pause(r);
    if (r->client_done) sc->shut_wr_after_flush = true;
    w.mark_dirty(sc);
}

void destroy_if_done(worker &w, relay *r) {
    if (r->client || r->server) return;
    attempt::release(w, r->at);
    delete r;
}

}  // namespace

int32_t forward(conn *c, const atlas_stream_options_t *opt) {
    if (!c || c->fd < 0 || c->closing) return ATLAS_ECLOSED;
    if (!c->is_stream || c->relay || c->upstream || !opt || !ATLAS_HAS_FIELD(atlas_stream_options_t, opt, idle_timeout_ms) ||
        !opt->upstream)
        return ATLAS_EINVAL;
    const uint32_t known = ATLAS_STREAM_PROXY_V1 | ATLAS_STREAM_PROXY_V2;
    if ((opt->flags & ~known) || (opt->flags & known) == known) return ATLAS_EINVAL;
    if (c->bytes_out || !c->out.empty() || c->shut_wr_after_flush || c->close_after_flush) return ATLAS_EINVAL;
    worker &w = *c->w;
    auto *r = new relay;
    r->client = c;
    r->at.rt = c->rt.get();
    r->at.up = reinterpret_cast<const upstream_rt *>(opt->upstream);
    r->flags = opt->flags;
    if (opt->idle_timeout_ms) r->idle_ms = opt->idle_timeout_ms;
    r->active = w.now_ms_;
    c->relay = r;
    if (c->peer_eof) r->client_done = true;
    // Behind a transport (TLS), the server connection waits for the client's handshake:
    // a client that never completes one costs no upstream connection.
    if (!c->has_transport || c->info_set) connect_next(w, r);
    return ATLAS_OK;
}

void on_client_handshake(worker &w, conn *c) {
    relay *r = c->relay;
    if (r && c == r->client && !r->server && !r->at.srv && !c->closing) connect_next(w, r);
}

bool is_server(const conn *c) { return c->relay && c->relay->server == c; }

void on_data(worker &w, conn *c, const char *data, size_t len) {
    relay *r = c->relay;
    r->active = w.now_ms_;
    if (c == r->client) {
        if (!r->connected) {
            r->early.append(data, len);
            if (r->early.size() > max_backlog && !r->client_waits) {
                r->client_waits = true;
                update_client_pause(r);
            }
            return;
        }
        write(w, r, r->server, {data, len});
    } else {
        write(w, r, r->client, {data, len});
    }
}

bool on_buffer(worker &w, conn *c, const char *data, size_t len, uint16_t bid, uint16_t group) {
    relay *r = c->relay;
    conn *to = c == r->client ? r->server : r->client;
    bool hold = r->connected && to && !to->closing &&
                w.held_[group] < w.ring_.buffer_count(group) * max_held_share_num / max_held_share_den;
    if (!hold) {
        on_data(w, c, data, len);
        return false;
    }
    r->active = w.now_ms_;
    write(w, r, to, {data, len}, bid, group);
    return true;
}

void on_eof(worker &w, conn *c) {
    relay *r = c->relay;
    if (c == r->server && !r->connected) {
        // Closed before its TLS handshake was through: a failed attempt (on_closed).
        w.hard_close(c);
        return;
    }
    if (c == r->client) {
        r->client_done = true;
        if (r->server && r->connected) {
            r->server->shut_wr_after_flush = true;
            w.mark_dirty(r->server);
        }
    } else if (c == r->server) {
        r->server_done = true;
        if (conn *cl = r->client) {
            cl->shut_wr_after_flush = true;
            w.mark_dirty(cl);
        }
    }
    w.mark_dirty(c);  // a side whose output is already shut is finished now (l4::on_drained)
}

void on_connected(worker &w, conn *sc, int32_t res) {
    sc->connecting = false;
    relay *r = sc->relay;
    if (sc->closing) return;
    if (!r || !r->client) {
        w.hard_close(sc);
        return;
    }
    if (res < 0) {
        std::string why = std::string("connect failed: ") + std::strerror(-res);
        attempt::failed(w, r->at, why, true);
        retry_or_fail(w, r, why.c_str());
        return;
    }
    queue_proxy_header(w, r, sc);
    // TLS to the server: the handshake starts now, and the client's bytes wait in `early`
    // until it is through (on_handshake); a connection that closes before that failed
    // like a connect, so the next server can still have them all.
    if (const module_instance *tls = r->at.up->tls) {
        if (!l4::open_client(w, sc, tls)) {
            attempt::failed(w, r->at, "TLS setup failed", true);
            retry_or_fail(w, r, "TLS setup failed");
            return;
        }
        w.mark_dirty(sc);  // sends the PROXY header and the first flight, arms the receive
        return;
    }
    attempt::reachable(r->at);
    attempt::succeeded(r->at, "connected");
    start_relaying(w, r, sc);
}

void on_handshake(worker &w, conn *sc) {
    relay *r = sc->relay;
    if (!r || r->connected || sc != r->server || !r->client) return;
    attempt::reachable(r->at);
    attempt::succeeded(r->at, "TLS handshake done");
    start_relaying(w, r, sc);
}

void on_closed(worker &w, conn *c) {
    relay *r = c->relay;
    if (!r) return;
    c->relay = nullptr;
    if (c == r->client) {
        r->client = nullptr;
        // Both streams ended: the server side only has to finish sending what the client
        // sent (it closes itself then). Anything else ends it now.
        if (conn *sc = r->server; sc && !(r->client_done && r->server_done && r->connected)) {
            r->server = nullptr;
            sc->relay = nullptr;
            w.hard_close(sc);
        }
    } else if (c == r->server) {
        r->server = nullptr;
        conn *cl = r->client;
        if (cl && !cl->closing && !r->connected) {
            // Closed before the TLS handshake was through (mod_tls logged why): the
            // client's bytes are all still in `early`, another server may have them.
            attempt::failed(w, r->at, "TLS handshake failed", true);
            retry_or_fail(w, r, "TLS handshake failed");
        } else if (cl && !r->server_done && !cl->closing) {
            // The server went away without ending its stream (reset): the client gets
            // what is queued, then a close.
            cl->close_after_flush = true;
            w.mark_dirty(cl);
        }
    }
    destroy_if_done(w, r);
}

void check_timeouts(worker &w, conn *c, uint64_t now) {
    relay *r = c->relay;
    if (!r || c->closing) return;
    if (c == r->server && !r->connected) {  // the connect, and a TLS handshake after it
        if (now - r->connect_started > uint64_t(cfg_of(r).connect_timeout.count())) {
            const char *why = c->connecting ? "connect timed out" : "TLS handshake timed out";
            attempt::failed(w, r->at, why, true);
            retry_or_fail(w, r, why);
        }
        return;
    }
    // The client side times the pair; a server side left to finish on its own times itself.
    if (c == r->server && r->client) return;
    if (c == r->client && c->has_transport && !c->info_set) {  // its handshake, as the HTTP head, within header_timeout
        if (now - c->opened_ms > uint64_t(c->listener->cfg->limits.header_timeout.count())) w.hard_close(c);
        return;
    }
    if (now - r->active > r->idle_ms) w.hard_close(c);
}

unsigned status_of(const conn *client) {
    if (client->has_transport && !client->info_set) return 400;  // no transport handshake
    const relay *r = client->relay;
    if (!r) return 200;
    if (r->status) return r->status;
    return r->connected ? 200 : 499;  // the client left before a server took it
}

std::string_view server_of(const conn *client) {
    const relay *r = client->relay;
    if (!r || !r->at.srv) return {};
    return r->at.srv->address;
}

}  // namespace atlas::chain::stream_proxy
