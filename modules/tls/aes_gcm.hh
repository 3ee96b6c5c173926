// AES-GCM on the CPU's AES and carry-less multiply instructions (AES-NI, PCLMULQDQ, and
// their 256-bit forms VAES and VPCLMULQDQ where the CPU has them). Debian's libwolfssl
// is built without them and does AES-GCM at about 150 MB/s; this runs at gigabytes per
// second. offload.hh hands it wolfSSL's TLS records through wolfSSL's crypto-callback
// interface, so the TLS code stays wolfSSL's.
#pragma once

#include <cstddef>
#include <cstdint>

namespace atlas::tls::aes_gcm {

constexpr size_t iv_size = 12;  // the TLS nonce; other sizes are not handled here
constexpr size_t tag_size = 16;

// This is an x86-64 CPU with AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
bool supported();

// The 256-bit path is used wherever the CPU has it; allow_wide(false) keeps to the
// 128-bit one (tests run both). Returns whether the 256-bit path is now on.
bool allow_wide(bool on);

// A key made ready for use: its AES round keys and the powers of GHASH's H. Making one
// costs about as much as sealing a few hundred bytes, so a connection keeps its own.
struct prepared {
    alignas(32) uint8_t round_keys[15][16];
    alignas(32) uint8_t h_powers[8][16];  // H^1..H^8, byte-reflected
    int rounds = 0;
};

// key_len is 16 (AES-128) or 32 (AES-256).
void prepare(prepared &k, const uint8_t *key, size_t key_len);

// `out` may be `in` (in place) or not overlap it.
void seal(const prepared &k, const uint8_t *iv, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
          uint8_t *out, uint8_t *tag);
// false when the tag does not authenticate the input; `out` is then zeroed.
bool open(const prepared &k, const uint8_t *iv, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
          uint8_t *out, const uint8_t *tag);

// One-shot forms: prepare, use, wipe.
void seal(const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
          const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);
bool open(const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
          const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag);

}  // namespace atlas::tls::aes_gcm
