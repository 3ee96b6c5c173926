// AES-GCM (NIST SP 800-38D) with AES-NI for the block cipher and PCLMULQDQ for GHASH.
// GHASH works on byte-reflected blocks, where the field product is a carry-less multiply
// shifted left by one bit, then reduced modulo x^128 + x^7 + x^2 + x + 1 (Gueron and
// Kounavis, "Intel Carry-Less Multiplication Instruction and its Usage for Computing the
// GCM Mode"). Four blocks go through the cipher side by side, and their four products
// (by H^4..H) share one reduction.
#include "aes_gcm.hh"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>

#define GCM_TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1")))

namespace atlas::tls::aes_gcm {

namespace {

struct key_state {
    __m128i rk[15];
    int rounds;
    __m128i h[4];  // H, H^2, H^3, H^4, byte-reflected
};

GCM_TARGET inline __m128i reflect(__m128i x) {
    return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

GCM_TARGET inline __m128i load(const uint8_t *p) { return _mm_loadu_si128(reinterpret_cast<const __m128i *>(p)); }
GCM_TARGET inline void store(uint8_t *p, __m128i x) { _mm_storeu_si128(reinterpret_cast<__m128i *>(p), x); }

// The next round key: the previous one with each word folded into the next, plus the
// key-generation word (already broadcast).
GCM_TARGET inline __m128i fold(__m128i key, __m128i word) {
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, word);
}

GCM_TARGET void expand(key_state &s, const uint8_t *key, size_t key_len) {
    __m128i *rk = s.rk;
    rk[0] = load(key);
    if (key_len == 16) {
        s.rounds = 10;
#define STEP(i, rcon) rk[i] = fold(rk[i - 1], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i - 1], rcon), 0xff))
        STEP(1, 0x01); STEP(2, 0x02); STEP(3, 0x04); STEP(4, 0x08); STEP(5, 0x10);
        STEP(6, 0x20); STEP(7, 0x40); STEP(8, 0x80); STEP(9, 0x1b); STEP(10, 0x36);
#undef STEP
        return;
    }
    s.rounds = 14;
    rk[1] = load(key + 16);
    // Even round keys take RotWord(SubWord(last word)) ^ rcon, odd ones SubWord(last word).
#define EVEN(i, rcon) rk[i] = fold(rk[i - 2], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i - 1], rcon), 0xff))
#define ODD(i) rk[i] = fold(rk[i - 2], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i - 1], 0), 0xaa))
    EVEN(2, 0x01); ODD(3); EVEN(4, 0x02); ODD(5); EVEN(6, 0x04); ODD(7); EVEN(8, 0x08); ODD(9);
    EVEN(10, 0x10); ODD(11); EVEN(12, 0x20); ODD(13); EVEN(14, 0x40);
#undef EVEN
#undef ODD
}

GCM_TARGET inline __m128i encrypt(const key_state &s, __m128i x) {
    x = _mm_xor_si128(x, s.rk[0]);
    for (int r = 1; r < s.rounds; ++r) x = _mm_aesenc_si128(x, s.rk[r]);
    return _mm_aesenclast_si128(x, s.rk[s.rounds]);
}

// N blocks through the cipher side by side: AES-NI's latency is several cycles per round
// and each block's rounds depend on each other, so independent blocks fill the gaps.
template <int N>
GCM_TARGET inline void encrypt_n(const key_state &s, __m128i *x) {
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) x[i] = _mm_xor_si128(x[i], s.rk[0]);
    for (int r = 1; r < s.rounds; ++r) {
        __m128i k = s.rk[r];
    #pragma GCC unroll 8
    for (int i = 0; i < N; ++i) x[i] = _mm_aesenc_si128(x[i], k);
    }
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) x[i] = _mm_aesenclast_si128(x[i], s.rk[s.rounds]);
}

