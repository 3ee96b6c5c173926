#include "connection.hh"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <climits>
#include <cstring>

#include "contexts.hh"

namespace atlas::tls {

namespace {

// The largest TLS plaintext record (RFC 8446 5.1): gathered writes fill whole records.
constexpr size_t record_size = 16384;

thread_local char read_buf[record_size];
thread_local char stage_buf[record_size];

}  // namespace

int io_recv(WOLFSSL *, char *buf, int size, void *c) { return static_cast<connection *>(c)->take(buf, size); }
int io_send(WOLFSSL *, char *buf, int size, void *c) { return static_cast<connection *>(c)->emit(buf, size); }

connection::connection(const atlas_host_api_t *host, atlas_conn_t *conn, WOLFSSL *ssl, client_context *client,
                       std::string peer)
    : host_(host), conn_(conn), ssl_(ssl), client_(client), peer_(std::move(peer)) {
    wolfSSL_SetIOReadCtx(ssl_, this);
    wolfSSL_SetIOWriteCtx(ssl_, this);
    if (offload::device() != INVALID_DEVID) keys_ = std::make_unique<offload::connection_keys>();
}

connection::~connection() {
    if (client_ && st_ == state::open && !session_saved_) client_->remember(peer_, ssl_);
    wolfSSL_free(ssl_);
}

// wolfSSL is handed no byte past the end of the record it is reading, so once it has
// returned a record's data it holds no unread input: with nothing queued here either,
// there is nothing left to read, and advance() stops without another wolfSSL_read
// (which would only say WANT_READ, at the price of a formatted error-queue entry).
void connection::track_records(const char *p, size_t n) {
    while (n) {
        if (body_left_) {
            size_t k = std::min(n, body_left_);
            body_left_ -= k;
            p += k;
            n -= k;
            continue;
        }
        header_[header_have_++] = static_cast<unsigned char>(*p++);
        --n;
        if (header_have_ == sizeof header_) {  // type, version (2), length (2)
            body_left_ = size_t(header_[3]) << 8 | header_[4];
            header_have_ = 0;
        }
    }
}

bool connection::input_drained() const {
    return in_len_ == 0 && held_in_.empty() && header_have_ == 0 && body_left_ == 0 && !wolfSSL_has_pending(ssl_);
}

int connection::take(char *buf, int size) {
    if (size <= 0) return 0;
    size_t room = body_left_ ? body_left_ : sizeof header_ - header_have_;
    size_t want = std::min(size_t(size), room);
    size_t got = 0;
    if (!held_in_.empty()) {
        got = std::min(want, held_in_.size());
        std::memcpy(buf, held_in_.data(), got);
        held_in_.erase(0, got);
    }
    if (got < want && in_len_) {
        size_t n = std::min(want - got, in_len_);
        std::memcpy(buf + got, in_, n);
        in_ += n;
        in_len_ -= n;
        got += n;
    }
    track_records(buf, got);
    return got ? int(got) : WOLFSSL_CBIO_ERR_WANT_READ;
}

int connection::emit(const char *buf, int size) {
    if (host_->transport_emit(conn_, {buf, size_t(size)}) < 0) return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    return size;
}

int32_t connection::start() {
    offload::keys_scope scope(keys_.get());
    return advance();
}

int32_t connection::on_wire(atlas_slice_t wire) {
    if (st_ == state::failed) return ATLAS_OK;  // ignored until the host closes
    offload::keys_scope scope(keys_.get());
    if (!client_ && !seen_input_ && wire.len) {
        seen_input_ = true;
        // A TLS connection opens with a handshake record (0x16). Upper-case ASCII is an
        // HTTP request sent in the clear: say so in the clear, as nginx does, and close.
        if (wire.ptr[0] >= 'A' && wire.ptr[0] <= 'Z') {
            static const char reply[] =
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 49\r\n"
                "Connection: close\r\n\r\nThis port speaks HTTPS: use https:// to reach it\n";
            st_ = state::failed;
            host_->transport_emit(conn_, {reply, sizeof reply - 1});
            host_->conn_close(conn_);
            return ATLAS_OK;
        }
    }
    in_ = wire.ptr;
    in_len_ = wire.len;
    int32_t r = advance();
    // What wolfSSL did not take waits for the next call.
    if (in_len_) held_in_.append(in_, in_len_);
    in_ = nullptr;
    in_len_ = 0;
    return r;
}

int32_t connection::handshake() {
    int r = client_ ? wolfSSL_connect(ssl_) : wolfSSL_accept(ssl_);
    if (r == WOLFSSL_SUCCESS) {
        st_ = state::open;
        publish_info();
        if (client_) client_->remember(peer_, ssl_);  // a TLS 1.2 session is whole already
        if (!held_out_.empty()) {
            std::string out;
            out.swap(held_out_);
            if (write(out.data(), out.size()) < 0) return ATLAS_ERROR;
        }
        return ATLAS_OK;
    }
    int e = wolfSSL_get_error(ssl_, r);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) return ATLAS_OK;
    // A bad hello, a protocol or version mismatch, an unverifiable server: wolfSSL has
    // queued its alert. A client connection ends after sending it; an upstream one is
    // a failure its caller must see.
    st_ = state::failed;
    if (!client_) {
        host_->conn_close(conn_);  // a client's bad hello is counted, not logged (metrics)
        return ATLAS_OK;
    }
    char msg[160];
    wolfSSL_ERR_error_string_n(static_cast<unsigned long>(e), msg, sizeof msg);
    log(ATLAS_LOG_WARN, "handshake with upstream " + peer_ + " failed: " + msg);
    return ATLAS_ERROR;
}

