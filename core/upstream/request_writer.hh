// The upstream request head, re-serialised from the parsed request (never the client's raw bytes),
// so what the upstream parses is exactly what Atlas parsed: one canonical request line, one Host,
// framing stated by the proxy itself, hop-by-hop fields gone. That is what makes desync
// (request smuggling) between Atlas and the upstream impossible by construction.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/request_parser.hh"
#include "upstream/client_identity.hh"

namespace atlas::upstream {

// How the proxy sends the body upstream: it always states the framing itself.
enum class body_kind : uint8_t { none, length, chunked };
struct body_framing {
    body_kind kind = body_kind::none;
    uint64_t length = 0; // body_kind::length only
};
// The client's framing carried over: Content-Length N (0 included) or chunked (re-chunked by the
// proxy), none otherwise.
body_framing framing_of(const http::request_head &req);

struct forward_options {
    std::string_view strip_prefix;  // "/api": "/api/users" -> "/users"; "" = off
    std::string_view host;          // Host sent upstream; "" keeps the client's
    std::string_view fallback_host; // Host when the client sent none (HTTP/1.0) and `host` is ""
    // The forwarding headers the proxy adds. Incoming ones are kept only from a trusted peer
    // (client_identity::peer_trusted); from anyone else they are dropped, whether or not the
    // proxy adds its own, so a client can never plant one.
    bool x_forwarded_for = true;
    bool x_forwarded_proto = true;
    bool x_forwarded_host = true;
    bool forwarded = false;         // RFC 7239
    bool websocket = false;         // pass a WebSocket Upgrade through (then `Connection: upgrade`)
    std::string_view upgrade_protocols;  // other Upgrade protocols passed through: "a, b/2"
    bool pass_expect = false;       // Expect is dropped by default: the core answers 100-continue
                                    // itself, an upstream 100 would only have to be swallowed
};

// RFC 9110 7.6.1: Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*
// (Proxy-Authorization, Proxy-Connection, ...), and every field named in a Connection value.
// `connection_values` are the request's Connection field values (each a comma list).
// Case-insensitive. Content-Length and Host are not hop-by-hop (the writer restates them anyway).
bool is_hop_by_hop(std::string_view name, std::span<const std::string_view> connection_values);

// The Connection field values of a head (request or response), collected once so every field
// can be checked against them with is_hop_by_hop; a dozen lines covers anything real, more
// spill to the heap.
class connection_values {
public:
    explicit connection_values(std::span<const http::header_field> headers);
    connection_values(const connection_values &) = delete;
    connection_values &operator=(const connection_values &) = delete;
    std::span<const std::string_view> values() const {
        return big_.empty() ? std::span<const std::string_view>(small_, n_) : std::span<const std::string_view>(big_);
    }

private:
    std::string_view small_[16];
    std::vector<std::string_view> big_;
    size_t n_ = 0;
};

// strip_prefix on the raw path, only at a segment boundary: ("/api/users", "/api") -> "/users",
// ("/api", "/api") -> "/", ("/apix", "/api") -> "/apix". A trailing '/' on the prefix is ignored.
// Compared byte for byte on the still percent-encoded path: "/%61pi/x" is not stripped.
std::string_view apply_strip_prefix(std::string_view path, std::string_view prefix);

// True when `protocol`, an Upgrade list element ("name" or "name/version"), may be
// tunnelled: "websocket" with the websocket option, or a name in upgrade_protocols.
// Names compare case-insensitively; versions are ignored.
bool upgrade_allowed(std::string_view protocol, const forward_options &opt);

// True when the request's Upgrade fields offer a protocol with the name of `protocol`.
bool upgrade_offered(const http::request_head &req, std::string_view protocol);

// True when this request's Upgrade is forwarded: it is a valid upgrade request (the parser's
// `upgrade`) and its Upgrade field offers at least one allowed protocol.
bool forwards_upgrade(const http::request_head &req, const forward_options &opt);

// Appends the upstream request head, final CRLF included, to `out`: one exact-size growth, so a
// per-worker string that is cleared and reused stops allocating once it has seen the largest head.
//
//   METHOD SP path[?query] SP HTTP/1.1      path after strip_prefix, query byte-exact
//   Host: ...                               first; configured, else the client's
//   <end-to-end fields in received order>   names and values verbatim
//   X-Forwarded-For / -Proto / -Host, Forwarded
//   Content-Length: N | Transfer-Encoding: chunked | nothing
//   Connection: upgrade                     only when forwarding an upgrade (keep-alive is the
//                                           HTTP/1.1 default, so nothing is written otherwise)
//
// X-Forwarded-For: from a trusted peer, the incoming list (all lines joined with ", ") plus the
// peer: nginx's $proxy_add_x_forwarded_for with $remote_addr being the TCP peer, i.e. every hop
// appends the address it received the connection from. (nginx with realip appends the resolved
// client instead, listing it twice and losing the last proxy; not copied.) From an untrusted peer:
// just the peer, which is then also the client. Forwarded follows the same rule with
// `for=<peer>;proto=<http|https>;host=<original Host>`. X-Forwarded-Proto / -Host: kept as
// received from a trusted peer that sent them, else the listener's scheme / the original Host.
// Fields named in Connection never remove the Host, framing or forwarding fields the proxy states
// itself (a client cannot get the proxy to drop its own X-Forwarded-For).
//
// Returns false, writing nothing, for an authority-form (CONNECT) request: not proxied as HTTP.
bool write_request_head(const http::request_head &req, const client_identity &id, bool https,
                        body_framing body, const forward_options &opt, std::string &out);

} // namespace atlas::upstream
