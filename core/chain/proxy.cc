#include "chain/proxy.hh"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <string>

#include "chain/l4.hh"
#include "chain/log.hh"
#include "chain/response_headers.hh"
#include "chain/session.hh"
#include "chain/upstream_attempt.hh"
#include "chain/worker.hh"
#include "http/response_head.hh"
#include "http/response_parser.hh"
#include "upstream/client_identity.hh"
#include "upstream/request_writer.hh"

namespace atlas::chain::proxy {

namespace {

// Bounded buffering: past these, the side that produces is paused until the other drains.
constexpr uint64_t max_upstream_backlog = 256 * 1024;   // request body queued for the upstream
constexpr uint64_t max_client_backlog = 1024 * 1024;     // response body queued for the client
constexpr uint32_t max_response_headers = 100;
// A pooled connection is retired this long before the upstream's own Keep-Alive timeout,
// so we never send on a connection the upstream is closing (the keep-alive race).
constexpr uint64_t keepalive_margin_ms = 1000;

// What a connection to an upstream server carries besides the worker's conn.
struct upconn {
    const upstream_rt *up = nullptr;
    upstream::server *server = nullptr;
    call *owner = nullptr;         // busy with this call; nullptr while pooled
    uint64_t started = 0;          // connect began / last request was sent (ms)
    uint64_t last_recv = 0;
    uint64_t idle_since = 0;
    uint64_t retire_at = UINT64_MAX;
    bool reused = false;           // served a request before this one
    bool got_bytes = false;        // any response byte for the current call
};

upconn *up_of(conn *uc) { return static_cast<upconn *>(uc->upstream); }

}  // namespace

// The buffers of a call, kept (emptied) when a finished call is reused.
struct call_buffers {
    std::string head;                      // the serialised upstream request head
    std::string replay;                    // request body bytes as sent, kept for a replay
    std::vector<char> in;                  // a response head that came in pieces, until complete
};

struct call {
    // Back to a fresh state, keeping buffer capacity for the next request.
    void reset() {
        call_buffers b = std::move(buf);
        upstream_attempt a = std::move(at);
        *this = call{};
        buf = std::move(b);
        at = std::move(a);
        at.reset();
        buf.head.clear();
        buf.replay.clear();
        buf.in.clear();
    }

    call_buffers buf;
    exchange *ex = nullptr;
    upstream_attempt at;                   // the upstream, the server of this attempt, those tried
    conn *uc = nullptr;
    upstream::body_framing req_body;
    upstream::forward_options fo;          // what the request went out with (upgrade checks)
    // May be sent again after it reached a server: an idempotent method, or an
    // Idempotency-Key (the body must then also be whole in buf.replay).
    bool may_replay = false;
    bool replayable = true;                // every body byte sent so far is in buf.replay
    bool retried = false;                  // the keep-alive race was retried on a fresh connection
    bool awaiting_connect = false;         // the client body waits for the new connection
    bool upgrading = false;                // the request's Upgrade went upstream
    uint64_t tunnel_active = 0;            // last tunnel byte either way (ms)
    bool req_done = false;                 // the whole request is queued for the upstream
    bool client_paused = false;            // client body paused for upstream backpressure
    bool upstream_paused = false;          // upstream reads paused for client backpressure
    uint64_t attempt_us = 0;               // when the current attempt's request was queued
    upstream::client_identity id;          // who the client is (hash key, forwarding headers)
    // Response side.
    uint32_t scan_from = 0;
    bool head_done = false;
    bool resp_done = false;
    bool is_head = false;
    http::response_body_kind kind = http::response_body_kind::none;
    uint64_t left = 0;                     // length framing: bytes still expected
    uint64_t relayed = 0;                  // chunked / until-close: body bytes passed on so far
    http::chunked_decoder chunked;
    bool reusable = false;

