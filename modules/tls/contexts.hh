// Per-worker wolfSSL contexts. Each worker builds its own from the config's PEM text, so
// no context (and no reference count lock inside wolfSSL) is shared between threads.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.hh"
#include "tickets.hh"

struct WOLFSSL;
struct WOLFSSL_CTX;
struct WOLFSSL_SESSION;

namespace atlas::tls {

// The listener side: one context per certificate, the first the default; SNI switches
// a handshake to the context of the certificate naming the host.
class server_contexts {
public:
    explicit server_contexts(const server_config &cfg);  // throws std::runtime_error
    ~server_contexts();
    server_contexts(const server_contexts &) = delete;
    server_contexts &operator=(const server_contexts &) = delete;

    WOLFSSL *new_session() const;  // nullptr when out of memory

private:
    static int on_server_name(WOLFSSL *ssl, int *alert, void *self);
    WOLFSSL_CTX *for_name(const std::string &lower_name) const;  // nullptr = no certificate names it

    const server_config &cfg_;
    std::vector<WOLFSSL_CTX *> ctx_;
    std::unordered_map<std::string, size_t> exact_;     // host -> certificate
    std::unordered_map<std::string, size_t> wildcard_;  // ".example.com" -> certificate
    std::unique_ptr<ticket_keys> tickets_;
};

// The upstream side: one context, and the last session of every server for resumption.
class client_context {
public:
    explicit client_context(const client_config &cfg);  // throws std::runtime_error
    ~client_context();
    client_context(const client_context &) = delete;
    client_context &operator=(const client_context &) = delete;

    WOLFSSL *new_session(const std::string &peer) const;
    // Keep `ssl`'s session for the next connection to `peer`.
    void remember(const std::string &peer, WOLFSSL *ssl);

    const client_config &cfg;

private:
    WOLFSSL_CTX *ctx_ = nullptr;
    bool send_sni_ = false;     // server_name is a host name (an IP literal is not sent)
    std::string alpn_list_;     // "a,b": wolfSSL_UseALPN's form of cfg.proto.alpn
    std::unordered_map<std::string, WOLFSSL_SESSION *> sessions_;
};

// wolfSSL's I/O callbacks, set on every context: they move bytes between wolfSSL and the
// connection object (connection.hh), never a socket.
int io_recv(WOLFSSL *ssl, char *buf, int size, void *conn);
int io_send(WOLFSSL *ssl, char *buf, int size, void *conn);

}  // namespace atlas::tls
