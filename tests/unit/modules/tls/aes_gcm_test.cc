#include <doctest/doctest.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "aes_gcm.hh"
#include "config.hh"
#include "offload.hh"

namespace aes_gcm = atlas::tls::aes_gcm;
using bytes = std::vector<uint8_t>;

namespace {

bytes hex(const char *s) {
    bytes v;
    for (; s[0] && s[1]; s += 2) {
        unsigned x = 0;
        std::sscanf(s, "%2x", &x);
        v.push_back(uint8_t(x));
    }
    return v;
}

// wolfSSL's AES-GCM on an Aes object with `dev` as its crypto-callback device.
void wolfssl_seal(int dev, const bytes &key, const bytes &iv, const bytes &aad, const bytes &in, bytes &out,
                  uint8_t *tag) {
    Aes aes;
    REQUIRE(wc_AesInit(&aes, nullptr, dev) == 0);
    REQUIRE(wc_AesGcmSetKey(&aes, key.data(), word32(key.size())) == 0);
    out.resize(in.size());
    REQUIRE(wc_AesGcmEncrypt(&aes, out.data(), in.data(), word32(in.size()), iv.data(), word32(iv.size()), tag, 16,
                             aad.data(), word32(aad.size())) == 0);
    wc_AesFree(&aes);
}

int wolfssl_open(int dev, const bytes &key, const bytes &iv, const bytes &aad, const bytes &in, bytes &out,
                 const uint8_t *tag) {
    Aes aes;
    REQUIRE(wc_AesInit(&aes, nullptr, dev) == 0);
    REQUIRE(wc_AesGcmSetKey(&aes, key.data(), word32(key.size())) == 0);
    out.resize(in.size());
    int r = wc_AesGcmDecrypt(&aes, out.data(), in.data(), word32(in.size()), iv.data(), word32(iv.size()), tag, 16,
                             aad.data(), word32(aad.size()));
    wc_AesFree(&aes);
    return r;
}

struct wolfssl_up {
    wolfssl_up() { REQUIRE(wolfSSL_Init() == WOLFSSL_SUCCESS); }
};

}  // namespace

