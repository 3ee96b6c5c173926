// AES-GCM (NIST SP 800-38D) with AES-NI for the block cipher and PCLMULQDQ for GHASH.
// GHASH works on byte-reflected blocks, where the field product is a carry-less multiply
// shifted left by one bit, then reduced modulo x^128 + x^7 + x^2 + x + 1 (Gueron and
// Kounavis, "Intel Carry-Less Multiplication Instruction and its Usage for Computing the
// GCM Mode"). Blocks go through the cipher side by side (eight per step, in 256-bit
// registers where the CPU has VAES), and up to eight GHASH products (by H^n..H) share one
// reduction.
#include "aes_gcm.hh"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>

#define GCM_TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1")))
#define WIDE_TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1,avx2,vaes,vpclmulqdq")))

namespace atlas::tls::aes_gcm {

namespace {

using key_state = prepared;

GCM_TARGET inline __m128i reflect(__m128i x) {
    return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

GCM_TARGET inline __m128i load(const uint8_t *p) { return _mm_loadu_si128(reinterpret_cast<const __m128i *>(p)); }
GCM_TARGET inline void store(uint8_t *p, __m128i x) { _mm_storeu_si128(reinterpret_cast<__m128i *>(p), x); }

GCM_TARGET inline __m128i rk(const key_state &s, int r) {
    return _mm_load_si128(reinterpret_cast<const __m128i *>(s.round_keys[r]));
}
// H^(i+1)
GCM_TARGET inline __m128i hp(const key_state &s, int i) {
    return _mm_load_si128(reinterpret_cast<const __m128i *>(s.h_powers[i]));
}

// The next round key: the previous one with each word folded into the next, plus the
// key-generation word (already broadcast).
GCM_TARGET inline __m128i fold(__m128i key, __m128i word) {
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, word);
}

GCM_TARGET void expand(key_state &s, const uint8_t *key, size_t key_len) {
    __m128i rk[15];
    rk[0] = load(key);
    if (key_len == 16) {
        s.rounds = 10;
#define STEP(i, rcon) rk[i] = fold(rk[i - 1], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i - 1], rcon), 0xff))
        STEP(1, 0x01); STEP(2, 0x02); STEP(3, 0x04); STEP(4, 0x08); STEP(5, 0x10);
        STEP(6, 0x20); STEP(7, 0x40); STEP(8, 0x80); STEP(9, 0x1b); STEP(10, 0x36);
#undef STEP
    } else {
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
    for (int r = 0; r <= s.rounds; ++r) _mm_store_si128(reinterpret_cast<__m128i *>(s.round_keys[r]), rk[r]);
    explicit_bzero(rk, sizeof rk);
}

GCM_TARGET inline __m128i encrypt(const key_state &s, __m128i x) {
    x = _mm_xor_si128(x, rk(s, 0));
    for (int r = 1; r < s.rounds; ++r) x = _mm_aesenc_si128(x, rk(s, r));
    return _mm_aesenclast_si128(x, rk(s, s.rounds));
}

// N blocks through the cipher side by side: AES-NI's latency is several cycles per round
// and each block's rounds depend on each other, so independent blocks fill the gaps.
template <int N>
GCM_TARGET inline void encrypt_n(const key_state &s, __m128i *x) {
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) x[i] = _mm_xor_si128(x[i], rk(s, 0));
    for (int r = 1; r < s.rounds; ++r) {
        __m128i k = rk(s, r);
#pragma GCC unroll 8
        for (int i = 0; i < N; ++i) x[i] = _mm_aesenc_si128(x[i], k);
    }
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) x[i] = _mm_aesenclast_si128(x[i], rk(s, s.rounds));
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

// GHASH over blocks pushed one by one, multiplied out eight at a time with one reduction:
// (y + x0) H^n + x1 H^(n-1) + ... + x(n-1) H. The short pieces of a record (its AAD, the
// blocks after the last whole 128 bytes, the lengths) cost one reduction, not one each.
struct hash_queue {
    __m128i y;
    __m128i x[8];
    int n = 0;
};

GCM_TARGET inline void flush(const key_state &s, hash_queue &q) {
    if (!q.n) return;
    __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
    multiply_add(_mm_xor_si128(q.y, q.x[0]), hp(s, q.n - 1), lo, mid, hi);
    for (int i = 1; i < q.n; ++i) multiply_add(q.x[i], hp(s, q.n - 1 - i), lo, mid, hi);
    q.y = reduce(lo, mid, hi);
    q.n = 0;
}

// A byte-reflected block.
GCM_TARGET inline void push(const key_state &s, hash_queue &q, __m128i x) {
    q.x[q.n++] = x;
    if (q.n == 8) flush(s, q);
}

// Bytes, the last block zero-padded (the AAD).
GCM_TARGET void push_bytes(const key_state &s, hash_queue &q, const uint8_t *p, size_t n) {
    for (; n >= 16; p += 16, n -= 16) push(s, q, reflect(load(p)));
    if (n) {
        uint8_t block[16] = {};
        std::memcpy(block, p, n);
        push(s, q, reflect(load(block)));
    }
}

// Eight whole blocks of CTR mode from counter `ctr` (advanced), their ciphertext into the
// hash queue (one reduction): the bulk on CPUs without the 256-bit path.
GCM_TARGET inline void crypt8(const key_state &s, hash_queue &q, __m128i &ctr, const uint8_t *in, uint8_t *out,
                              bool sealing) {
    const __m128i one = _mm_set_epi32(0, 0, 0, 1);
    __m128i k[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) k[i] = reflect(ctr = _mm_add_epi32(ctr, one));
    encrypt_n<8>(s, k);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        __m128i x = load(in + 16 * i), o = _mm_xor_si128(x, k[i]);
        store(out + 16 * i, o);
        push(s, q, reflect(sealing ? o : x));
    }
}

WIDE_TARGET inline __m128i fold_lanes(__m256i v) {
    return _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// The 256-bit path: two blocks per register through VAES, eight blocks per step, their
// GHASH products by H^8..H^1 (VPCLMULQDQ) folded into one reduction. Returns the bytes
// done (whole 128-byte steps) and advances y and ctr.
WIDE_TARGET size_t crypt_wide(const key_state &s, __m128i &y, __m128i &ctr, const uint8_t *in, size_t len,
                              uint8_t *out, bool sealing) {
    const __m256i swap = _mm256_broadcastsi128_si256(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m256i two = _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 2);
    // Block 2j is multiplied by H^(8-2j) (low lane), block 2j+1 by H^(7-2j) (high lane).
    __m256i pairs[4];
    for (int j = 0; j < 4; ++j) pairs[j] = _mm256_set_m128i(hp(s, 6 - 2 * j), hp(s, 7 - 2 * j));
    __m256i c = _mm256_add_epi32(_mm256_broadcastsi128_si256(ctr), _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 1));
    size_t done = 0;
    for (; len - done >= 128; done += 128) {
        __m256i x[4];
        x[0] = c;
        x[1] = _mm256_add_epi32(x[0], two);
        x[2] = _mm256_add_epi32(x[1], two);
        x[3] = _mm256_add_epi32(x[2], two);
        c = _mm256_add_epi32(x[3], two);
        __m256i k = _mm256_broadcastsi128_si256(rk(s, 0));
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) x[j] = _mm256_xor_si256(_mm256_shuffle_epi8(x[j], swap), k);
        for (int r = 1; r < s.rounds; ++r) {
            k = _mm256_broadcastsi128_si256(rk(s, r));
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) x[j] = _mm256_aesenc_epi128(x[j], k);
        }
        k = _mm256_broadcastsi128_si256(rk(s, s.rounds));
        __m256i lo = _mm256_setzero_si256(), mid = lo, hi = lo;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            __m256i i = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(in + done + 32 * j));
            __m256i o = _mm256_xor_si256(_mm256_aesenclast_epi128(x[j], k), i);
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + done + 32 * j), o);
            __m256i h = _mm256_shuffle_epi8(sealing ? o : i, swap);
            if (j == 0) h = _mm256_xor_si256(h, _mm256_set_m128i(_mm_setzero_si128(), y));
            lo = _mm256_xor_si256(lo, _mm256_clmulepi64_epi128(h, pairs[j], 0x00));
            hi = _mm256_xor_si256(hi, _mm256_clmulepi64_epi128(h, pairs[j], 0x11));
            mid = _mm256_xor_si256(mid, _mm256_xor_si256(_mm256_clmulepi64_epi128(h, pairs[j], 0x01),
                                                         _mm256_clmulepi64_epi128(h, pairs[j], 0x10)));
        }
        y = reduce(fold_lanes(lo), fold_lanes(mid), fold_lanes(hi));
    }
    ctr = _mm_add_epi32(ctr, _mm_set_epi32(0, 0, 0, int(done / 16)));
    return done;
}

