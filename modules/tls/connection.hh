// One TLS connection driven through memory: wire bytes come from the host (on_wire),
// wolfSSL reads them through io_recv and writes records through io_send, which hands
// them to the host (transport_emit); plain bytes go up with transport_deliver.
#pragma once

#include <atlas/module.h>

#include <memory>
#include <string>

#include "offload.hh"

struct WOLFSSL;

namespace atlas::tls {

class client_context;

// Logs through the host as this module (mod_tls.cc).
void log(atlas_log_level_t level, const std::string &line);

class connection {
public:
    // Takes `ssl`. `client` is set for upstream connections: their session is kept there
    // for resumption, under `peer` (the server's address).
    connection(const atlas_host_api_t *host, atlas_conn_t *conn, WOLFSSL *ssl, client_context *client,
               std::string peer);
    ~connection();
    connection(const connection &) = delete;
    connection &operator=(const connection &) = delete;

    // A client starts its handshake (emits the ClientHello).
    int32_t start();
    int32_t on_wire(atlas_slice_t wire);
    int32_t on_plain(const atlas_iovec_t *iov, size_t iovcnt);
    void on_shutdown();

    // For io_recv / io_send.
    int take(char *buf, int size);
    int emit(const char *buf, int size);

private:
    int32_t advance();
    int32_t handshake();
    int32_t write(const char *data, size_t len);
    int32_t write_iov(const atlas_iovec_t *iov, size_t iovcnt);
    void track_records(const char *p, size_t n);
    bool input_drained() const;
    void publish_info();

    enum class state { handshake, open, failed };

    const atlas_host_api_t *host_;
    atlas_conn_t *conn_;
    WOLFSSL *ssl_;
    client_context *client_;
    std::string peer_;        // upstream address, the key of its saved session
    state st_ = state::handshake;
    const char *in_ = nullptr;  // the wire slice being read, during on_wire
    size_t in_len_ = 0;
    std::string held_in_;       // wire bytes wolfSSL has not taken yet
    std::string held_out_;      // plain bytes queued before the handshake completed
    bool session_saved_ = false;
    // Our close_notify went out: nothing more is written, but the peer's records are
    // still read (a half-close, as TLS 1.3 allows: an L4 relay or a tunnel goes on
    // receiving after passing one side's end on).
    bool sent_close_ = false;
    // Where wolfSSL is in the record stream it has taken (see track_records).
    unsigned char header_[5];
    size_t header_have_ = 0;
    size_t body_left_ = 0;
    bool seen_input_ = false;
    std::unique_ptr<offload::connection_keys> keys_;  // with the AES-GCM device only
};

}  // namespace atlas::tls
