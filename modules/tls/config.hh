// mod_tls's configuration: the listener side (certificates chosen by SNI) and the
// client side (an upstream's `tls` table), read from the JSON the host hands over.
// Certificate and key files are read and checked here, at config time, so `atlasd -t`
// and a reload name the file and the problem; workers build their contexts from the
// PEM text kept in memory and never open a file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atlas::tls {

// One certificate chain and its key, and the host names it serves.
struct certificate {
    std::string cert_path, key_path;
    std::string cert_pem, key_pem;     // file contents
    std::vector<std::string> names;    // lowercase; "*.example.com" matches one label
};

// What both sides share.
struct protocol_settings {
    int min_version = 0x0303;      // TLS 1.2 (the wire version)
    int max_version = 0x0304;      // TLS 1.3
    std::string cipher_list;       // wolfSSL's form, TLS 1.3 suites first, ':'-separated
    std::vector<int> groups;       // wolfSSL group ids, in preference order
    std::vector<std::string> alpn; // in preference order; empty = no ALPN
};

struct server_config {
    protocol_settings proto;
    std::vector<certificate> certs;  // [0] is the default
    bool strict_sni = false;         // refuse a client naming no configured certificate
    bool session_tickets = true;
    bool session_cache = true;       // TLS 1.2 session IDs
    uint32_t ticket_lifetime_s = 3600;  // and how often ticket keys rotate
    std::string key;                 // config path of the table, keeps ticket keys per listener
};

struct client_config {
    protocol_settings proto;
    bool verify = true;
    std::string ca_path;             // empty + verify: the system's CA store
    std::string ca_pem;
    std::string server_name;         // SNI sent and the name verified; empty = none / not checked
    bool has_client_cert = false;
    certificate client_cert;         // presented when the server asks
    bool session_reuse = true;
};

// The suites used when the config gives none, TLS 1.3 or 1.2: the AEAD this build runs
// fastest first (AES-GCM when aes_accelerated(), else ChaCha20-Poly1305); and both as one
// wolfSSL cipher list.
std::vector<std::string> default_suites(bool tls13);
std::string default_cipher_list();
// True when AES-GCM runs on AES-NI: mod_tls's device (offload.hh, either build) or, with
// the device off, the tuned build's own code, on a CPU that has it.
bool aes_accelerated();

// Parse a table; throw std::runtime_error("key: reason"). `base_dir` resolves relative paths.
server_config *parse_server(std::string_view json, std::string_view key, std::string_view base_dir);
client_config *parse_client(std::string_view json, std::string_view key, std::string_view base_dir);

// Loads the PEM text of `c` into a fresh context and checks it (PEM, key matches, not
// expired); throws std::runtime_error naming `where` and the file on failure. With
// `take_names`, c.names become the certificate's DNS names (else its CN).
void check_certificate(certificate &c, const std::string &where, bool allow_expired, bool take_names);

}  // namespace atlas::tls