// Whether crypt() takes the 256-bit path (the CPU has it, and allow_wide left it on).
bool wide = false;

// The whole construction; returns the full 16-byte tag. CTR mode from the counter after
// J0, hashing the ciphertext: the output when sealing, the input when opening.
GCM_TARGET __m128i run(const key_state &s, const uint8_t *iv, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                       size_t len, uint8_t *out, bool sealing) {
    uint8_t j0[16];
    std::memcpy(j0, iv, iv_size);
    j0[12] = j0[13] = j0[14] = 0;
    j0[15] = 1;
    const __m128i first = load(j0), one = _mm_set_epi32(0, 0, 0, 1);
    __m128i ctr = reflect(first);  // byte-reflected: the 32-bit counter is the low lane
    hash_queue q;
    q.y = _mm_setzero_si128();
    push_bytes(s, q, aad, aad_len);
    const size_t total = len;
    if (len >= 128) {
        flush(s, q);
        if (wide) {
            size_t done = crypt_wide(s, q.y, ctr, in, len, out, sealing);
            in += done, out += done, len -= done;
        }
        for (; len >= 128; in += 128, out += 128, len -= 128) crypt8(s, q, ctr, in, out, sealing);
    }
    // The last 0..127 bytes and J0 (for the tag) through the cipher side by side.
    uint8_t plain[128], sealed[128];
    size_t blocks = (len + 15) / 16;
    if (len) std::memcpy(plain, in, len);  // `in` may be null when there is nothing
    std::memset(plain + len, 0, blocks * 16 - len);
    __m128i k[9];
#pragma GCC unroll 8
    for (size_t i = 0; i < 8; ++i) k[i] = reflect(ctr = _mm_add_epi32(ctr, one));
    k[blocks] = first;
    encrypt_n<9>(s, k);
    for (size_t i = 0; i < blocks; ++i) {
        __m128i x = load(plain + 16 * i);
        store(sealed + 16 * i, _mm_xor_si128(x, k[i]));
    }
    if (len) std::memcpy(out, sealed, len);
    if (sealing) std::memset(sealed + len, 0, blocks * 16 - len);
    const uint8_t *hashed = sealing ? sealed : plain;
    for (size_t i = 0; i < blocks; ++i) push(s, q, reflect(load(hashed + 16 * i)));
    push(s, q, _mm_set_epi64x(static_cast<long long>(aad_len * 8), static_cast<long long>(total * 8)));
    flush(s, q);
    return _mm_xor_si128(reflect(q.y), k[blocks]);
}

