#include "config.hh"

// wolfSSL's build options come first: they decide what its other headers declare.
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <sys/stat.h>

#include <atlas/module.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "offload.hh"

namespace atlas::tls {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string &key, const std::string &why) { throw std::runtime_error(key + ": " + why); }

struct ctx_deleter {
    void operator()(WOLFSSL_CTX *c) const { wolfSSL_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<WOLFSSL_CTX, ctx_deleter>;
struct x509_deleter {
    void operator()(WOLFSSL_X509 *x) const { wolfSSL_X509_free(x); }
};

std::string lower(std::string s) {
    for (char &c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string text(const json &v, const std::string &key) {
    if (!v.is_string() || v.get<std::string>().empty()) bad(key, "must be a non-empty string");
    return v.get<std::string>();
}

bool flag(const json &v, const std::string &key) {
    if (!v.is_boolean()) bad(key, "must be true or false");
    return v.get<bool>();
}

std::vector<std::string> text_list(const json &v, const std::string &key, char separator) {
    std::vector<std::string> out;
    if (v.is_string()) {
        std::string s = v.get<std::string>(), item;
        std::istringstream in(s);
        while (std::getline(in, item, separator)) {
            item.erase(0, item.find_first_not_of(' '));
            item.erase(item.find_last_not_of(' ') + 1);
            if (!item.empty()) out.push_back(item);
        }
    } else if (v.is_array()) {
        for (size_t i = 0; i < v.size(); ++i) out.push_back(text(v[i], key + "[" + std::to_string(i) + "]"));
    } else {
        bad(key, "must be a list of strings");
    }
    return out;
}

std::string resolve(const std::string &path, std::string_view base_dir) {
    if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
    return std::string(base_dir) + "/" + path;
}

// The whole file, or a message naming it and why it cannot be read.
std::string read_file(const std::string &path, const std::string &key) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) bad(key, "cannot read '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) bad(key, "'" + path + "' is not a regular file");
    if (st.st_size > (16 << 20)) bad(key, "'" + path + "' is larger than 16 MiB: not a certificate or key");
    std::ifstream in(path, std::ios::binary);
    if (!in) bad(key, "cannot read '" + path + "': " + std::strerror(errno ? errno : EACCES));
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) bad(key, "cannot read '" + path + "': " + std::strerror(errno));
    return s.str();
}

// "1.2" / "1.3" -> the wire version.
int version(const json &v, const std::string &key) {
    std::string s = v.is_string() ? v.get<std::string>() : v.is_number() ? v.dump() : "";
    if (s == "1.2" || s == "TLSv1.2") return 0x0303;
    if (s == "1.3" || s == "TLSv1.3") return 0x0304;
    if (s == "1.0" || s == "1.1" || s == "TLSv1" || s == "TLSv1.1")
        bad(key, "TLS " + s + " is not offered (it is deprecated by RFC 8996): use \"1.2\" or \"1.3\"");
    bad(key, "must be \"1.2\" or \"1.3\"");
}

uint32_t seconds(const json &v, const std::string &key) {
    if (v.is_number_unsigned()) return v.get<uint32_t>();
    uint64_t ms = 0;
    if (!v.is_string() || !atlas::module::parse_duration_ms(v.get<std::string>(), ms))
        bad(key, v.is_string() ? "bad duration \"" + v.get<std::string>() + "\" (use e.g. \"1h\" or \"30m\")"
                               : std::string("must be a duration like \"1h\" or \"30m\""));
    return uint32_t(std::min<uint64_t>(ms / 1000, 7 * 86400));
}

// TLS 1.3 suite names as IANA (and OpenSSL) spell them -> wolfSSL's.
std::string wolfssl_suite_name(const std::string &name) {
    static const std::pair<const char *, const char *> iana[] = {
        {"TLS_AES_128_GCM_SHA256", "TLS13-AES128-GCM-SHA256"},
        {"TLS_AES_256_GCM_SHA384", "TLS13-AES256-GCM-SHA384"},
        {"TLS_CHACHA20_POLY1305_SHA256", "TLS13-CHACHA20-POLY1305-SHA256"},
        {"TLS_AES_128_CCM_SHA256", "TLS13-AES128-CCM-SHA256"},
        {"TLS_AES_128_CCM_8_SHA256", "TLS13-AES128-CCM-8-SHA256"},
    };
    for (auto &[a, w] : iana)
        if (name == a) return w;
    return name;
}

// Each name must be one wolfSSL knows: a typo would otherwise silently drop a suite.
void check_suites(const std::vector<std::string> &names, const std::string &key, bool tls13) {
    ctx_ptr probe(wolfSSL_CTX_new(wolfSSLv23_method()));
    if (!probe) bad(key, "cannot create a TLS context to check cipher names");
    for (const std::string &n : names) {
        if (wolfSSL_CTX_set_cipher_list(probe.get(), n.c_str()) != WOLFSSL_SUCCESS)
            bad(key, "unknown cipher '" + n + "'");
        bool is13 = n.rfind("TLS13-", 0) == 0;
        if (tls13 != is13)
            bad(key, "'" + n + "' is a TLS " + (is13 ? "1.3 suite: list it under ciphersuites" : "1.2 cipher: list it under ciphers"));
    }
}

std::string join(const std::vector<std::string> &v, const char *sep) {
    std::string out;
    for (const std::string &s : v) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

int group_id(const std::string &name, const std::string &key) {
    std::string n = lower(name);
    if (n == "x25519") return WOLFSSL_ECC_X25519;
    if (n == "x448") return WOLFSSL_ECC_X448;
    if (n == "p-256" || n == "secp256r1" || n == "prime256v1") return WOLFSSL_ECC_SECP256R1;
    if (n == "p-384" || n == "secp384r1") return WOLFSSL_ECC_SECP384R1;
    if (n == "p-521" || n == "secp521r1") return WOLFSSL_ECC_SECP521R1;
    if (n == "ffdhe2048") return WOLFSSL_FFDHE_2048;
    if (n == "ffdhe3072") return WOLFSSL_FFDHE_3072;
    bad(key, "unknown group '" + name + "' (x25519, x448, P-256, P-384, P-521, ffdhe2048, ffdhe3072)");
}

// Keys both sides read; false when `k` is not one of them.
bool read_protocol(protocol_settings &p, const std::string &k, const json &v, const std::string &key,
                   std::vector<std::string> &tls12, std::vector<std::string> &tls13) {
    if (k == "min_version") p.min_version = version(v, key);
    else if (k == "max_version") p.max_version = version(v, key);
    else if (k == "ciphers") {
        tls12 = text_list(v, key, ':');
        check_suites(tls12, key, false);
    } else if (k == "ciphersuites") {
        tls13 = text_list(v, key, ':');
        for (std::string &s : tls13) s = wolfssl_suite_name(s);
        check_suites(tls13, key, true);
    } else if (k == "groups") {
        p.groups.clear();
        for (const std::string &g : text_list(v, key, ':')) p.groups.push_back(group_id(g, key));
        if (p.groups.empty()) bad(key, "must name at least one group");
    } else if (k == "alpn") {
        p.alpn = text_list(v, key, ',');
        for (const std::string &a : p.alpn)
            if (a.size() > 255) bad(key, "a protocol name is at most 255 bytes");
    } else {
        return false;
    }
    return true;
}

// A side the config leaves out (or lists empty) keeps this build's default order.
void finish_protocol(protocol_settings &p, const std::string &key, std::vector<std::string> tls12,
                     std::vector<std::string> tls13) {
    if (p.min_version > p.max_version) bad(key + ".min_version", "is above max_version");
    if (p.groups.empty()) p.groups = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
    if (tls13.empty()) tls13 = default_suites(true);
    if (tls12.empty()) tls12 = default_suites(false);
    tls13.insert(tls13.end(), tls12.begin(), tls12.end());
    p.cipher_list = join(tls13, ":");
}

certificate read_certificate(const json &t, const std::string &key, std::string_view base_dir, bool allow_expired) {
    certificate c;
    bool names_given = false;
    for (auto &[k, v] : t.items()) {
        if (k == "cert") c.cert_path = resolve(text(v, key + ".cert"), base_dir);
        else if (k == "key") c.key_path = resolve(text(v, key + ".key"), base_dir);
        else if (k == "names") {
            for (const std::string &n : text_list(v, key + ".names", ',')) c.names.push_back(lower(n));
            names_given = true;
        } else bad(key + "." + k, "unknown key (cert, key, names)");
    }
    if (c.cert_path.empty()) bad(key, "needs cert (a PEM certificate chain file)");
    if (c.key_path.empty()) bad(key, "needs key (the PEM private key of cert)");
    c.cert_pem = read_file(c.cert_path, key + ".cert");
    c.key_pem = read_file(c.key_path, key + ".key");
    check_certificate(c, key, allow_expired, !names_given);
    return c;
}

}  // namespace

bool aes_accelerated() {
    if (offload::device() != INVALID_DEVID) return true;
#if defined(WOLFSSL_AESNI)
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#else
    return false;
#endif
}

std::vector<std::string> default_suites(bool tls13) {
    // Only AEADs with forward secrecy. The faster AEAD of this build leads; the server's
    // order decides (wolfSSL's default), so every client gets it when it offers it.
    std::vector<std::string> chacha, aes;
    if (tls13) {
        chacha = {"TLS13-CHACHA20-POLY1305-SHA256"};
        aes = {"TLS13-AES128-GCM-SHA256", "TLS13-AES256-GCM-SHA384"};
    } else {
        chacha = {"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"};
        aes = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
               "ECDHE-RSA-AES256-GCM-SHA384"};
    }
    std::vector<std::string> &first = aes_accelerated() ? aes : chacha, &second = aes_accelerated() ? chacha : aes;
    first.insert(first.end(), second.begin(), second.end());
    return first;
}

std::string default_cipher_list() {
    std::vector<std::string> all = default_suites(true), tls12 = default_suites(false);
    all.insert(all.end(), tls12.begin(), tls12.end());
    return join(all, ":");
}

void check_certificate(certificate &c, const std::string &where, bool allow_expired, bool take_names) {
    if (c.cert_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
        bad(where + ".cert", "'" + c.cert_path + "' is not a PEM certificate (no BEGIN CERTIFICATE line)");
    if (c.key_pem.find("PRIVATE KEY-----") == std::string::npos)
        bad(where + ".key", "'" + c.key_path + "' is not a PEM private key (no BEGIN ... PRIVATE KEY line)");
    if (c.key_pem.find("ENCRYPTED PRIVATE KEY") != std::string::npos || c.key_pem.find("Proc-Type: 4,ENCRYPTED") != std::string::npos)
        bad(where + ".key", "'" + c.key_path + "' is encrypted with a passphrase: atlasd needs it unencrypted");
    ctx_ptr ctx(wolfSSL_CTX_new(wolfSSLv23_server_method()));
    if (!ctx) bad(where, "cannot create a TLS context (out of memory?)");
    auto cert = reinterpret_cast<const unsigned char *>(c.cert_pem.data());
    auto key = reinterpret_cast<const unsigned char *>(c.key_pem.data());
    if (wolfSSL_CTX_use_certificate_chain_buffer_format(ctx.get(), cert, long(c.cert_pem.size()), WOLFSSL_FILETYPE_PEM) !=
        WOLFSSL_SUCCESS)
        bad(where + ".cert", "'" + c.cert_path + "' is not a valid PEM certificate chain");
    if (wolfSSL_CTX_use_PrivateKey_buffer(ctx.get(), key, long(c.key_pem.size()), WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        bad(where + ".key", "'" + c.key_path + "' is not a usable PEM private key");
    if (wolfSSL_CTX_check_private_key(ctx.get()) != WOLFSSL_SUCCESS)
        bad(where + ".key", "'" + c.key_path + "' does not match the certificate in '" + c.cert_path + "'");

    std::unique_ptr<WOLFSSL_X509, x509_deleter> x(
        wolfSSL_X509_load_certificate_buffer(cert, int(c.cert_pem.size()), WOLFSSL_FILETYPE_PEM));
    if (!x) bad(where + ".cert", "'" + c.cert_path + "' is not a valid PEM certificate");
    char when[64] = "";
    if (WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x.get())) {
        wolfSSL_ASN1_TIME_to_string(na, when, sizeof when);
        if (!allow_expired && wolfSSL_X509_cmp_current_time(na) < 0)
            bad(where + ".cert", "'" + c.cert_path + "' expired on " + std::string(when) +
                                     " (renew it, or set allow_expired = true)");
    }
    if (WOLFSSL_ASN1_TIME *nb = wolfSSL_X509_get_notBefore(x.get())) {
        if (!allow_expired && wolfSSL_X509_cmp_current_time(nb) > 0) {
            char from[64] = "";
            wolfSSL_ASN1_TIME_to_string(nb, from, sizeof from);
            bad(where + ".cert", "'" + c.cert_path + "' is not valid before " + std::string(from) +
                                     " (check the clock, or set allow_expired = true)");
        }
    }
    // The names it serves: its DNS subject alternative names, else its common name.
    if (take_names) {
        while (char *n = wolfSSL_X509_get_next_altname(x.get())) c.names.push_back(lower(n));
        if (c.names.empty()) {
            char cn[256] = "";
            if (WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(x.get()))
                if (wolfSSL_X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn) > 0) c.names.push_back(lower(cn));
        }
    }
}

server_config *parse_server(std::string_view text_in, std::string_view key_in, std::string_view base_dir) {
    json j = json::parse(text_in);
    if (!j.is_object()) bad("tls", "must be a table");
    auto c = std::make_unique<server_config>();
    c->key = std::string(key_in);
    c->proto.alpn = {"http/1.1"};
    std::vector<std::string> tls12, tls13;
    bool allow_expired = false;
    json top = json::object();  // a flat cert/key: the seed's [listen.tls] and the short form
    const json *list = nullptr;
    if (auto it = j.find("allow_expired"); it != j.end()) allow_expired = flag(*it, "allow_expired");
    for (auto &[k, v] : j.items()) {
        if (k == "allow_expired") continue;  // read first: the certificates need it
        if (read_protocol(c->proto, k, v, k, tls12, tls13)) continue;
        if (k == "cert" || k == "key" || k == "names") top[k] = v;
        else if (k == "certificates") {
            if (!v.is_array() || v.empty()) bad(k, "must be a list of { cert, key, names } tables");
            list = &v;
        } else if (k == "strict_sni") c->strict_sni = flag(v, k);
        else if (k == "session_tickets") c->session_tickets = flag(v, k);
        else if (k == "session_cache") c->session_cache = flag(v, k);
        else if (k == "ticket_lifetime") {
            c->ticket_lifetime_s = seconds(v, k);
            if (c->ticket_lifetime_s < 60) bad(k, "must be at least 1m");
        } else {
            bad(k, "unknown key (cert, key, names, certificates, min_version, max_version, ciphers, ciphersuites, "
                   "groups, alpn, strict_sni, session_tickets, session_cache, ticket_lifetime, allow_expired)");
        }
    }
    if (!top.empty()) c->certs.push_back(read_certificate(top, "tls", base_dir, allow_expired));
    if (list) {
        for (size_t i = 0; i < list->size(); ++i) {
            std::string k = "certificates[" + std::to_string(i) + "]";
            if (!(*list)[i].is_object()) bad(k, "must be a { cert, key, names } table");
            c->certs.push_back(read_certificate((*list)[i], k, base_dir, allow_expired));
        }
    }
    if (c->certs.empty()) bad("tls", "needs a certificate: cert and key, or certificates = [{ cert, key }]");
    finish_protocol(c->proto, "tls", std::move(tls12), std::move(tls13));
    return c.release();
}

client_config *parse_client(std::string_view text_in, std::string_view, std::string_view base_dir) {
    json j = json::parse(text_in);
    if (!j.is_object()) bad("tls", "must be a table");
    auto c = std::make_unique<client_config>();
    std::vector<std::string> tls12, tls13;
    json cert = json::object();
    for (auto &[k, v] : j.items()) {
        if (read_protocol(c->proto, k, v, k, tls12, tls13)) continue;
        if (k == "verify") c->verify = flag(v, k);
        else if (k == "ca") {
            std::string ca = text(v, k);
            if (ca != "system") c->ca_path = resolve(ca, base_dir);
        } else if (k == "sni" || k == "server_name") {
            c->server_name = lower(text(v, k));
        } else if (k == "cert" || k == "key") {
            cert[k] = v;
        } else if (k == "session_reuse") {
            c->session_reuse = flag(v, k);
        } else {
            bad(k, "unknown key (verify, ca, sni, cert, key, min_version, max_version, ciphers, ciphersuites, "
                   "groups, alpn, session_reuse)");
        }
    }
    if (!c->ca_path.empty()) {
        c->ca_pem = read_file(c->ca_path, "ca");
        if (c->ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
            bad("ca", "'" + c->ca_path + "' holds no PEM certificate");
        ctx_ptr probe(wolfSSL_CTX_new(wolfSSLv23_client_method()));
        if (!probe || wolfSSL_CTX_load_verify_buffer(probe.get(), reinterpret_cast<const unsigned char *>(c->ca_pem.data()),
                                                     long(c->ca_pem.size()), WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
            bad("ca", "'" + c->ca_path + "' is not a valid PEM certificate bundle");
    }
    if (!cert.empty()) {
        c->client_cert = read_certificate(cert, "tls", base_dir, false);
        c->has_client_cert = true;
    }
    finish_protocol(c->proto, "tls", std::move(tls12), std::move(tls13));
    return c.release();
}

}  // namespace atlas::tls