TEST_CASE("AES-GCM matches the published test vectors (McGrew and Viega, cases 2, 4 and 16)") {
    if (!aes_gcm::supported()) {
        MESSAGE("skipped: this CPU lacks AES-NI or PCLMULQDQ");
        return;
    }
    struct vec {
        const char *key, *iv, *aad, *plain, *cipher, *tag;
    } vectors[] = {
        {"00000000000000000000000000000000", "000000000000000000000000", "", "00000000000000000000000000000000",
         "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
        {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
         "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
         "5bc94fbc3221a5db94fae95ae7121a47"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
         "feedfacedeadbeeffeedfacedeadbeefabaddad2",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"},
    };
    for (const vec &v : vectors) {
        bytes key = hex(v.key), iv = hex(v.iv), aad = hex(v.aad), plain = hex(v.plain), cipher = hex(v.cipher);
        bytes out(plain.size()), back(plain.size());
        uint8_t tag[16];
        aes_gcm::seal(key.data(), key.size(), iv.data(), aad.data(), aad.size(), plain.data(), plain.size(), out.data(),
                      tag);
        CHECK(out == cipher);
        CHECK(bytes(tag, tag + 16) == hex(v.tag));
        CHECK(aes_gcm::open(key.data(), key.size(), iv.data(), aad.data(), aad.size(), out.data(), out.size(),
                            back.data(), tag));
        CHECK(back == plain);
    }
}

TEST_CASE("AES-GCM agrees with wolfSSL's software on random keys, nonces, AAD and lengths, in place too") {
    if (!aes_gcm::supported()) {
        MESSAGE("skipped: this CPU lacks AES-NI or PCLMULQDQ");
        return;
    }
    wolfssl_up up;
    // Both paths where the CPU has the 256-bit one; the default (on) restored after.
    bool wide = aes_gcm::allow_wide(true);
    struct restore {
        ~restore() { aes_gcm::allow_wide(true); }
    } restore_wide;
    for (bool use_wide : {false, true}) {
        if (use_wide && !wide) break;
        aes_gcm::allow_wide(use_wide);
        CAPTURE(use_wide);
        std::mt19937 rng(7);
        auto fill = [&rng](bytes &b, size_t n) {
            b.resize(n);
            for (auto &x : b) x = uint8_t(rng());
        };
        for (int i = 0; i < 3000; ++i) {
            bytes key, iv, aad, in, theirs, ours, back;
            fill(key, i % 2 ? 32 : 16);
            fill(iv, 12);
            fill(aad, rng() % 40);
            fill(in, i < 2500 ? size_t(i % 300) : size_t(rng() % 20000));
            uint8_t t_theirs[16], t_ours[16];
            wolfssl_seal(INVALID_DEVID, key, iv, aad, in, theirs, t_theirs);
            ours.resize(in.size());
            aes_gcm::seal(key.data(), key.size(), iv.data(), aad.data(), aad.size(), in.data(), in.size(), ours.data(),
                          t_ours);
            REQUIRE(ours == theirs);
            REQUIRE(std::memcmp(t_ours, t_theirs, 16) == 0);
            bytes inplace = in;
            aes_gcm::seal(key.data(), key.size(), iv.data(), aad.data(), aad.size(), inplace.data(), inplace.size(),
                          inplace.data(), t_ours);
            REQUIRE(inplace == theirs);
            REQUIRE(aes_gcm::open(key.data(), key.size(), iv.data(), aad.data(), aad.size(), inplace.data(), inplace.size(),
                                  inplace.data(), t_theirs));
            REQUIRE(inplace == in);
        }
    }
}

TEST_CASE("a connection's prepared keys: one per direction, rebuilt when the key changes") {
    if (!aes_gcm::supported()) {
        MESSAGE("skipped: this CPU lacks AES-NI or PCLMULQDQ");
        return;
    }
    atlas::tls::offload::connection_keys keys;
    int enc = 0, dec = 0;  // stand-ins for wolfSSL's two AES objects
    bytes k1(16, 1), k2(32, 2), k3(16, 3), iv(12, 9), in(200, 'z'), a(200), b(200);
    const aes_gcm::prepared *p1 = &keys.get(&enc, k1.data(), 16);
    const aes_gcm::prepared *p2 = &keys.get(&dec, k2.data(), 32);
    CHECK(p1 != p2);
    CHECK(&keys.get(&enc, k1.data(), 16) == p1);  // kept, not rebuilt
    CHECK(&keys.get(&dec, k2.data(), 32) == p2);
    CHECK(&keys.get(&enc, k3.data(), 16) == p1);  // a key change reuses its direction's slot
    CHECK(&keys.get(&dec, k2.data(), 32) == p2);  // and leaves the other alone
    uint8_t t1[16], t2[16];
    aes_gcm::seal(keys.get(&enc, k3.data(), 16), iv.data(), nullptr, 0, in.data(), in.size(), a.data(), t1);
    aes_gcm::seal(k3.data(), 16, iv.data(), nullptr, 0, in.data(), in.size(), b.data(), t2);
    CHECK(a == b);
    CHECK(std::memcmp(t1, t2, 16) == 0);
}

TEST_CASE("AES-GCM refuses a changed tag, ciphertext or AAD and zeroes what it decrypted") {
    if (!aes_gcm::supported()) {
        MESSAGE("skipped: this CPU lacks AES-NI or PCLMULQDQ");
        return;
    }
    bytes key(16, 1), iv(12, 2), aad = {23, 3, 3, 0, 40}, plain(40, 'p'), cipher(40), back(40, 'x');
    uint8_t tag[16];
    aes_gcm::seal(key.data(), 16, iv.data(), aad.data(), aad.size(), plain.data(), 40, cipher.data(), tag);
    for (int what = 0; what < 3; ++what) {
        bytes c = cipher, a = aad;
        uint8_t t[16];
        std::memcpy(t, tag, 16);
        (what == 0 ? t[15] : what == 1 ? c[39] : a[4]) ^= 1;
        back.assign(40, 'x');
        CHECK_FALSE(aes_gcm::open(key.data(), 16, iv.data(), a.data(), a.size(), c.data(), 40, back.data(), t));
        CHECK(back == bytes(40, 0));
    }
}

TEST_CASE("the offload device: registered on an AES-NI CPU, and wolfSSL's records go through it") {
    wolfssl_up up;
    atlas::tls::offload::outcome o = atlas::tls::offload::start();
    CHECK_FALSE(o.trouble);
    INFO(o.line);
    int dev = atlas::tls::offload::device();
    CHECK((dev != INVALID_DEVID) == aes_gcm::supported());
    if (dev != INVALID_DEVID) CHECK(atlas::tls::aes_accelerated());  // AES-GCM then leads the default order
    if (dev == INVALID_DEVID) return;
    bytes key(32, 9), iv(12, 4), aad(13, 5), in(1300, 'q'), via_device, software, back;
    uint8_t t_dev[16], t_sw[16];
    wolfssl_seal(dev, key, iv, aad, in, via_device, t_dev);
    wolfssl_seal(INVALID_DEVID, key, iv, aad, in, software, t_sw);
    CHECK(via_device == software);
    CHECK(std::memcmp(t_dev, t_sw, 16) == 0);
    CHECK(wolfssl_open(dev, key, iv, aad, via_device, back, t_dev) == 0);
    CHECK(back == in);
    {
        // With a connection's keys in place, the same records through its prepared keys.
        atlas::tls::offload::connection_keys keys;
        atlas::tls::offload::keys_scope scope(&keys);
        bytes again;
        uint8_t t_again[16];
        wolfssl_seal(dev, key, iv, aad, in, again, t_again);
        CHECK(again == software);
        CHECK(std::memcmp(t_again, t_sw, 16) == 0);
        CHECK(wolfssl_open(dev, key, iv, aad, via_device, back, t_dev) == 0);
        CHECK(back == in);
    }
    t_dev[0] ^= 1;
    CHECK(wolfssl_open(dev, key, iv, aad, via_device, back, t_dev) == AES_GCM_AUTH_E);
}
