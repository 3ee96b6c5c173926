// mod_tls's AES-GCM (aes_gcm.hh) as a wolfSSL crypto-callback device. When the CPU has
// AES-NI and PCLMULQDQ, every context mod_tls makes carries this device's id, and wolfSSL
// hands the device each AES-GCM record; everything else (handshakes, ChaCha20, hashes) it
// does itself. Debian's libwolfssl has no AES-NI code at all (150 MB/s); the tuned build's
// has, but it prepares the key anew for every record, where a connection here keeps its
// prepared keys (about 10% more keep-alive HTTPS per CPU-second in the tuned build).
// ATLAS_TLS_AESNI=0 in the environment turns the device off: wolfSSL's own code runs.
#pragma once

#include <cstdint>

#include "aes_gcm.hh"

namespace atlas::tls::offload {

struct outcome {
    bool trouble;      // something is wrong (log a warning), not just absent
    const char *line;  // what AES-GCM runs on, for the log
};

// Registers the device after a self-test against wolfSSL's own AES-GCM. Call once, after
// wolfSSL_Init.
outcome start();

// The id to give wolfSSL_CTX_SetDevId, or INVALID_DEVID (-2) when there is no device.
int device();

// The prepared AES-GCM keys of one connection (one per direction), so that a record does
// not prepare its key again: a connection keeps one while the device is on, and puts it
// in place with a keys_scope around its calls into wolfSSL. Each use checks the key is
// the one wolfSSL holds for that direction, so a stale or misplaced one is only rebuilt.
class connection_keys {
public:
    connection_keys() = default;
    ~connection_keys();
    connection_keys(const connection_keys &) = delete;
    connection_keys &operator=(const connection_keys &) = delete;

    // The prepared form of `raw` (key_len bytes), which wolfSSL's AES object `owner` holds.
    const aes_gcm::prepared &get(const void *owner, const uint8_t *raw, uint32_t key_len);

private:
    struct slot {
        const void *owner = nullptr;
        uint8_t raw[32];
        uint32_t len = 0;
        aes_gcm::prepared key;
    };
    slot slots_[2];
    unsigned next_ = 0;
};

// While it lives, records wolfSSL seals or opens on this thread use `keys` (may be null).
class keys_scope {
public:
    explicit keys_scope(connection_keys *keys);
    ~keys_scope();
    keys_scope(const keys_scope &) = delete;
    keys_scope &operator=(const keys_scope &) = delete;

private:
    connection_keys *saved_;
};

}  // namespace atlas::tls::offload
