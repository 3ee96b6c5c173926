// mod_tls's AES-GCM (aes_gcm.hh) as a wolfSSL crypto-callback device. When the wolfSSL
// in use has no AES-NI code of its own (Debian's libwolfssl) and the CPU has AES-NI and
// PCLMULQDQ, every context mod_tls makes carries this device's id, and wolfSSL hands the
// device each AES-GCM record; everything else (handshakes, ChaCha20, hashes) it does
// itself. ATLAS_TLS_AESNI=0 in the environment turns the device off.
#pragma once

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

}  // namespace atlas::tls::offload
