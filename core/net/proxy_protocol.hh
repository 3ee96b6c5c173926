// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the header a load
// balancer puts before a connection's first byte to say whom it carries, and the one
// Atlas sends to upstreams. Parsing is incremental and bounded: it never needs more than
// max_header bytes and says how many it used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "net/address.hh"

namespace atlas::net::proxy_protocol {

constexpr size_t max_v1 = 107;     // the longest v1 line, CRLF included (the spec's bound)
constexpr size_t max_header = 4096;  // v2: 16 bytes and up to 4080 of addresses and TLVs

struct header {
    int version = 0;     // 1 or 2
    bool local = false;  // v1 UNKNOWN or v2 LOCAL (or a family we do not carry): use the socket's own addresses
    address source;      // the client, when !local
    address destination;
};

enum class status {
    done,       // `out` is filled and `used` bytes belong to the header
    need_more,  // every byte so far fits a header: read more (up to max_header)
    invalid,    // not a PROXY header, or a malformed one: `err` says why
};

struct result {
    status st = status::need_more;
    size_t used = 0;
    std::string err;
};

// Looks for a v1 or v2 header at the start of `data`.
result parse(const char *data, size_t len, header &out);

// "PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\n" (TCP6 for IPv6; UNKNOWN when either address is
// not IP or the families differ).
std::string build_v1(const address &source, const address &destination);
// The binary form: PROXY command with INET or INET6 addresses, else LOCAL with none.
std::string build_v2(const address &source, const address &destination);

}  // namespace atlas::net::proxy_protocol