    // The upstream answered 101: bytes flow both ways until a side closes.
    bool tunnel() const { return kind == http::response_body_kind::tunnel; }
};

namespace {

atlas_exchange_t *handle(exchange *ex) { return reinterpret_cast<atlas_exchange_t *>(ex); }

bool client_usable(exchange *ex) { return ex && ex->c && !ex->c->closing && !ex->finished; }

bool idempotent_method(std::string_view m) {
    return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
}

void detach(worker &w, call *k, bool keep);

// The exchange cannot be served: answer `status` when nothing was sent yet, else cut
// the client connection (the only way to tell it the body is incomplete).
// `retry_after`: for 503, the Retry-After seconds.
void fail(worker &w, call *k, unsigned status, const char *why, unsigned retry_after = 0) {
    exchange *ex = k->ex;
    const char *upstream_name = k->at.up->cfg->name.c_str();
    if (k->at.srv) log::rate_limited_warn("upstream %s, server %s: %s", upstream_name, k->at.srv->address.c_str(), why);
    else log::rate_limited_warn("upstream %s: %s", upstream_name, why);
    detach(w, k, false);
    k->resp_done = true;
    if (!client_usable(ex)) return;
    if (!ex->head_sent) {
        ex->resp_headers.clear();
        if (retry_after) ex->resp_headers.append("Retry-After: ").append(std::to_string(retry_after)).append("\r\n");
        std::string body = std::to_string(status) + " " + std::string(http::reason_phrase(status)) + "\n";
        session::respond(ex, status, "text/plain", body);
    } else {
        w.hard_close(ex->c);
    }
}

// Ends the call's use of its upstream connection: back to the pool when `keep` and the
// connection is in a reusable state, else closed.
void detach(worker &w, call *k, bool keep) {
    conn *uc = k->uc;
    if (!uc) return;
    k->uc = nullptr;
    upconn *u = up_of(uc);
    u->owner = nullptr;
    w.pause_read(uc, false);
    bool ok = keep && !uc->closing && !uc->peer_eof && !uc->output_pending() && !uc->connecting && !w.draining_ &&
              !u->server->retired.load(std::memory_order_relaxed);
    if (ok) {
        auto &idle = w.pools_.idle[u->server];
        if (idle.size() < u->up->cfg->keepalive_idle_per_worker) {
            u->idle_since = w.now_ms_;
            u->reused = true;
            idle.push_back(uc);
            return;
        }
    }
    w.hard_close(uc);
}

// The server answered with a response head: counted, and a 5xx feeds the breaker.
void server_answered(worker &w, call *k, unsigned status) {
    upstream::server *s = k->at.srv;
    if (!s) return;
    upstream::server_shard &sh = attempt::shard_of(w, s);
    sh.responses[upstream::status_class(status)].add();
    sh.latency.observe(w.now_us_ > k->attempt_us ? w.now_us_ - k->attempt_us : 0);
    attempt::reachable(k->at);
    char why[32] = "";
    if (status >= 500 || k->at.probe) std::snprintf(why, sizeof why, "status %u", status);  // for a report only
    if (status >= 500) attempt::count_error(k->at, why);
    else attempt::succeeded(k->at, why);
}

void maybe_finish(worker &w, call *k) {
    if (k->resp_done && k->req_done) detach(w, k, k->reusable);
}

void unpause_upstream(void *user, int32_t) {
    auto *k = static_cast<call *>(user);
    if (!k->upstream_paused) return;
    k->upstream_paused = false;
    if (conn *uc = k->uc) uc->w->pause_read(uc, false);
}

// Forwards response body bytes to the client, pausing the upstream when the client
// falls behind.
void write_client(worker &w, call *k, std::string_view data, bool end) {
    exchange *ex = k->ex;
    if (!client_usable(ex)) return;
    atlas_iovec_t v{data.data(), data.size()};
    bool pause = !end && ex->c->output_bytes() + data.size() > max_client_backlog && k->uc;
    session::response_write(ex, &v, data.empty() ? 0 : 1, end ? ATLAS_WRITE_END : 0,
                            pause ? unpause_upstream : nullptr, pause ? k : nullptr);
    if (pause && !k->upstream_paused) {
        k->upstream_paused = true;
        w.pause_read(k->uc, true);  // an upstream that resets meanwhile is still noticed
    }
}

// What must not travel from the upstream's response head to the client's: the
// hop-by-hop fields (RFC 9110 7.6.1, those named in Connection included), and the
// framing and Date the core states itself.
bool response_hop_by_hop(std::string_view name, std::span<const std::string_view> connection) {
    using response_headers::iequals_nocase;
    return iequals_nocase(name, "Content-Length") || iequals_nocase(name, "Date") || upstream::is_hop_by_hop(name, connection);
}

void body_bytes(worker &w, call *k, std::string_view data);

// false: the call failed (a body over the limit) and the response goes no further.
bool start_response(worker &w, call *k, const http::response_head &h) {
    exchange *ex = k->ex;
    k->head_done = true;
    server_answered(w, k, h.status);
    k->kind = http::framing(h, k->is_head, false);
    k->reusable = http::connection_reusable(h, k->kind);
    upconn *u = up_of(k->uc);
    // An announced body over the limit is refused before the client sees a byte of it. The
    // server answered as asked, so its health is not blamed: the limit is ours.
    const uint64_t max_body = k->at.up->cfg->max_response_body;
    if (max_body && k->kind == http::response_body_kind::length && uint64_t(h.content_length) > max_body) {
        fail(w, k, 502, ("response body of " + std::to_string(h.content_length) + " bytes over max_response_body (" +
                         std::to_string(max_body) + ")").c_str());
        return false;
    }
    if (h.keep_alive_timeout_s > 0) {
        uint64_t t = uint64_t(h.keep_alive_timeout_s) * 1000;
        u->retire_at = w.now_ms_ + (t > keepalive_margin_ms ? t - keepalive_margin_ms : 0);
    }
    if (!client_usable(ex)) return true;
    const upstream::connection_values connection({h.headers, h.header_count});
    for (uint32_t i = 0; i < h.header_count; ++i) {
        const http::header_field &f = h.headers[i];
        if (response_hop_by_hop(f.name, connection.values())) continue;
        ex->resp_headers.append(f.name).append(": ").append(f.value).append("\r\n");
    }
    int64_t length = -1;
    switch (k->kind) {
        case http::response_body_kind::length:
            length = h.content_length;
            k->left = uint64_t(h.content_length);
            break;
        case http::response_body_kind::none:
            // HEAD: the upstream's Content-Length describes the representation; keep it.
            length = k->is_head ? h.content_length : (h.status == 304 || h.status == 204 ? -1 : 0);
            break;
        default:
            break;
    }
    session::response_start(ex, h.status, length);
    if (k->kind == http::response_body_kind::none || (k->kind == http::response_body_kind::length && k->left == 0)) {
        k->resp_done = true;
        write_client(w, k, {}, true);
    }
    return true;
}

// Body bytes of an unannounced length (chunked, until close) within max_response_body: the
// part of `data` that may still go to the client. Past it (body_over_limit) the upstream
// connection closes and so does the client's once it has what was relayed, without the
// end of the message: the client sees it cut short, as after an upstream error mid-body.
std::string_view within_body_limit(call *k, std::string_view data, bool &over) {
    const uint64_t max_body = k->at.up->cfg->max_response_body;
    over = false;
    if (!max_body) return data;
    uint64_t room = max_body - k->relayed;
    if (data.size() > room) {
        over = true;
        data = data.substr(0, size_t(room));
    }
    k->relayed += data.size();
    return data;
}

void body_over_limit(worker &w, call *k) {
    log::rate_limited_warn("upstream %s, server %s: response body over max_response_body (%llu bytes): cut",
                           k->at.up->cfg->name.c_str(), k->at.srv ? k->at.srv->address.c_str() : "?",
                           static_cast<unsigned long long>(k->at.up->cfg->max_response_body));
    detach(w, k, false);
    k->resp_done = true;
    // Unlike fail()'s hard close, what was relayed reaches the client before the close.
    if (client_usable(k->ex)) session::response_cut(k->ex);
}

void body_bytes(worker &w, call *k, std::string_view data) {
    switch (k->kind) {
        case http::response_body_kind::tunnel:
            if (!data.empty()) {
                k->tunnel_active = w.now_ms_;
                write_client(w, k, data, false);
            }
            return;
        case http::response_body_kind::length: {
            size_t n = size_t(std::min<uint64_t>(data.size(), k->left));
            k->left -= n;
            if (n < data.size()) k->reusable = false;  // more than announced: not trusted again
            if (k->left == 0) k->resp_done = true;
            if (n || k->resp_done) write_client(w, k, data.substr(0, n), k->resp_done);
            break;
        }
        case http::response_body_kind::chunked: {
            size_t used = 0;
            bool over = false;
            auto st = k->chunked.feed(data, used, [&](std::string_view piece) {
                if (over) return;  // the rest of this read is dropped with the call
                bool now_over = false;
                piece = within_body_limit(k, piece, now_over);
                if (!piece.empty()) write_client(w, k, piece, false);
                over = now_over;
            });
            if (over) {
                body_over_limit(w, k);
                return;
            }
            if (st == http::chunked_decoder::status::error) {
                attempt::failed(w, k->at, "bad chunked response body", false);
                fail(w, k, 502, "bad chunked response body");
                return;
            }
            if (st == http::chunked_decoder::status::done) {
                if (used < data.size()) k->reusable = false;
                k->resp_done = true;
                write_client(w, k, {}, true);
            }
            break;
        }
        case http::response_body_kind::until_close: {
            bool over = false;
            std::string_view allowed = within_body_limit(k, data, over);
            if (!allowed.empty()) write_client(w, k, allowed, false);
            if (over) {
                body_over_limit(w, k);
                return;
            }
            break;
        }
        default:
            if (!data.empty()) k->reusable = false;  // bytes where none belong
            break;
    }
    maybe_finish(w, k);
}

// What the client sends (its request body, or in a tunnel its socket reads) is held back
// while the upstream cannot take it: backpressure, or for a new connection until its
// connect is through, so a failed connect leaves the body unread and the request can go
// to another server whole.
void update_client_pause(call *k) {
    bool paused = k->client_paused || k->awaiting_connect;
    if (!client_usable(k->ex)) return;
    if (k->tunnel()) l4::pause_read(k->ex->c, paused);
    else if (k->ex->body_paused != paused) session::request_body_pause(k->ex, paused);
}

// Keyed by the upstream connection, not the call: the call may be gone when the
// connection's queue is dropped, the connection is not (it is freed after).
void resume_client(void *user, int32_t) {
    upconn *u = up_of(static_cast<conn *>(user));
    call *k = u ? u->owner : nullptr;
    if (!k || !k->client_paused) return;
    k->client_paused = false;
    update_client_pause(k);
}

// Queues bytes (copied) for the upstream; the client is paused while too much waits.
void upstream_write(worker &w, call *k, std::string_view bytes) {
    conn *uc = k->uc;
    if (!uc || bytes.empty()) return;
    atlas_iovec_t v{bytes.data(), bytes.size()};
    bool pause = uc->out.bytes() + bytes.size() > max_upstream_backlog && (!k->req_done || k->tunnel());
    if (uc->out.empty()) uc->last_send = w.now_ms_;
    uc->out.append_iov(w.arena_pool_, &v, 1, false, pause ? resume_client : nullptr, pause ? uc : nullptr, nullptr);
    w.mark_dirty(uc);
    if (pause && !k->client_paused && client_usable(k->ex)) {
        k->client_paused = true;
        update_client_pause(k);
    }
}

// The upstream answered 101 to the Upgrade we forwarded: pass the 101 on and turn both
// connections into one byte tunnel. false after failing the call.
bool start_tunnel(worker &w, call *k, const http::response_head &h) {
    // RFC 9110 7.8: the 101's Upgrade names the protocol switched to; it must be one the
    // client offered and this route allows, or the client would be handed a protocol it
    // never asked for (an h2c smuggled behind a WebSocket route, say).
    std::string_view protocol = h.upgrade.substr(0, h.upgrade.find(','));
    protocol = http::chars::trim_ows(protocol);
    exchange *ex = k->ex;
    if (!upstream::upgrade_allowed(protocol, k->fo) || !upstream::upgrade_offered(ex->head, protocol)) {
        fail(w, k, 502, "101 Switching Protocols to a protocol the client did not ask for");
        return false;
    }
    if (!k->req_done) {  // the new protocol would start in the middle of the request body
        fail(w, k, 502, "101 Switching Protocols before the request body was sent");
        return false;
    }
    k->head_done = true;
    server_answered(w, k, 101);
    k->kind = http::response_body_kind::tunnel;
    k->reusable = false;
    k->tunnel_active = w.now_ms_;
    if (!client_usable(ex)) return false;
    const upstream::connection_values connection({h.headers, h.header_count});
    for (uint32_t i = 0; i < h.header_count; ++i) {
        const http::header_field &f = h.headers[i];
        bool upgrade = response_headers::iequals_nocase(f.name, "Upgrade");
        if (!upgrade && response_hop_by_hop(f.name, connection.values())) continue;
        ex->resp_headers.append(f.name).append(": ").append(f.value).append("\r\n");
    }
    ex->switching = true;
    if (session::response_start(ex, 101, -1) != ATLAS_OK) {
        fail(w, k, 502, "cannot start the 101 response");
        return false;
    }
    conn *c = ex->c;
    c->tunnel = true;
    // Whatever the client sent after its request head already speaks the new protocol.
    if (c->buffered()) {
        upstream_write(w, k, std::string_view(c->in.data() + c->in_start, c->buffered()));
        c->in_start = c->in_end = 0;
    }
    // The HTTP side may have paused reading on its input limit: the tunnel decides now.
    if (c->read_paused && !k->client_paused) l4::pause_read(c, false);
    return true;
}

// The tunnel is over on the upstream side: the client gets what is queued, then a close.
void end_tunnel(worker &w, call *k) {
    if (!client_usable(k->ex)) return;
    conn *c = k->ex->c;
    c->close_after_flush = true;
    w.mark_dirty(c);
}

// A new connection to `server` for call k: it belongs to the call's config generation
// (its upstream settings live there).
conn *connect_to(worker &w, call *k, upstream::server *server) {
    conn *uc = attempt::connect(w, server, k->ex->c->rt);
    if (!uc) return nullptr;
    auto *u = new upconn;
    u->up = k->at.up;
    u->server = server;
    u->started = w.now_ms_;
    uc->upstream = u;
    return uc;
}

// A pooled connection to `server` that is still fit for use by a request on runtime
// `rt`, or nullptr. A TLS connection stays with its own runtime: its session belongs to
// that runtime's module state, which goes once the runtime has no connection left.
conn *take_idle(worker &w, const upstream::server *server, const runtime *rt) {
    auto it = w.pools_.idle.find(server);
    if (it == w.pools_.idle.end()) return nullptr;
    auto &idle = it->second;
    while (!idle.empty()) {
        conn *uc = idle.back();
        idle.pop_back();
        upconn *u = up_of(uc);
        if (uc->closing || uc->peer_eof || w.now_ms_ >= u->retire_at || (uc->has_transport && uc->rt.get() != rt)) {
            w.hard_close(uc);
            continue;
        }
        return uc;
    }
    return nullptr;
}

// The call uses `uc` (pooled or new) from now on: its clocks restart and the request
// head is queued, with the body bytes kept for a replay when this is one.
void attach(worker &w, call *k, conn *uc) {
    upconn *u = up_of(uc);
    if (u->up != k->at.up) {  // pooled by a request of another config generation
        u->up = k->at.up;
        w.rebind(uc, k->ex->c->rt);
    }
    u->owner = k;
    u->got_bytes = false;
    u->started = u->last_recv = w.now_ms_;
    u->retire_at = UINT64_MAX;
    k->uc = uc;
    k->attempt_us = w.now_us_;
    upstream_write(w, k, k->buf.head);
    upstream_write(w, k, k->buf.replay);
    // A new connection holds the body back until its connect is through; a pooled one
    // (after a retry, say) takes it at once.
    k->awaiting_connect = uc->connecting && !k->req_done;
    update_client_pause(k);
}

void dispatch(worker &w, call *k);

enum class phase {
    connect,  // the request never reached the server: any request may go elsewhere
    sent,     // it may have: only a replayable one, and only before any response byte
};

// The attempt failed before anything went to the client: the request goes to another
// server when the upstream's retries, the budget and the request allow it, else the
// client gets `status`.
void retry_or_fail(worker &w, call *k, phase p, unsigned status, const char *why) {
    exchange *ex = k->ex;
    bool replayable = p == phase::connect || (k->may_replay && k->replayable);
    bool fresh_response = !k->head_done && !(k->uc && up_of(k->uc)->got_bytes);
    if (client_usable(ex) && !ex->head_sent && fresh_response && replayable &&
        k->at.attempts <= k->at.up->cfg->retry.retries && attempt::another_server(w, k->at) &&
        attempt::budget_allows(w, k->at)) {
        log::rate_limited_warn("upstream %s, server %s: %s; retrying on another server", k->at.up->cfg->name.c_str(),
                               k->at.srv ? k->at.srv->address.c_str() : "?", why);
        detach(w, k, false);
        attempt::give_up_server(w, k->at);
        k->scan_from = 0;
        k->buf.in.clear();
        dispatch(w, k);
        return;
    }
    fail(w, k, status, why);
}

// Picks a server that is usable and not tried yet for this request, takes the probe slot
// of a half-open one, and attaches a connection to it (pooled or new). Answers the
// client itself when there is none: 503 with Retry-After when the upstream has no usable
// server at all, else the last failure's 502.
void dispatch(worker &w, call *k) {
    switch (attempt::pick(w, k->at, k->id.client_text(), handle(k->ex))) {
        case attempt::pick_result::no_other:
            fail(w, k, 502, "no other server to retry on");
            return;
        case attempt::pick_result::no_usable:
            fail(w, k, 503, "no usable server", attempt::retry_after_s(w, k->at));
            return;
        case attempt::pick_result::picked:
            break;
    }
    upstream::server *server = k->at.srv;
    upstream::server_shard &sh = attempt::shard_of(w, server);
    conn *uc = take_idle(w, server, k->ex->c->rt.get());
    if (uc) {
        sh.pool_hits.add();
    } else {
        sh.pool_misses.add();
        uc = connect_to(w, k, server);
    }
    if (!uc) {
        fail(w, k, 502, "cannot create a socket");
        return;
    }
    attach(w, k, uc);
}

}  // namespace

int32_t forward(exchange *ex, const atlas_proxy_options_t *opt) {
    if (!client_usable(ex)) return ATLAS_ECLOSED;
    if (ex->head_sent || ex->proxy || !opt || !ATLAS_HAS_FIELD(atlas_proxy_options_t, opt, host) || !opt->upstream)
        return ATLAS_EINVAL;
    worker &w = *ex->c->w;
    const auto *up = reinterpret_cast<const upstream_rt *>(opt->upstream);
    call *k;
    if (w.pools_.spare_calls.empty()) {
        k = new call;
    } else {
        k = w.pools_.spare_calls.back();
        w.pools_.spare_calls.pop_back();
    }
    k->ex = ex;
    k->at.rt = ex->c->rt.get();
    k->at.up = up;
    k->is_head = ex->head.is_head;
    // RFC 9110 9.2.2; a non-idempotent request only with an Idempotency-Key (IETF
    // httpapi draft): its sender asked for the server to dedupe repeats.
    k->may_replay = idempotent_method(ex->head.method) || ex->find_header("idempotency-key");
    ex->proxy = k;

    // One client identity: the peer, or what a trusted proxy's header says.
    const listener_rt &l = *ex->c->listener;
    std::span<const http::header_field> headers(ex->req_headers.data(), ex->req_headers.size());
    upstream::resolve_client(w.peer_address(ex->c), headers, l.trusted, l.client_from, k->id);
    upstream::forward_options fo;
    fo.strip_prefix = {opt->strip_prefix.ptr, opt->strip_prefix.len};
    fo.host = {opt->host.ptr, opt->host.len};
    fo.x_forwarded_for = opt->flags & ATLAS_PROXY_X_FORWARDED_FOR;
    fo.x_forwarded_proto = opt->flags & ATLAS_PROXY_X_FORWARDED_PROTO;
    fo.x_forwarded_host = opt->flags & ATLAS_PROXY_X_FORWARDED_HOST;
    fo.forwarded = opt->flags & ATLAS_PROXY_FORWARDED;
    fo.websocket = opt->flags & ATLAS_PROXY_WEBSOCKET;
    if (ATLAS_HAS_FIELD(atlas_proxy_options_t, opt, upgrade)) fo.upgrade_protocols = {opt->upgrade.ptr, opt->upgrade.len};
    k->fo = fo;
    k->upgrading = upstream::forwards_upgrade(ex->head, fo);
    k->req_body = upstream::framing_of(ex->head);
    if (!upstream::write_request_head(ex->head, k->id, ex->c->has_transport, k->req_body, fo, k->buf.head)) {
        k->resp_done = k->req_done = true;
        ex->resp_headers.clear();
        session::respond(ex, 501, "text/plain", "501 Not Implemented\n");
        return ATLAS_OK;
    }
    k->req_done = k->req_body.kind == upstream::body_kind::none;
    dispatch(w, k);
    return ATLAS_OK;
}

namespace {

// Body bytes go upstream, and into the replay buffer while the request may be replayed
// and the body stays under the upstream's replay_body size.
void send_body(worker &w, call *k, std::string_view bytes) {
    if (k->may_replay && k->replayable) {
        if (k->buf.replay.size() + bytes.size() <= k->at.up->cfg->retry.replay_body_bytes) {
            k->buf.replay.append(bytes);
        } else {
            k->replayable = false;
            std::string().swap(k->buf.replay);
        }
    }
    upstream_write(w, k, bytes);
}

}  // namespace

void on_client_body(worker &w, exchange *ex, std::string_view piece, bool last) {
    call *k = ex->proxy;
    if (!k || k->req_done) return;
    if (k->req_body.kind == upstream::body_kind::chunked) {
        if (!piece.empty()) {
            char size_line[24];
            send_body(w, k, std::string_view(size_line, http::format_chunk_size(size_line, piece.size())));
            send_body(w, k, piece);
            send_body(w, k, "\r\n");
        }
        if (last) send_body(w, k, "0\r\n\r\n");
    } else {
        send_body(w, k, piece);
    }
    if (last) {
        k->req_done = true;
        if (k->uc) up_of(k->uc)->last_recv = w.now_ms_;  // the read timeout starts now
        maybe_finish(w, k);
    }
}

void release(worker &w, exchange *ex) {
    call *k = ex->proxy;
    if (!k) return;
    ex->proxy = nullptr;
    k->ex = nullptr;
    if (conn *uc = k->uc; uc && k->tunnel() && uc->shut_wr_after_flush && !uc->closing) {
        // The client's side of the tunnel ended cleanly (both ways) while bytes for the
        // upstream may still be queued: the connection sends them, shuts, and closes itself
        // (l4::on_drained); unowned, it is bounded by the idle timeout meanwhile.
        k->uc = nullptr;
        up_of(uc)->owner = nullptr;
        up_of(uc)->idle_since = w.now_ms_;
        w.mark_dirty(uc);
    }
    // A call that did not finish cleanly (client gone, error) never pools its connection.
    detach(w, k, k->resp_done && k->req_done && k->reusable);
    attempt::release(w, k->at);
    if (w.pools_.spare_calls.size() < 1024 && k->buf.in.capacity() <= 65536 && k->buf.head.capacity() <= 65536 &&
        k->buf.replay.capacity() <= 65536) {
        k->reset();
        w.pools_.spare_calls.push_back(k);
    } else {
        delete k;
    }
}

pools::~pools() {
    for (call *k : spare_calls) delete k;
}

namespace {

// The connection of the current attempt broke (reset, closed, lost) before the response
// was complete. A reused connection that died before any response byte raced the
// upstream's keep-alive close: the server is not blamed, and a replayable request goes
// again, once, on a fresh connection to the same server. Otherwise the server failed:
// the request goes elsewhere when it may, else the client gets a 502.
void connection_failed(worker &w, call *k, const char *why) {
    upconn *u = k->uc ? up_of(k->uc) : nullptr;
    bool race = u && !u->got_bytes && u->reused && !k->head_done && !k->retried;
    if (race && !(k->may_replay && k->replayable)) {
        fail(w, k, 502, "a reused connection closed before answering a request that may not be sent again");
        return;
    }
    if (race) {
        k->retried = true;
        upstream::server *server = u->server;
        detach(w, k, false);
        conn *fresh = connect_to(w, k, server);
        if (!fresh) {
            fail(w, k, 502, "cannot create a socket");
            return;
        }
        attempt::shard_of(w, server).pool_misses.add();
        attach(w, k, fresh);
        return;
    }
    attempt::failed(w, k->at, why, true);
    if (k->head_done) fail(w, k, 502, why);  // in the middle of the body: too late for anything else
    else retry_or_fail(w, k, phase::sent, 502, why);
}

}  // namespace

void on_connected(worker &w, conn *uc, int32_t res) {
    uc->connecting = false;
    upconn *u = up_of(uc);
    if (uc->closing) return;
    call *k = u->owner;
    if (res < 0) {
        if (k) {
            std::string why = std::string("connect failed: ") + std::strerror(-res);
            attempt::failed(w, k->at, why, true);
            retry_or_fail(w, k, phase::connect, 502, why.c_str());
        } else {
            w.hard_close(uc);
        }
        return;
    }
    // TLS to the server: the handshake starts now; the request waits in the transport
    // until it is through.
    if (const module_instance *tls = u->up->tls; tls && !l4::open_client(w, uc, tls)) {
        if (k) {
            attempt::failed(w, k->at, "TLS setup failed", true);
            retry_or_fail(w, k, phase::connect, 502, "TLS setup failed");
        } else {
            w.hard_close(uc);
        }
        return;
    }
    if (k && k->awaiting_connect) {
        k->awaiting_connect = false;
        update_client_pause(k);
    }
    w.mark_dirty(uc);  // sends what is queued and arms the receive
}

void on_data(worker &w, conn *uc, const char *data, size_t len) {
    upconn *u = up_of(uc);
    call *k = u->owner;
    if (!k) {  // an idle pooled connection has nothing to say
        w.hard_close(uc);
        return;
    }
    u->last_recv = w.now_ms_;
    u->got_bytes = true;
    if (k->head_done) {
        body_bytes(w, k, {data, len});
        return;
    }
    // A head that arrives whole (the common case) is parsed where it lies; only a partial
    // one is kept in k->buf.in until the rest comes.
    if (!k->buf.in.empty()) k->buf.in.insert(k->buf.in.end(), data, data + len);
    std::string_view input = k->buf.in.empty() ? std::string_view(data, len) : std::string_view(k->buf.in.data(), k->buf.in.size());
    std::vector<http::header_field> &fields = w.pools_.response_fields;
    if (fields.size() < max_response_headers + 1) fields.resize(max_response_headers + 1);
    for (;;) {
        http::response_head h;
        http::response_limits limits;
        limits.max_head_bytes = k->at.up->cfg->max_response_head;
        auto r = http::parse_response_head(input, limits, h, fields.data(), uint32_t(fields.size()), k->scan_from);
        if (r == http::parse_result::incomplete) {  // keep what is left of the head for the next bytes
            if (k->buf.in.empty()) k->buf.in.assign(input.begin(), input.end());
            else k->buf.in.erase(k->buf.in.begin(), k->buf.in.begin() + (input.data() - k->buf.in.data()));
            return;
        }
        if (r == http::parse_result::error) {
            std::string why = h.error_reason ? h.error_reason : "bad response head";
            if (h.error_reason == http::head_too_large)
                why += " (over max_response_head, " + std::to_string(limits.max_head_bytes) + " bytes)";
            attempt::failed(w, k->at, why, false);
            fail(w, k, 502, why.c_str());
            return;
        }
        input.remove_prefix(h.head_length);
        if (h.is_interim()) continue;  // 100 Continue, 103 Early Hints: the core already spoke for us
        if (h.status == 101) {
            if (!k->upgrading) {
                attempt::failed(w, k->at, "101 without an upgrade request", false);
                fail(w, k, 502, "101 Switching Protocols without an upgrade request");
                return;
            }
            // What came after the 101 head already belongs to the new protocol.
            if (start_tunnel(w, k, h)) body_bytes(w, k, input);
            k->buf.in.clear();
            return;
        }
        if (!start_response(w, k, h)) return;
        // Body bytes that came with the head (body_bytes copies what it forwards).
        if (!input.empty() || k->resp_done) body_bytes(w, k, input);
        else maybe_finish(w, k);
        k->buf.in.clear();
        return;
    }
}

void on_eof(worker &w, conn *uc) {
    upconn *u = up_of(uc);
    call *k = u->owner;
    if (!k) {
        w.hard_close(uc);
        return;
    }
    if (k->tunnel()) {
        // The upstream sent all it will: the client gets its half-close once it has it all;
        // the upstream connection closes once our side is shut too (l4::on_drained).
        if (client_usable(k->ex)) {
            k->ex->c->shut_wr_after_flush = true;
            w.mark_dirty(k->ex->c);
        }
        w.mark_dirty(uc);
        return;
    }
    if (k->head_done && k->kind == http::response_body_kind::until_close && !k->resp_done) {
        k->resp_done = true;
        k->reusable = false;
        write_client(w, k, {}, true);
        maybe_finish(w, k);
        if (k->uc) detach(w, k, false);
        return;
    }
    if (k->resp_done) {
        detach(w, k, false);
        return;
    }
    connection_failed(w, k, k->head_done ? "closed in the middle of the response body" : "closed before answering");
}

void on_recv_error(worker &w, conn *uc, int32_t res) {
    upconn *u = up_of(uc);
    call *k = u ? u->owner : nullptr;
    if (!k || k->tunnel() || k->resp_done) return;  // the close that follows ends it (on_closed)
    std::string why = std::string("receive failed: ") + std::strerror(-res);
    connection_failed(w, k, why.c_str());
}

void on_closed(worker &w, conn *uc) {
    upconn *u = up_of(uc);
    if (!u) return;
    if (call *k = u->owner) {
        if (uc->has_transport && !uc->info_set && !u->got_bytes && !k->resp_done) {
            // The TLS handshake failed (mod_tls logged why): nothing of the request went
            // out, so it may go to another server like after a failed connect.
            attempt::failed(w, k->at, "TLS handshake failed", true);
            retry_or_fail(w, k, phase::connect, 502, "TLS handshake failed");
        } else if (!k->tunnel() && !k->resp_done) {
            connection_failed(w, k, "connection lost");  // detaches it
        } else {
            k->uc = nullptr;
            u->owner = nullptr;
            if (k->tunnel()) end_tunnel(w, k);
        }
    }
    auto it = w.pools_.idle.find(u->server);
    if (it != w.pools_.idle.end()) std::erase(it->second, uc);
    uc->upstream = nullptr;
    delete u;
}

void check_timeouts(worker &w, conn *uc, uint64_t now) {
    if (uc->closing) return;
    upconn *u = up_of(uc);
    const config::upstream &cfg = *u->up->cfg;
    call *k = u->owner;
    if (!k) {
        if (now - u->idle_since > uint64_t(cfg.keepalive_idle_timeout.count()) || now >= u->retire_at)
            w.hard_close(uc);
        return;
    }
    if (uc->connecting) {
        if (now - u->started > uint64_t(cfg.connect_timeout.count())) {
            attempt::failed(w, k->at, "connect timed out", true);
            retry_or_fail(w, k, phase::connect, 504, "connect timed out");
        }
        return;
    }
    if (k->tunnel()) {  // ends both connections: closing this one ends the client's (end_tunnel)
        bool stuck = uc->output_pending() && now - uc->last_send > uint64_t(cfg.write_timeout.count());
        if (stuck || now - k->tunnel_active > uint64_t(cfg.tunnel_timeout.count())) w.hard_close(uc);
        return;
    }
    if (uc->output_pending() && now - uc->last_send > uint64_t(cfg.write_timeout.count())) {
        attempt::failed(w, k->at, "send timed out", true);
        retry_or_fail(w, k, phase::sent, 504, "send timed out");
        return;
    }
    // The read timeout runs between two reads once the whole request is sent (as nginx's
    // proxy_read_timeout): a long upload is covered by the write timeout instead.
    if (!k->resp_done && k->req_done && !k->upstream_paused &&
        now - u->last_recv > uint64_t(cfg.read_timeout.count())) {
        attempt::failed(w, k->at, "response timed out", true);
        retry_or_fail(w, k, phase::sent, 504, "response timed out");
    }
}

std::string_view client_of(const exchange *ex) {
    return ex->proxy ? ex->proxy->id.client_text() : std::string_view();
}

std::string_view server_of(const exchange *ex) {
    const call *k = ex->proxy;
    if (!k || !k->at.srv) return {};
    return k->at.srv->address;
}

void tunnel_from_client(worker &w, conn *c, const char *data, size_t len) {
    call *k = c->cur ? c->cur->proxy : nullptr;
    if (!k || !k->uc) return;  // the upstream side is gone: the client is being closed
    k->tunnel_active = w.now_ms_;
    upstream_write(w, k, std::string_view(data, len));
}

void tunnel_client_eof(worker &w, conn *c) {
    call *k = c->cur ? c->cur->proxy : nullptr;
    if (k && k->uc) {  // pass the half-close on once the upstream has everything
        k->uc->shut_wr_after_flush = true;
        w.mark_dirty(k->uc);
    } else {
        c->close_after_flush = true;
    }
    w.mark_dirty(c);  // closes it when our side is already shut (l4::on_drained)
}

void close_idle(worker &w) {
    for (auto &[server, idle] : w.pools_.idle) {
        std::vector<conn *> doomed;
        doomed.swap(idle);
        for (conn *uc : doomed) w.hard_close(uc);
    }
}

void close_idle_unusable(worker &w, const upstream::membership &m) {
    for (auto it = w.pools_.idle.begin(); it != w.pools_.idle.end();) {
        const upstream::server *s = it->first;
        size_t i = 0;
        while (i < m.servers.size() && m.servers[i] != s) ++i;
        bool gone = i == m.servers.size();
        // Another group's server: not this membership's business.
        if (gone && !s->retired.load(std::memory_order_relaxed)) {
            ++it;
            continue;
        }
        if (gone || !m.endpoints[i].usable) {
            std::vector<conn *> doomed;
            doomed.swap(it->second);
            for (conn *uc : doomed) w.hard_close(uc);
            if (gone) {  // the server may be freed: no key may outlive it
                it = w.pools_.idle.erase(it);
                continue;
            }
        }
        ++it;
    }
}

}  // namespace atlas::chain::proxy