// a * b as a 256-bit carry-less product, added into lo, mid (the cross terms) and hi.
GCM_TARGET inline void multiply_add(__m128i a, __m128i b, __m128i &lo, __m128i &mid, __m128i &hi) {
    lo = _mm_xor_si128(lo, _mm_clmulepi64_si128(a, b, 0x00));
    hi = _mm_xor_si128(hi, _mm_clmulepi64_si128(a, b, 0x11));
    mid = _mm_xor_si128(mid, _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10)));
}

// The 256-bit product <hi:lo> (cross terms in mid) shifted left one bit (the reflection)
// and reduced modulo the GCM polynomial.
GCM_TARGET inline __m128i reduce(__m128i lo, __m128i mid, __m128i hi) {
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));

    __m128i lo_carry = _mm_srli_epi32(lo, 31), hi_carry = _mm_srli_epi32(hi, 31);
    lo = _mm_slli_epi32(lo, 1);
    hi = _mm_slli_epi32(hi, 1);
    __m128i cross = _mm_srli_si128(lo_carry, 12);
    lo = _mm_or_si128(lo, _mm_slli_si128(lo_carry, 4));
    hi = _mm_or_si128(_mm_or_si128(hi, _mm_slli_si128(hi_carry, 4)), cross);

    __m128i a = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi32(lo, 31), _mm_slli_epi32(lo, 30)), _mm_slli_epi32(lo, 25));
    __m128i spill = _mm_srli_si128(a, 4);
    lo = _mm_xor_si128(lo, _mm_slli_si128(a, 12));
    __m128i b = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi32(lo, 1), _mm_srli_epi32(lo, 2)), _mm_srli_epi32(lo, 7));
    b = _mm_xor_si128(b, spill);
    return _mm_xor_si128(hi, _mm_xor_si128(lo, b));
}

GCM_TARGET inline __m128i multiply(__m128i a, __m128i b) {
    __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
    multiply_add(a, b, lo, mid, hi);
    return reduce(lo, mid, hi);
}

GCM_TARGET void prepare(key_state &s, const uint8_t *key, size_t key_len) {
    expand(s, key, key_len);
    __m128i h = reflect(encrypt(s, _mm_setzero_si128()));
    s.h[0] = h;
    s.h[1] = multiply(h, h);
    s.h[2] = multiply(s.h[1], h);
    s.h[3] = multiply(s.h[2], h);
}

// y = (y + x) * H for a byte-reflected block x.
GCM_TARGET inline __m128i hash1(const key_state &s, __m128i y, __m128i x) { return multiply(_mm_xor_si128(y, x), s.h[0]); }

// Four blocks at once: (y + x0) H^4 + x1 H^3 + x2 H^2 + x3 H, one reduction.
GCM_TARGET inline __m128i hash4(const key_state &s, __m128i y, const __m128i *x) {
    __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
    multiply_add(_mm_xor_si128(y, reflect(x[0])), s.h[3], lo, mid, hi);
    multiply_add(reflect(x[1]), s.h[2], lo, mid, hi);
    multiply_add(reflect(x[2]), s.h[1], lo, mid, hi);
    multiply_add(reflect(x[3]), s.h[0], lo, mid, hi);
    return reduce(lo, mid, hi);
}

// GHASH of bytes, the last block zero-padded (the AAD).
GCM_TARGET __m128i hash_bytes(const key_state &s, __m128i y, const uint8_t *p, size_t n) {
    for (; n >= 16; p += 16, n -= 16) y = hash1(s, y, reflect(load(p)));
    if (n) {
        uint8_t block[16] = {};
        std::memcpy(block, p, n);
        y = hash1(s, y, reflect(load(block)));
    }
    return y;
}

// N (4 or 8) whole blocks of CTR mode from counter `ctr` (advanced), hashed by fours.
template <int N>
GCM_TARGET inline __m128i crypt_blocks(const key_state &s, __m128i y, __m128i &ctr, const uint8_t *in, uint8_t *out,
                                       bool sealing) {
    const __m128i one = _mm_set_epi32(0, 0, 0, 1);
    __m128i k[N], x[N];
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) k[i] = reflect(ctr = _mm_add_epi32(ctr, one));
    encrypt_n<N>(s, k);
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
        x[i] = load(in + 16 * i);
        k[i] = _mm_xor_si128(x[i], k[i]);
        store(out + 16 * i, k[i]);
    }
    const __m128i *hashed = sealing ? k : x;