int32_t connection::advance() {
    if (st_ == state::handshake) {
        int32_t r = handshake();
        if (r < 0 || st_ != state::open) return r;
    }
    while (st_ == state::open) {
        int n = wolfSSL_read(ssl_, read_buf, sizeof read_buf);
        if (n > 0) {
            if (host_->transport_deliver(conn_, {read_buf, size_t(n)}) < 0) return ATLAS_OK;  // closing
            if (client_ && !session_saved_) {
                // A TLS 1.3 server sends its ticket after the handshake: keep that one.
                client_->remember(peer_, ssl_);
                session_saved_ = true;
            }
            if (input_drained()) return ATLAS_OK;
            continue;
        }
        int e = wolfSSL_get_error(ssl_, n);
        if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) return ATLAS_OK;
        if (e == WOLFSSL_ERROR_ZERO_RETURN) {
            // close_notify: the peer's stream ended; our side may still send.
            host_->transport_eof(conn_);
            return ATLAS_OK;
        }
        st_ = state::failed;  // a bad record, a fatal alert from the peer
        return ATLAS_ERROR;
    }
    return ATLAS_OK;
}

int32_t connection::write(const char *data, size_t len) {
    while (len) {
        int n = wolfSSL_write(ssl_, data, int(std::min<size_t>(len, INT_MAX / 2)));
        if (n <= 0) {
            st_ = state::failed;
            return ATLAS_ERROR;
        }
        data += n;
        len -= size_t(n);
    }
    return ATLAS_OK;
}

// Small pieces (a response head and its body) are gathered into whole records: one
// record costs one AEAD call and 22 bytes of framing however small it is.
int32_t connection::write_iov(const atlas_iovec_t *iov, size_t iovcnt) {
    // One piece (a cached response, most often) needs no gathering.
    if (iovcnt == 1) return write(static_cast<const char *>(iov[0].base), iov[0].len);
    size_t staged = 0;
    for (size_t i = 0; i < iovcnt; ++i) {
        const char *p = static_cast<const char *>(iov[i].base);
        size_t len = iov[i].len;
        while (len) {
            if (staged == 0 && len >= record_size) {
                size_t whole = len - len % record_size;
                if (write(p, whole) < 0) return ATLAS_ERROR;
                p += whole;
                len -= whole;
                continue;
            }
            size_t n = std::min(len, record_size - staged);
            std::memcpy(stage_buf + staged, p, n);
            staged += n;
            p += n;
            len -= n;
            if (staged == record_size) {
                if (write(stage_buf, staged) < 0) return ATLAS_ERROR;
                staged = 0;
            }
        }
    }
    return staged ? write(stage_buf, staged) : ATLAS_OK;
}

int32_t connection::on_plain(const atlas_iovec_t *iov, size_t iovcnt) {
    if (st_ == state::handshake) {
        for (size_t i = 0; i < iovcnt; ++i) held_out_.append(static_cast<const char *>(iov[i].base), iov[i].len);
        return ATLAS_OK;
    }
    if (st_ != state::open || sent_close_) return ATLAS_ECLOSED;
    offload::keys_scope scope(keys_.get());
    return write_iov(iov, iovcnt);
}

void connection::on_shutdown() {
    if (st_ != state::open || sent_close_) return;
    sent_close_ = true;
    offload::keys_scope scope(keys_.get());
    wolfSSL_shutdown(ssl_);  // queues close_notify; the peer's is not waited for
}

void connection::publish_info() {
    atlas_transport_info_t info{};
    info.struct_size = sizeof info;
    auto put = [](const char *s) { return atlas_slice_t{s ? s : "", s ? std::strlen(s) : 0}; };
    info.protocol = put(wolfSSL_get_version(ssl_));
    info.cipher = put(wolfSSL_get_cipher_name(ssl_));
    if (!client_) info.server_name = put(wolfSSL_get_servername(ssl_, WOLFSSL_SNI_HOST_NAME));
    char *alpn = nullptr;
    unsigned short alpn_len = 0;
    if (wolfSSL_ALPN_GetProtocol(ssl_, &alpn, &alpn_len) == WOLFSSL_SUCCESS && alpn) info.alpn = {alpn, alpn_len};
    info.resumed = wolfSSL_session_reused(ssl_) != 0;
    host_->transport_set_info(conn_, &info);
}

}  // namespace atlas::tls
