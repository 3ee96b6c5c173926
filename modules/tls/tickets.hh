// Session ticket keys shared by every worker, rotated without locks: each key is derived
// from a per-process secret, the listener's config path and the number of the rotation
// period, so all workers compute the same key for the same period on their own. A ticket
// sealed in period n opens in periods n and n+1 (and is then re-issued under the new key).
#pragma once

#include <cstdint>
#include <string>

struct WOLFSSL;

namespace atlas::tls {

class ticket_keys {
public:
    // `scope` separates listeners (a ticket of one never resumes on another).
    ticket_keys(const std::string &scope, uint32_t lifetime_s);
    ~ticket_keys();
    ticket_keys(const ticket_keys &) = delete;
    ticket_keys &operator=(const ticket_keys &) = delete;

    // wolfSSL's SessionTicketEncCb, with this object as its context.
    static int callback(WOLFSSL *ssl, unsigned char key_name[16], unsigned char iv[16], unsigned char mac[32],
                        int enc, unsigned char *ticket, int in_len, int *out_len, void *self);

private:
    struct key {
        uint64_t period = UINT64_MAX;
        unsigned char name[16];
        unsigned char secret[32];
    };
    const key &for_period(uint64_t period);
    uint64_t period_now() const;

    unsigned char scope_[32];  // SHA-256 of the scope text
    uint32_t lifetime_s_;
    key cache_[2];             // the last two periods this worker used
    void *rng_ = nullptr;      // WC_RNG for nonces
};

}  // namespace atlas::tls
