#include "chain/l4.hh"

#include <sys/socket.h>
#include <unistd.h>

#include "chain/access_log.hh"
#include "chain/log.hh"
#include "chain/proxy.hh"
#include "chain/session.hh"
#include "chain/stream_proxy.hh"
#include "chain/worker.hh"

namespace atlas::chain::l4 {

namespace {

// Transport output waiting for the socket above this stops further pumping.
constexpr uint64_t max_wire_backlog = 256 * 1024;

atlas_conn_t *handle(conn *c) { return reinterpret_cast<atlas_conn_t *>(c); }
bool usable(const conn *c) { return c && c->fd >= 0 && !c->closing; }

const atlas_transport_t *transport_of(const conn *c) { return c->transport->transport; }
const atlas_stream_handler_t *stream_of(const conn *c) { return c->listener->stream->stream; }

// Plain bytes for the chain: the proxy's side of an upstream connection, the stream
// handler, the proxy's tunnel once an Upgrade switched protocols, or the HTTP codec.
void deliver(worker &w, conn *c, const char *data, size_t len) {
    if (c->eof_told) return;  // nothing counts after the end of the stream
    c->bytes_in += len;
    if (c->upstream) {
        proxy::on_data(w, c, data, len);
    } else if (c->relay) {
        if (!c->closing) stream_proxy::on_data(w, c, data, len);
    } else if (c->is_stream) {
        if (!c->closing) stream_of(c)->on_data(c->stream_state, handle(c), {data, len});
    } else if (c->tunnel) {
        if (!c->closing && !c->close_after_flush) proxy::tunnel_from_client(w, c, data, len);
    } else {
        session::on_data(w, c, data, len);
    }
}

// A PROXY protocol header is awaited (the listener's proxy_protocol): bytes go to it until
// it is complete; then the chain opens with the client it names and gets the rest.
void take_proxy_header(worker &w, conn *c, const char *data, size_t len) {
    proxy_header_state &ph = *c->proxy_header;
    std::string_view input(data, len);
    if (!ph.pending.empty()) {
        ph.pending.append(data, len);
        input = ph.pending;
    }
    net::proxy_protocol::result r = net::proxy_protocol::parse(input.data(), input.size(), ph.said);
    if (r.st == net::proxy_protocol::status::need_more) {
        if (ph.pending.empty()) ph.pending.assign(data, len);
        return;
    }
    if (r.st == net::proxy_protocol::status::invalid) {
        log::rate_limited_warn("%s: closing a connection from %s: bad PROXY protocol header: %s",
                               c->listener->cfg->key.c_str(), w.peer_of(c), r.err.c_str());
        if (c->listener->stream) access_log::record_stream(w, c, 400);
        else access_log::record_rejected(w, c, 400, 0);
        w.hard_close(c);
        return;
    }
    ph.done = true;
    if (!ph.said.local)  // the client from now on: logs, hashing, forwarding headers
        c->peer_len = uint8_t(net::format_address(ph.said.source.sa(), c->peer, sizeof c->peer));
    std::string rest(input.substr(r.used));
    std::string().swap(ph.pending);
    if (!open(w, c)) {
        w.hard_close(c);
        return;
    }
    if (!rest.empty() && !c->closing) on_wire(w, c, rest.data(), rest.size());
}

}  // namespace

bool open(worker &w, conn *c) {
    const listener_rt *l = c->listener;
    c->has_transport = l->transport != nullptr;
    c->is_stream = l->stream != nullptr;
    if (c->has_transport) {
        if (!c->wire_) c->wire_ = std::make_unique<out_queue>();
        module_instance *t = l->transport;
        c->transport = t;
        c->transport_state = t->transport->conn_open(t->config, c->rt->state(w.index_, t->slot), handle(c));
        if (!c->transport_state) return false;
    }
    if (c->is_stream) {
        module_instance *s = l->stream;
        c->stream_state = s->stream->conn_open(s->config, c->rt->state(w.index_, s->slot), handle(c));
        if (!c->stream_state) return false;
    }
    return true;
}

bool open_client(worker &w, conn *uc, const module_instance *t) {
    uc->has_transport = true;
    uc->transport = t;
    if (!uc->wire_) uc->wire_ = std::make_unique<out_queue>();
    uc->transport_state = t->transport->client_open(t->config, uc->rt->state(w.index_, t->slot), handle(uc));
    return uc->transport_state != nullptr;
}

void on_wire(worker &w, conn *c, const char *data, size_t len) {
    if (c->proxy_header && !c->proxy_header->done) {
        take_proxy_header(w, c, data, len);
        return;
    }
    if (c->has_transport) {
        if (transport_of(c)->on_wire(c->transport_state, handle(c), {data, len}) < 0) w.hard_close(c);
        return;
    }
    deliver(w, c, data, len);
}

void on_eof(worker &w, conn *c) {
    if (c->eof_told) return;  // a TLS close_notify told it already
    if (c->proxy_header && !c->proxy_header->done) {  // gone before saying whom it carries
        w.hard_close(c);
        return;
    }
    c->eof_told = true;
    if (c->upstream) {
        proxy::on_eof(w, c);
        return;
    }
    if (c->relay) {
        stream_proxy::on_eof(w, c);
        return;
    }
    if (c->is_stream) {
        if (stream_of(c)->on_eof) stream_of(c)->on_eof(c->stream_state, handle(c));
        else close(c);
        w.mark_dirty(c);  // a finished half-close on our side now ends the connection
        return;
    }
    if (c->tunnel) proxy::tunnel_client_eof(w, c);
    else session::on_eof(w, c);
}

void pump(worker &w, conn *c) {
    const atlas_transport_t *t = transport_of(c);
    atlas_iovec_t iov[64];
    while (!c->out.empty() && c->wire().bytes() < max_wire_backlog && !c->closing) {
        out_segment &front = c->out.front();
        if (front.is_file()) {
            // Files cannot bypass the transport: read a piece and hand it over.
            char buf[16384];
            size_t want = front.file_left < sizeof buf ? size_t(front.file_left) : sizeof buf;
            ssize_t r = want ? pread(front.fd, buf, want, off_t(front.file_off)) : 0;
            if (want && r <= 0) {
                log::rate_limited_warn("cannot read a file being sent: %s", r < 0 ? std::strerror(errno) : "file shrank");
                w.hard_close(c);
                return;
            }
            if (r > 0) {
                atlas_iovec_t v{buf, size_t(r)};
                if (t->on_plain(c->transport_state, handle(c), &v, 1) < 0) {
                    w.hard_close(c);
                    return;
                }
                // The transport may have delivered input that queued more output:
                // the queue can have grown, so look the segment up again.
                out_segment &f = c->out.front();
                f.file_off += uint64_t(r);
                f.file_left -= uint64_t(r);
                c->out.consumed(uint64_t(r));
                c->bytes_out += uint64_t(r);
            }
            if (c->out.front().file_left == 0) {
                out_segment done = c->out.front();
                c->out.pop();
                session::segment_done(w, done, ATLAS_OK);
            }
            continue;
        }
        size_t n = 0;
        uint64_t total = 0;
        size_t segs = 0;
        for (; segs < c->out.size() && n < std::size(iov); ++segs) {
            out_segment &s = c->out.at(segs);
            if (s.is_file()) break;
            if (s.len) iov[n++] = {s.data, s.len};
            total += s.len;
        }
        if (n && t->on_plain(c->transport_state, handle(c), iov, n) < 0) {
            w.hard_close(c);
            return;
        }
        c->out.consumed(total);
        c->bytes_out += total;
        for (size_t i = 0; i < segs && !c->closing; ++i) {
            out_segment done = c->out.front();
            c->out.pop();
            session::segment_done(w, done, ATLAS_OK);
        }
    }
    if (c->out.empty() && !c->out.arena.empty()) c->out.arena.reset(w.arena_pool_);
}

bool on_drained(worker &w, conn *c) {
    bool closing_soon = c->close_after_flush || (c->shut_wr_after_flush && !c->shut_wr_done);
    if (closing_soon && c->has_transport && !c->transport_shutdown_sent) {
        c->transport_shutdown_sent = true;
        const atlas_transport_t *t = transport_of(c);
        if (t->on_shutdown) t->on_shutdown(c->transport_state, handle(c));
        if (!c->wire().empty()) return true;
    }
    if (c->shut_wr_after_flush && !c->shut_wr_done && !c->close_after_flush) {
        c->shut_wr_done = true;
        ::shutdown(c->fd, SHUT_WR);
    }
    // Both directions are finished: nothing can happen on this connection any more.
    if (c->shut_wr_done && c->peer_eof) w.hard_close(c);
    return false;
}

void closed(worker &w, conn *c) {
    (void)w;
    if (c->stream_state) stream_of(c)->conn_close(c->stream_state);
    if (c->transport_state) transport_of(c)->conn_close(c->transport_state);
    c->stream_state = c->transport_state = nullptr;
}

// ---- host API

int32_t send(conn *c, const atlas_iovec_t *iov, size_t iovcnt, uint32_t flags, atlas_done_fn done, void *user) {
    if (!usable(c) || !c->is_stream || c->relay) return usable(c) ? ATLAS_EINVAL : ATLAS_ECLOSED;
    if (c->shut_wr_after_flush || c->close_after_flush) return ATLAS_ECLOSED;
    if (iovcnt && !iov) return ATLAS_EINVAL;
    worker &w = *c->w;
    if (c->out.empty()) c->last_send = w.now_ms_;
    c->out.append_iov(w.arena_pool_, iov, iovcnt, flags & ATLAS_WRITE_REF, done, user, nullptr);
    w.mark_dirty(c);
    return ATLAS_OK;
}

void shutdown_write(conn *c) {
    if (!usable(c) || !c->is_stream) return;
    c->shut_wr_after_flush = true;
    c->w->mark_dirty(c);
}

void close(conn *c) {
    if (!usable(c)) return;
    c->close_after_flush = true;
    c->w->mark_dirty(c);
}

void pause_read(conn *c, bool paused) {
    if (usable(c)) c->w->pause_read(c, paused);
}

atlas_slice_t peer(conn *c) {
    if (!c || c->fd < 0) return {"", 0};
    std::string_view p = c->w->peer_address(c);
    return {p.data(), p.size()};
}

int32_t transport_deliver(conn *c, atlas_slice_t plain) {
    if (!usable(c) || !c->has_transport) return usable(c) ? ATLAS_EINVAL : ATLAS_ECLOSED;
    if (plain.len) deliver(*c->w, c, plain.ptr, plain.len);
    return ATLAS_OK;
}

void transport_eof(conn *c) {
    if (!usable(c) || !c->has_transport) return;
    on_eof(*c->w, c);
}

void transport_set_info(conn *c, const atlas_transport_info_t *info) {
    if (!usable(c) || !c->has_transport || !info || !ATLAS_HAS_FIELD(atlas_transport_info_t, info, alpn)) return;
    if (!c->info) c->info = std::make_unique<transport_info>();
    auto text = [](atlas_slice_t v, std::string &out) {
        if (v.ptr) out.assign(v.ptr, v.len);
        else out.clear();
    };
    text(info->protocol, c->info->protocol);
    text(info->cipher, c->info->cipher);
    text(info->server_name, c->info->server_name);
    text(info->alpn, c->info->alpn);
    c->info->resumed = ATLAS_HAS_FIELD(atlas_transport_info_t, info, resumed) && info->resumed;
    if (!c->info_set && c->listener && !c->upstream) {
        listener_shard &st = c->listener->stats[c->w->index_];
        st.handshakes.add();
        if (c->info->resumed) st.resumed.add();
    }
    c->info_set = true;
    if (stream_proxy::is_server(c)) stream_proxy::on_handshake(*c->w, c);
    else if (c->relay) stream_proxy::on_client_handshake(*c->w, c);
}

int32_t transport_emit(conn *c, atlas_slice_t wire) {
    if (!usable(c) || !c->has_transport) return usable(c) ? ATLAS_EINVAL : ATLAS_ECLOSED;
    if (!wire.len) return ATLAS_OK;
    worker &w = *c->w;
    if (c->wire().empty()) c->last_send = w.now_ms_;
    atlas_iovec_t v{wire.ptr, wire.len};  // a full record (16 KiB+) in pooled pieces
    c->wire().append_iov(w.arena_pool_, &v, 1, false, nullptr, nullptr, nullptr);
    w.mark_dirty(c);
    return ATLAS_OK;
}

}  // namespace atlas::chain::l4