#pragma GCC unroll 2
    for (int i = 0; i < N; i += 4) y = hash4(s, y, hashed + i);
    return y;
}

// CTR-mode encryption of `in` into `out` from counter block `ctr` (byte-reflected, so the
// 32-bit counter is the low lane), hashing the ciphertext: the output when sealing, the
// input when opening.
GCM_TARGET __m128i crypt(const key_state &s, __m128i y, __m128i ctr, const uint8_t *in, size_t len, uint8_t *out,
                         bool sealing) {
    const __m128i one = _mm_set_epi32(0, 0, 0, 1);
    for (; len >= 128; in += 128, out += 128, len -= 128) y = crypt_blocks<8>(s, y, ctr, in, out, sealing);
    if (len >= 64) {
        y = crypt_blocks<4>(s, y, ctr, in, out, sealing);
        in += 64, out += 64, len -= 64;
    }
    for (; len >= 16; in += 16, out += 16, len -= 16) {
        __m128i i = load(in);
        __m128i o = _mm_xor_si128(i, encrypt(s, reflect(ctr = _mm_add_epi32(ctr, one))));
        store(out, o);
        y = hash1(s, y, reflect(sealing ? o : i));
    }
    if (len) {
        uint8_t block[16] = {};
        std::memcpy(block, in, len);
        __m128i i = load(block);
        __m128i o = _mm_xor_si128(i, encrypt(s, reflect(_mm_add_epi32(ctr, one))));
        store(block, o);
        std::memcpy(out, block, len);
        if (sealing) {
            std::memset(block + len, 0, 16 - len);
            o = load(block);
        }
        y = hash1(s, y, reflect(sealing ? o : i));
    }
    return y;
}

// The whole construction; returns the full 16-byte tag.
GCM_TARGET __m128i run(const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t len, uint8_t *out, bool sealing) {
    key_state s;
    prepare(s, key, key_len);
    uint8_t j0[16];
    std::memcpy(j0, iv, iv_size);
    j0[12] = j0[13] = j0[14] = 0;
    j0[15] = 1;
    __m128i first = load(j0);
    __m128i y = hash_bytes(s, _mm_setzero_si128(), aad, aad_len);
    y = crypt(s, y, reflect(first), in, len, out, sealing);
    y = hash1(s, y, _mm_set_epi64x(static_cast<long long>(aad_len * 8), static_cast<long long>(len * 8)));
    __m128i tag = _mm_xor_si128(reflect(y), encrypt(s, first));
    explicit_bzero(&s, sizeof s);
    return tag;
}

}  // namespace

bool supported() {
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3") &&
           __builtin_cpu_supports("sse4.1");
}

GCM_TARGET void seal(const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag) {
    store(tag, run(key, key_len, iv, aad, aad_len, in, len, out, true));
}

GCM_TARGET bool open(const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag) {
    __m128i computed = run(key, key_len, iv, aad, aad_len, in, len, out, false);
    // All 16 bytes compared, in constant time.
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(computed, load(tag))) == 0xffff) return true;
    std::memset(out, 0, len);
    return false;
}

}  // namespace atlas::tls::aes_gcm

#else  // not x86-64: never offered (supported() is false)

#include <cstdlib>

namespace atlas::tls::aes_gcm {

bool supported() { return false; }

void seal(const uint8_t *, size_t, const uint8_t *, const uint8_t *, size_t, const uint8_t *, size_t, uint8_t *,
          uint8_t *) {
    std::abort();
}

bool open(const uint8_t *, size_t, const uint8_t *, const uint8_t *, size_t, const uint8_t *, size_t, uint8_t *,
          const uint8_t *) {
    std::abort();
}

}  // namespace atlas::tls::aes_gcm

#endif
