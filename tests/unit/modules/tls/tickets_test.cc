#include <doctest/doctest.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <cstring>
#include <string>

#include "tickets.hh"

using atlas::tls::ticket_keys;

namespace {

struct sealed {
    unsigned char name[16], iv[16], mac[32];
    std::string data;
};

sealed seal(ticket_keys &k, const std::string &plain) {
    sealed s;
    s.data = plain;
    int out = 0;
    int r = ticket_keys::callback(nullptr, s.name, s.iv, s.mac, 1, reinterpret_cast<unsigned char *>(s.data.data()),
                                  int(s.data.size()), &out, &k);
    REQUIRE(r == WOLFSSL_TICKET_RET_OK);
    REQUIRE(out == int(plain.size()));
    return s;
}

int open(ticket_keys &k, sealed s, std::string *plain = nullptr) {
    int out = 0;
    int r = ticket_keys::callback(nullptr, s.name, s.iv, s.mac, 0, reinterpret_cast<unsigned char *>(s.data.data()),
                                  int(s.data.size()), &out, &k);
    if (plain) *plain = s.data.substr(0, size_t(out));
    return r;
}

}  // namespace

TEST_CASE("a sealed ticket opens with the keys of the same scope, on any worker") {
    ticket_keys a("listener.web.chain[0]", 3600), b("listener.web.chain[0]", 3600);
    const std::string state = "session state: master secret, cipher, time";
    sealed s = seal(a, state);
    CHECK(s.data != state);  // encrypted in place
    std::string back;
    CHECK(open(a, s, &back) == WOLFSSL_TICKET_RET_OK);
    CHECK(back == state);
    CHECK(open(b, s, &back) == WOLFSSL_TICKET_RET_OK);  // another worker derives the same key
    CHECK(back == state);
}

TEST_CASE("tickets of another listener, or tampered with, are refused") {
    ticket_keys web("listener.web.chain[0]", 3600), api("listener.api.chain[0]", 3600);
    sealed s = seal(web, "state");
    CHECK(open(api, s) == WOLFSSL_TICKET_RET_REJECT);
    sealed bad = s;
    bad.data[0] ^= 1;
    CHECK(open(web, bad) == WOLFSSL_TICKET_RET_REJECT);
    bad = s;
    bad.mac[3] ^= 1;
    CHECK(open(web, bad) == WOLFSSL_TICKET_RET_REJECT);
    bad = s;
    bad.name[12] ^= 1;
    CHECK(open(web, bad) == WOLFSSL_TICKET_RET_REJECT);
}

TEST_CASE("a ticket from an old rotation period is refused; the previous one is renewed") {
    ticket_keys k("scope", 60);
    sealed s = seal(k, "state");
    // The key name starts with the period number: pretend the ticket is two periods old.
    sealed old = s;
    uint64_t period = 0;
    for (int i = 0; i < 8; ++i) period = (period << 8) | old.name[i];
    for (int i = 0; i < 8; ++i) old.name[i] = static_cast<unsigned char>((period - 2) >> (56 - 8 * i));
    CHECK(open(k, old) == WOLFSSL_TICKET_RET_REJECT);
    // Every seal uses a fresh nonce.
    sealed again = seal(k, "state");
    CHECK(std::memcmp(again.iv, s.iv, 12) != 0);
}
