#include "offload.hh"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "aes_gcm.hh"

namespace atlas::tls::offload {

namespace {

constexpr int device_id = 0x41544c53;  // "ATLS"; any id other than INVALID_DEVID
int registered = INVALID_DEVID;
thread_local connection_keys *current = nullptr;  // set by keys_scope

#if defined(WOLF_CRYPTO_CB) && defined(HAVE_AESGCM)

// What runs when the device does not: the tuned build's AES-NI code, or Debian's C code.
#if defined(WOLFSSL_AESNI)
#define WOLFSSL_AES_CODE "wolfSSL's own AES-NI code"
#else
#define WOLFSSL_AES_CODE "wolfSSL's software code"
#endif

const uint8_t *raw_key(const Aes *aes) { return reinterpret_cast<const uint8_t *>(aes->devKey); }

// What aes_gcm handles: TLS's record AEAD. Anything else goes back to wolfSSL.
bool handles(const Aes *aes, word32 iv_size, word32 tag_size) {
    return (aes->keylen == 16 || aes->keylen == 32) && iv_size == aes_gcm::iv_size && tag_size == aes_gcm::tag_size;
}

// The connection's prepared key, or one prepared into `spare` for this record alone.
const aes_gcm::prepared &key_of(const Aes *aes, aes_gcm::prepared &spare) {
    if (current) return current->get(aes, raw_key(aes), aes->keylen);
    aes_gcm::prepare(spare, raw_key(aes), aes->keylen);
    return spare;
}

int on_crypto(int, wc_CryptoInfo *info, void *) {
    if (info->algo_type != WC_ALGO_TYPE_CIPHER || info->cipher.type != WC_CIPHER_AES_GCM) return CRYPTOCB_UNAVAILABLE;
    aes_gcm::prepared spare;
    int r = 0;
    if (info->cipher.enc) {
        auto &a = info->cipher.aesgcm_enc;
        if (!handles(a.aes, a.ivSz, a.authTagSz)) return CRYPTOCB_UNAVAILABLE;
        aes_gcm::seal(key_of(a.aes, spare), a.iv, a.authIn, a.authInSz, a.in, a.sz, a.out, a.authTag);
    } else {
        auto &a = info->cipher.aesgcm_dec;
        if (!handles(a.aes, a.ivSz, a.authTagSz)) return CRYPTOCB_UNAVAILABLE;
        if (!aes_gcm::open(key_of(a.aes, spare), a.iv, a.authIn, a.authInSz, a.in, a.sz, a.out, a.authTag))
            r = AES_GCM_AUTH_E;
    }
    if (spare.rounds) explicit_bzero(&spare, sizeof spare);
    return r;
}

// aes_gcm against wolfSSL's own AES-GCM, both key sizes, lengths around the block and
// 128-byte step boundaries: a device that disagrees once is never registered.
bool agrees_with_wolfssl() {
    uint8_t key[32], iv[12], aad[13], in[1500], ours[1500], theirs[1500], back[1500], t1[16], t2[16];
    uint32_t x = 0x9e3779b9;
    auto fill = [&x](uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; ++i) p[i] = uint8_t((x = x * 1664525 + 1013904223) >> 24);
    };
    for (size_t key_len : {16, 32}) {
        for (size_t len : {0, 1, 15, 16, 17, 63, 64, 65, 100, 127, 128, 129, 255, 256, 1300, 1500}) {
            fill(key, sizeof key), fill(iv, sizeof iv), fill(aad, sizeof aad), fill(in, len);
            Aes aes;
            if (wc_AesInit(&aes, nullptr, INVALID_DEVID) != 0) return false;
            bool ok = wc_AesGcmSetKey(&aes, key, word32(key_len)) == 0 &&
                      wc_AesGcmEncrypt(&aes, theirs, in, word32(len), iv, sizeof iv, t1, sizeof t1, aad, sizeof aad) == 0;
            wc_AesFree(&aes);
            if (!ok) return false;
            aes_gcm::seal(key, key_len, iv, aad, sizeof aad, in, len, ours, t2);
            if (std::memcmp(ours, theirs, len) != 0 || std::memcmp(t1, t2, sizeof t1) != 0) return false;
            if (!aes_gcm::open(key, key_len, iv, aad, sizeof aad, ours, len, back, t2) || std::memcmp(back, in, len) != 0)
                return false;
            t2[len % 16] ^= 0x80;
            if (aes_gcm::open(key, key_len, iv, aad, sizeof aad, ours, len, back, t2)) return false;
        }
    }
    return true;
}

#endif

}  // namespace

outcome start() {
#if !defined(WOLF_CRYPTO_CB) || !defined(HAVE_AESGCM)
    return {false, "AES-GCM: wolfSSL's own code (this wolfSSL has no crypto callbacks)"};
#else
    const char *env = std::getenv("ATLAS_TLS_AESNI");
    if (env && std::strcmp(env, "0") == 0) return {false, "AES-GCM: " WOLFSSL_AES_CODE " (ATLAS_TLS_AESNI=0)"};
    if (!aes_gcm::supported()) return {false, "AES-GCM: wolfSSL's software code (this CPU lacks AES-NI or PCLMULQDQ)"};
    if (!agrees_with_wolfssl()) return {true, "AES-GCM: " WOLFSSL_AES_CODE " (mod_tls's AES-NI code failed its self-test)"};
    if (wc_CryptoCb_RegisterDevice(device_id, on_crypto, nullptr) != 0)
        return {true, "AES-GCM: " WOLFSSL_AES_CODE " (cannot register a crypto callback)"};
    registered = device_id;
    return {false, "AES-GCM: mod_tls's AES-NI code"};
#endif
}

int device() { return registered; }

connection_keys::~connection_keys() { explicit_bzero(slots_, sizeof slots_); }

const aes_gcm::prepared &connection_keys::get(const void *owner, const uint8_t *raw, uint32_t key_len) {
    for (slot &s : slots_)
        if (s.owner == owner && s.len == key_len && std::memcmp(s.raw, raw, key_len) == 0) return s.key;
    // A new key: in its direction's slot when that direction had one (a key change),
    // else in the other slot by turns.
    slot *s = slots_[0].owner == owner ? &slots_[0] : slots_[1].owner == owner ? &slots_[1] : &slots_[next_++ & 1];
    s->owner = owner;
    s->len = key_len;
    std::memcpy(s->raw, raw, key_len);
    aes_gcm::prepare(s->key, raw, key_len);
    return s->key;
}

keys_scope::keys_scope(connection_keys *keys) : saved_(current) { current = keys; }
keys_scope::~keys_scope() { current = saved_; }

}  // namespace atlas::tls::offload
