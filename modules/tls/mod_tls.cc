// mod_tls: TLS termination (and origination) with wolfSSL, as an Atlas transport.
// wolfSSL reads and writes through memory callbacks; the core owns the socket.
//
// A listener's transport:
//   chain = [{ module = "tls",
//              cert = "site.pem", key = "site.key",      # the default certificate, or:
//              certificates = [{ cert, key, names = ["a.example", "*.b.example"] }, ...],
//                                              # names default to the cert's DNS SANs (else CN);
//                                              # the first certificate is the default
//              min_version = "1.2", max_version = "1.3",
//              ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305:...",  # TLS 1.2, server order
//              ciphersuites = "TLS_CHACHA20_POLY1305_SHA256:...", # TLS 1.3, server order
//              groups = ["x25519", "P-256", "P-384"],
//              alpn = ["http/1.1"],          # [] = no ALPN
//              strict_sni = false,           # true: refuse names no certificate serves
//              session_tickets = true, session_cache = true, ticket_lifetime = "1h",
//              allow_expired = false }, { module = "http" }]
// An upstream's client side:
//   [upstream.NAME] tls = { ca = "ca.pem" | "system", verify = true, sni = "api.internal",
//                           cert, key, min_version, max_version, ciphers, ciphersuites,
//                           groups, alpn, session_reuse = true }
#include <atlas/module.hpp>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <memory>
#include <string>

#include "config.hh"
#include "connection.hh"
#include "contexts.hh"
#include "offload.hh"

namespace {

using atlas::module::view;
namespace tls = atlas::tls;

atlas::module::context ctx;

// A config object is one side or the other; the shared lifecycle hooks tell them apart.
struct config_box {
    std::unique_ptr<tls::server_config> server;
    std::unique_ptr<tls::client_config> client;
};
struct worker_box {
    std::unique_ptr<tls::server_contexts> server;
    std::unique_ptr<tls::client_context> client;
};

std::string base_dir() { return std::string(view(ctx.host->config_dir())); }

void *server_config_create(atlas_slice_t json, atlas_slice_t key, atlas_error_t *err) noexcept {
    return atlas::module::guard_config(err, [&]() -> void * {
        auto b = std::make_unique<config_box>();
        b->server.reset(tls::parse_server(view(json), view(key), base_dir()));
        return b.release();
    });
}

void *client_config_create(atlas_slice_t json, atlas_slice_t key, atlas_error_t *err) noexcept {
    return atlas::module::guard_config(err, [&]() -> void * {
        auto b = std::make_unique<config_box>();
        b->client.reset(tls::parse_client(view(json), view(key), base_dir()));
        return b.release();
    });
}

void config_destroy(void *c) noexcept { delete static_cast<config_box *>(c); }

void *worker_init(void *c, atlas_worker_t *) noexcept {
    return atlas::module::guard(ctx, static_cast<void *>(nullptr), [&]() -> void * {
        auto *cfg = static_cast<config_box *>(c);
        auto w = std::make_unique<worker_box>();
        if (cfg->server) w->server = std::make_unique<tls::server_contexts>(*cfg->server);
        else w->client = std::make_unique<tls::client_context>(*cfg->client);
        return w.release();
    });
}

void worker_destroy(void *, void *w) noexcept {
    delete static_cast<worker_box *>(w);
#ifdef FP_ECC
    // wolfSSL caches ECC points per thread (FP_ECC) and only this frees them (valgrind saw
    // ~800 KiB definitely lost per worker at exit). A later handshake here rebuilds it.
    wc_ecc_fp_free();
#endif
}

void *conn_open(void *, void *w, atlas_conn_t *conn) noexcept {
    return atlas::module::guard(ctx, static_cast<void *>(nullptr), [&]() -> void * {
        auto *wb = static_cast<worker_box *>(w);
        if (!wb || !wb->server) return nullptr;
        WOLFSSL *ssl = wb->server->new_session();
        if (!ssl) return nullptr;
        return new tls::connection(ctx.host, conn, ssl, nullptr, {});
    });
}

void *client_open(void *, void *w, atlas_conn_t *conn) noexcept {
    return atlas::module::guard(ctx, static_cast<void *>(nullptr), [&]() -> void * {
        auto *wb = static_cast<worker_box *>(w);
        if (!wb || !wb->client) return nullptr;
        std::string peer(view(ctx.host->conn_peer(conn)));  // the key of its saved session
        WOLFSSL *ssl = wb->client->new_session(peer);
        if (!ssl) return nullptr;
        auto c = std::make_unique<tls::connection>(ctx.host, conn, ssl, wb->client.get(), std::move(peer));
        if (c->start() < 0) return nullptr;
        return c.release();
    });
}

int32_t on_wire(void *s, atlas_conn_t *, atlas_slice_t wire) noexcept {
    return atlas::module::guard(ctx, int32_t(ATLAS_ERROR), [&] { return static_cast<tls::connection *>(s)->on_wire(wire); });
}

int32_t on_plain(void *s, atlas_conn_t *, const atlas_iovec_t *iov, size_t n) noexcept {
    return atlas::module::guard(ctx, int32_t(ATLAS_ERROR), [&] { return static_cast<tls::connection *>(s)->on_plain(iov, n); });
}

void on_shutdown(void *s, atlas_conn_t *) noexcept {
    atlas::module::guard_void(ctx, [&] { static_cast<tls::connection *>(s)->on_shutdown(); });
}

void conn_close(void *s) noexcept { delete static_cast<tls::connection *>(s); }

const atlas_transport_t transport = {
    sizeof(atlas_transport_t),
    server_config_create,
    config_destroy,
    worker_init,
    worker_destroy,
    conn_open,
    on_wire,
    on_plain,
    on_shutdown,
    conn_close,
    client_config_create,
    client_open,
};

const atlas_module_t descriptor = {
    ATLAS_MODULE_HEAD, "tls", "0.1.0", "TLS 1.2/1.3 termination and origination (wolfSSL)",
    nullptr, nullptr, nullptr, &transport, nullptr,
};

}  // namespace

void atlas::tls::log(atlas_log_level_t level, const std::string &line) { ctx.log(level, line); }

extern "C" ATLAS_EXPORT const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host) {
    if (!host || host->abi_major != ATLAS_ABI_MAJOR || host->abi_minor < 3 ||
        !ATLAS_HAS_FIELD(atlas_host_api_t, host, transport_set_info))
        return nullptr;  // needs transport_eof / transport_set_info (ABI 1.3)
    ctx.host = host;
    ctx.self = &descriptor;
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        ctx.log(ATLAS_LOG_ERROR, "wolfSSL_Init failed");
        return nullptr;
    }
    tls::offload::outcome aes = tls::offload::start();
    ctx.log(aes.trouble ? ATLAS_LOG_WARN : ATLAS_LOG_INFO, aes.line);
    return &descriptor;
}