// A tag compared in constant time: all 16 bytes, whatever differs.
GCM_TARGET bool tag_matches(__m128i computed, const uint8_t *tag) {
    return _mm_movemask_epi8(_mm_cmpeq_epi8(computed, load(tag))) == 0xffff;
}

}  // namespace

bool supported() {
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3") &&
           __builtin_cpu_supports("sse4.1");
}

bool allow_wide(bool on) {
    wide = on && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("vaes") &&
           __builtin_cpu_supports("vpclmulqdq");
    return wide;
}

namespace {
// The 256-bit path is on wherever the CPU has it.
[[maybe_unused]] const bool wide_at_load = allow_wide(true);
}  // namespace

GCM_TARGET void prepare(prepared &s, const uint8_t *key, size_t key_len) {
    expand(s, key, key_len);
    __m128i h = reflect(encrypt(s, _mm_setzero_si128())), p = h;
    _mm_store_si128(reinterpret_cast<__m128i *>(s.h_powers[0]), h);
    for (int i = 1; i < 8; ++i) _mm_store_si128(reinterpret_cast<__m128i *>(s.h_powers[i]), p = multiply(p, h));
}

void seal(const prepared &k, const uint8_t *iv, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
          uint8_t *out, uint8_t *tag) {
    store(tag, run(k, iv, aad, aad_len, in, len, out, true));
}

bool open(const prepared &k, const uint8_t *iv, const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
          uint8_t *out, const uint8_t *tag) {
    if (tag_matches(run(k, iv, aad, aad_len, in, len, out, false), tag)) return true;
    if (len) std::memset(out, 0, len);
    return false;
}

void seal(const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
          const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag) {
    prepared k;
    prepare(k, key, key_len);
    seal(k, iv, aad, aad_len, in, len, out, tag);
    explicit_bzero(&k, sizeof k);
}

bool open(const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
          const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag) {
    prepared k;
    prepare(k, key, key_len);
    bool ok = open(k, iv, aad, aad_len, in, len, out, tag);
    explicit_bzero(&k, sizeof k);
    return ok;
}

}  // namespace atlas::tls::aes_gcm

#else  // not x86-64: never offered (supported() is false)

#include <cstdlib>

namespace atlas::tls::aes_gcm {

bool supported() { return false; }
bool allow_wide(bool) { return false; }
void prepare(prepared &, const uint8_t *, size_t) { std::abort(); }
void seal(const prepared &, const uint8_t *, const uint8_t *, size_t, const uint8_t *, size_t, uint8_t *, uint8_t *) {
    std::abort();
}
bool open(const prepared &, const uint8_t *, const uint8_t *, size_t, const uint8_t *, size_t, uint8_t *,
          const uint8_t *) {
    std::abort();
}
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
