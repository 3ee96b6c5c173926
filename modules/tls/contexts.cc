#include "contexts.hh"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>

#include <stdexcept>

#include "offload.hh"

namespace atlas::tls {

namespace {

std::string wolfssl_error(const char *what) {
    char buf[128];
    wolfSSL_ERR_error_string_n(wolfSSL_ERR_get_error(), buf, sizeof buf);
    return std::string(what) + " (" + buf + ")";
}

// The protocol settings both sides share.
void apply(WOLFSSL_CTX *ctx, const protocol_settings &p) {
    if (wolfSSL_CTX_SetMinVersion(ctx, p.min_version >= 0x0304 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS)
        throw std::runtime_error(wolfssl_error("cannot set min_version"));
    if (p.max_version < 0x0304 && wolfSSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != WOLFSSL_SUCCESS)
        throw std::runtime_error(wolfssl_error("cannot set max_version"));
    if (wolfSSL_CTX_set_cipher_list(ctx, p.cipher_list.c_str()) != WOLFSSL_SUCCESS)
        throw std::runtime_error(wolfssl_error("cannot set the cipher list"));
    std::vector<int> groups = p.groups;
    if (wolfSSL_CTX_set_groups(ctx, groups.data(), int(groups.size())) != WOLFSSL_SUCCESS)
        throw std::runtime_error(wolfssl_error("cannot set the key exchange groups"));
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    if (offload::device() != INVALID_DEVID) wolfSSL_CTX_SetDevId(ctx, offload::device());  // AES-GCM records
}

// Server ALPN: our first protocol the client also offers. With none in common the
// handshake goes on without ALPN (OpenSSL's NOACK; wolfSSL 5.5 cannot fail it from here),
// and the HTTP codec answers whatever the client then sends.
int select_alpn(WOLFSSL *, const unsigned char **out, unsigned char *out_len, const unsigned char *in,
                unsigned int in_len, void *arg) {
    const auto *ours = static_cast<const std::vector<std::string> *>(arg);
    for (const std::string &p : *ours) {
        for (unsigned int i = 0; i < in_len;) {
            unsigned int n = in[i];
            if (i + 1 + n > in_len) return noack_return;  // malformed list
            if (n == p.size() && std::equal(p.begin(), p.end(), in + i + 1)) {
                *out = in + i + 1;
                *out_len = static_cast<unsigned char>(n);
                return 0;  // SSL_TLSEXT_ERR_OK
            }
            i += 1 + n;
        }
    }
    return noack_return;
}

// The chain and key of `c` (checked at config time) into `ctx`.
void use_certificate(WOLFSSL_CTX *ctx, const certificate &c) {
    auto pem = [](const std::string &text) { return reinterpret_cast<const unsigned char *>(text.data()); };
    if (wolfSSL_CTX_use_certificate_chain_buffer_format(ctx, pem(c.cert_pem), long(c.cert_pem.size()),
                                                        WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_buffer(ctx, pem(c.key_pem), long(c.key_pem.size()), WOLFSSL_FILETYPE_PEM) !=
            WOLFSSL_SUCCESS)
        throw std::runtime_error(wolfssl_error(("cannot load " + c.cert_path).c_str()));
}

struct ctx_guard {
    WOLFSSL_CTX *ctx;
    ~ctx_guard() {
        if (ctx) wolfSSL_CTX_free(ctx);
    }
};

bool is_ip_literal(const std::string &name) {
    unsigned char buf[16];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

server_contexts::server_contexts(const server_config &cfg) : cfg_(cfg) {
    if (cfg.session_tickets) tickets_ = std::make_unique<ticket_keys>(cfg.key, cfg.ticket_lifetime_s);
    for (size_t i = 0; i < cfg.certs.size(); ++i) {
        const certificate &c = cfg.certs[i];
        ctx_guard g{wolfSSL_CTX_new(wolfSSLv23_server_method())};
        if (!g.ctx) throw std::runtime_error("cannot create a TLS context (out of memory)");
        apply(g.ctx, cfg.proto);
        use_certificate(g.ctx, c);
        wolfSSL_CTX_set_verify(g.ctx, WOLFSSL_VERIFY_NONE, nullptr);
        wolfSSL_CTX_set_servername_callback(g.ctx, on_server_name);
        wolfSSL_CTX_set_servername_arg(g.ctx, this);
        if (!cfg.proto.alpn.empty())
            wolfSSL_CTX_set_alpn_select_cb(g.ctx, select_alpn, const_cast<std::vector<std::string> *>(&cfg.proto.alpn));
        if (tickets_) {
            wolfSSL_CTX_set_TicketEncCb(g.ctx, ticket_keys::callback);
            wolfSSL_CTX_set_TicketEncCtx(g.ctx, tickets_.get());
            wolfSSL_CTX_set_TicketHint(g.ctx, int(cfg.ticket_lifetime_s));
        } else {
            wolfSSL_CTX_NoTicketTLSv12(g.ctx);
            wolfSSL_CTX_no_ticket_TLSv13(g.ctx);
        }
        if (!cfg.session_cache) wolfSSL_CTX_set_session_cache_mode(g.ctx, WOLFSSL_SESS_CACHE_OFF);
        ctx_.push_back(g.ctx);
        g.ctx = nullptr;
        for (const std::string &n : c.names) {
            if (n.size() > 2 && n[0] == '*' && n[1] == '.') wildcard_.emplace(n.substr(1), i);
            else exact_.emplace(n, i);  // the first certificate naming a host keeps it
        }
    }
}

server_contexts::~server_contexts() {
    for (WOLFSSL_CTX *c : ctx_) wolfSSL_CTX_free(c);
}

WOLFSSL *server_contexts::new_session() const { return wolfSSL_new(ctx_.front()); }

WOLFSSL_CTX *server_contexts::for_name(const std::string &name) const {
    if (auto it = exact_.find(name); it != exact_.end()) return ctx_[it->second];
    size_t dot = name.find('.');
    if (dot != std::string::npos && dot > 0)
        if (auto it = wildcard_.find(name.substr(dot)); it != wildcard_.end()) return ctx_[it->second];
    return nullptr;
}

int server_contexts::on_server_name(WOLFSSL *ssl, int *alert, void *arg) {
    auto *self = static_cast<server_contexts *>(arg);
    const char *sni = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
    if (!sni || !*sni) return 0;  // no name: the default certificate
    std::string name(sni);
    for (char &ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (!name.empty() && name.back() == '.') name.pop_back();
    WOLFSSL_CTX *ctx = self->for_name(name);
    if (!ctx) {
        if (!self->cfg_.strict_sni) return 0;
        *alert = unrecognized_name;
        return fatal_return;
    }
    if (ctx != self->ctx_.front() && !wolfSSL_set_SSL_CTX(ssl, ctx)) {
        *alert = internal_error;
        return fatal_return;
    }
    return 0;
}

client_context::client_context(const client_config &c) : cfg(c) {
    ctx_guard g{wolfSSL_CTX_new(wolfSSLv23_client_method())};
    if (!g.ctx) throw std::runtime_error("cannot create a TLS context (out of memory)");
    apply(g.ctx, c.proto);
    if (c.verify) {
        int ok = c.ca_pem.empty()
                     ? wolfSSL_CTX_load_system_CA_certs(g.ctx)
                     : wolfSSL_CTX_load_verify_buffer(g.ctx, reinterpret_cast<const unsigned char *>(c.ca_pem.data()),
                                                      long(c.ca_pem.size()), WOLFSSL_FILETYPE_PEM);
        if (ok != WOLFSSL_SUCCESS) throw std::runtime_error(wolfssl_error("cannot load the CA certificates"));
        wolfSSL_CTX_set_verify(g.ctx, WOLFSSL_VERIFY_PEER, nullptr);
    } else {
        wolfSSL_CTX_set_verify(g.ctx, WOLFSSL_VERIFY_NONE, nullptr);
    }
    if (c.has_client_cert) use_certificate(g.ctx, c.client_cert);
    send_sni_ = !c.server_name.empty() && !is_ip_literal(c.server_name);
    for (const std::string &p : c.proto.alpn) alpn_list_ += (alpn_list_.empty() ? "" : ",") + p;
    ctx_ = g.ctx;
    g.ctx = nullptr;
}

client_context::~client_context() {
    for (auto &[peer, s] : sessions_) wolfSSL_SESSION_free(s);
    wolfSSL_CTX_free(ctx_);
}

WOLFSSL *client_context::new_session(const std::string &peer) const {
    WOLFSSL *ssl = wolfSSL_new(ctx_);
    if (!ssl) return nullptr;
    const std::string &name = cfg.server_name;
    if (send_sni_) wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, name.data(), static_cast<unsigned short>(name.size()));
    if (cfg.verify && !name.empty()) wolfSSL_check_domain_name(ssl, name.c_str());
    if (!alpn_list_.empty())  // wolfSSL parses the list into its own copy
        wolfSSL_UseALPN(ssl, const_cast<char *>(alpn_list_.data()), unsigned(alpn_list_.size()),
                        WOLFSSL_ALPN_FAILED_ON_MISMATCH);
    if (cfg.session_reuse)
        if (auto it = sessions_.find(peer); it != sessions_.end()) wolfSSL_set_session(ssl, it->second);
    return ssl;
}

void client_context::remember(const std::string &peer, WOLFSSL *ssl) {
    if (!cfg.session_reuse) return;
    WOLFSSL_SESSION *s = wolfSSL_get1_session(ssl);
    if (!s) return;
    auto [it, fresh] = sessions_.emplace(peer, s);
    if (!fresh) {
        wolfSSL_SESSION_free(it->second);
        it->second = s;
    }
}

}  // namespace atlas::tls
