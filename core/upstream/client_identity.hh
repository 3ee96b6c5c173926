// One client identity per request: the TCP peer, or, when the peer is a trusted proxy, the address
// its X-Forwarded-For / Forwarded header vouches for (nginx real_ip_recursive / HAProxy style).
// The hash LB, the forwarding headers sent upstream and the access log all use this one result.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <string_view>

#include "http/request_parser.hh"
#include "upstream/cidr.hh"

namespace atlas::upstream {

// Which incoming header names the client when the peer is trusted.
enum class client_source : uint8_t { none, x_forwarded_for, forwarded };

struct client_identity {
    ip_address client, peer;
    bool peer_trusted = false; // incoming forwarding headers came from a trusted proxy: keep them
    uint32_t hops = 0;         // header elements walked past the peer (0: the client is the peer)

    // Canonical text, no port ("192.0.2.1", "2001:db8::1"); kept inline so nothing allocates.
    std::string_view client_text() const { return {client_buf, client_len}; }
    std::string_view peer_text() const { return {peer_buf, peer_len}; }

    char client_buf[ip_text_max] = {};
    char peer_buf[ip_text_max] = {};
    uint8_t client_len = 0, peer_len = 0;
};

// The peer as the core formats it ("192.0.2.1:5000", "[2001:db8::1]:5000"); a bare IP is also
// accepted. false when it is not an IP address.
bool parse_peer(std::string_view text, ip_address &out);

// One X-Forwarded-For / Forwarded node: "192.0.2.1", "192.0.2.1:80", "2001:db8::1",
// "[2001:db8::1]", "[2001:db8::1]:80". "unknown", obfuscated ("_hidden") and anything else: false.
bool parse_node(std::string_view text, ip_address &out);

// The walk: if the peer is trusted, step right to left through the elements of the chosen header
// (all its field lines in order, each a comma list; Forwarded: the for= parameter of each
// element); the first untrusted address is the client. All trusted: the leftmost. An element that
// is not an address (garbage, "unknown", obfuscated, no for=) stops the walk and the last trusted
// hop is the client: nothing to its left can be believed. Empty list elements are skipped
// (RFC 9110 5.6.1). `headers` are the request's fields; names match case-insensitively.
// false (and `out` untouched) only when `peer` is not an IP address.
bool resolve_client(std::string_view peer, std::span<const http::header_field> headers,
                    const cidr_set &trusted, client_source source, client_identity &out);
bool resolve_client(const sockaddr *peer, std::span<const http::header_field> headers,
                    const cidr_set &trusted, client_source source, client_identity &out);

} // namespace atlas::upstream
