#include "tickets.hh"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <sys/random.h>

#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>

namespace atlas::tls {

namespace {

// Drawn once per process: tickets survive reloads, not restarts (like nginx's
// in-memory keys), and nothing secret is ever written to disk.
const unsigned char *process_secret() {
    static unsigned char secret[32];
    static std::once_flag once;
    std::call_once(once, [] {
        size_t got = 0;
        while (got < sizeof secret) {
            ssize_t n = getrandom(secret + got, sizeof secret - got, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw std::runtime_error("getrandom failed: cannot make session ticket keys");
            got += size_t(n);
        }
    });
    return secret;
}

}  // namespace

ticket_keys::ticket_keys(const std::string &scope, uint32_t lifetime_s) : lifetime_s_(lifetime_s ? lifetime_s : 3600) {
    process_secret();
    wc_Sha256Hash(reinterpret_cast<const byte *>(scope.data()), word32(scope.size()), scope_);
    auto *rng = new WC_RNG;
    if (wc_InitRng(rng) != 0) {
        delete rng;
        throw std::runtime_error("cannot start wolfCrypt's random generator for session tickets");
    }
    rng_ = rng;
}

ticket_keys::~ticket_keys() {
    if (rng_) {
        wc_FreeRng(static_cast<WC_RNG *>(rng_));
        delete static_cast<WC_RNG *>(rng_);
    }
}

uint64_t ticket_keys::period_now() const { return uint64_t(time(nullptr)) / lifetime_s_; }

const ticket_keys::key &ticket_keys::for_period(uint64_t period) {
    key &k = cache_[period & 1];
    if (k.period == period) return k;
    unsigned char info[20] = {'a', 't', 'l', 'a', 's', ' ', 't', 'i', 'c', 'k', 'e', 't'};
    for (int i = 0; i < 8; ++i) info[12 + i] = static_cast<unsigned char>(period >> (56 - 8 * i));
    unsigned char out[40];
    wc_HKDF(WC_SHA256, process_secret(), 32, scope_, sizeof scope_, info, sizeof info, out, sizeof out);
    // The name carries the period in clear, so opening a ticket needs no search.
    for (int i = 0; i < 8; ++i) k.name[i] = static_cast<unsigned char>(period >> (56 - 8 * i));
    std::memcpy(k.name + 8, out, 8);
    std::memcpy(k.secret, out + 8, 32);
    k.period = period;
    return k;
}

int ticket_keys::callback(WOLFSSL *, unsigned char key_name[16], unsigned char iv[16], unsigned char mac[32], int enc,
                          unsigned char *ticket, int in_len, int *out_len, void *self_ptr) {
    auto *self = static_cast<ticket_keys *>(self_ptr);
    if (!self || in_len <= 0) return WOLFSSL_TICKET_RET_FATAL;
    uint64_t now = self->period_now();
    if (enc) {
        const key &k = self->for_period(now);
        if (wc_RNG_GenerateBlock(static_cast<WC_RNG *>(self->rng_), iv, 16) != 0) return WOLFSSL_TICKET_RET_FATAL;
        std::memcpy(key_name, k.name, 16);
        std::memset(mac, 0, 32);
        if (wc_ChaCha20Poly1305_Encrypt(k.secret, iv, key_name, 16, ticket, word32(in_len), ticket, mac) != 0)
            return WOLFSSL_TICKET_RET_FATAL;
        *out_len = in_len;
        return WOLFSSL_TICKET_RET_OK;
    }
    uint64_t period = 0;
    for (int i = 0; i < 8; ++i) period = (period << 8) | key_name[i];
    if (period != now && period + 1 != now) return WOLFSSL_TICKET_RET_REJECT;  // too old, or not ours
    const key &k = self->for_period(period);
    if (std::memcmp(k.name, key_name, 16) != 0) return WOLFSSL_TICKET_RET_REJECT;
    if (wc_ChaCha20Poly1305_Decrypt(k.secret, iv, key_name, 16, ticket, word32(in_len), mac, ticket) != 0)
        return WOLFSSL_TICKET_RET_REJECT;
    *out_len = in_len;
    return period == now ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
}

}  // namespace atlas::tls
