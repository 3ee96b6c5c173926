#include "upstream/request_writer.hh"

#include <netinet/in.h>

#include <cassert>
#include <charconv>
#include <cstring>
#include <vector>

#include "http/chars.hh"

namespace atlas::upstream {

namespace chars = http::chars;
namespace {

using http::chars::iequals;

// Calls f(element) for each trimmed, non-empty element of a comma list.
template <class F>
void for_each_list_element(std::string_view v, F &&f) {
    for (;;) {
        const size_t comma = v.find(',');
        const std::string_view e = chars::trim_ows(v.substr(0, comma));
        if (!e.empty() && f(e)) return;
        if (comma == std::string_view::npos) return;
        v.remove_prefix(comma + 1);
    }
}

bool fixed_hop_by_hop(std::string_view name) {
    switch (name.size()) {
    case 2: return iequals(name, "te");
    case 7: return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 17: return iequals(name, "transfer-encoding");
    default: return false;
    }
}

// What the writer does with one received field.
enum class field_role : uint8_t {
    pass,        // end-to-end: copied verbatim in place
    drop,        // hop-by-hop, framing, Host, Expect, or an untrusted forwarding field
    xff,         // X-Forwarded-For kept from a trusted peer: joined into the proxy's line
    forwarded,   // Forwarded kept from a trusted peer: joined into the proxy's line
};

struct plan {
    const http::request_head &req;
    const client_identity &id;
    const forward_options &opt;
    std::span<const std::string_view> connection;
    bool https, upgrading;
    std::string_view path, host;
    body_framing body;
    bool have_xfp = false, have_xfh = false; // a trusted peer's own, passed in place
    bool have_xff = false, have_fwd = false; // a trusted peer's own, to join

    field_role role(const http::header_field &h) const {
        const std::string_view n = h.name;
        // The fields the proxy states itself come first, so Connection cannot remove them.
        switch (n.size()) {
        case 4:
            if (iequals(n, "host")) return field_role::drop;
            break;
        case 6:
            if (iequals(n, "expect")) return opt.pass_expect ? field_role::pass : field_role::drop;
            break;
        case 7:
            if (iequals(n, "upgrade")) return upgrading ? field_role::pass : field_role::drop;
            break;
        case 9:
            if (iequals(n, "forwarded")) return forwarding_role(opt.forwarded, field_role::forwarded);
            break;
        case 14:
            if (iequals(n, "content-length")) return field_role::drop;
            break;
        case 15:
            if (iequals(n, "x-forwarded-for")) return forwarding_role(opt.x_forwarded_for, field_role::xff);
            break;
        case 16:
            if (iequals(n, "x-forwarded-host")) return id.peer_trusted ? field_role::pass : field_role::drop;
            break;
        case 17:
            if (iequals(n, "x-forwarded-proto")) return id.peer_trusted ? field_role::pass : field_role::drop;
            break;
        default:
            break;
        }
        return is_hop_by_hop(n, connection) ? field_role::drop : field_role::pass;
    }

    // Trusted: joined into the proxy's own line when it writes one, else passed untouched.
    field_role forwarding_role(bool enabled, field_role join) const {
        if (!id.peer_trusted) return field_role::drop;
        return enabled ? join : field_role::pass;
    }
};

// Counts, then writes: the same code computes the exact size and fills the buffer.
struct count_sink {
    size_t n = 0;
    void put(std::string_view s) { n += s.size(); }
    void put(char) { ++n; }
};
struct write_sink {
    char *p;
    void put(std::string_view s) {
        // An empty view may have a null data() (an HTTP/1.0 request's absent Host), and
        // memcpy's pointers must not be null even for 0 bytes.
        if (s.empty()) return;
        std::memcpy(p, s.data(), s.size());
        p += s.size();
    }
    void put(char c) { *p++ = c; }
};

// RFC 7239 value: a token as is, anything else as a quoted-string.
template <class Sink>
void put_forwarded_value(Sink &s, std::string_view v) {
    bool token = !v.empty();
    for (char c : v) token = token && chars::is_tchar(c);
    if (token) {
        s.put(v);
        return;
    }
    s.put('"');
    for (char c : v) {
        if (c == '"' || c == '\\') s.put('\\');
        s.put(c);
    }
    s.put('"');
}

template <class Sink>
void emit(Sink &s, const plan &pl) {
    const http::request_head &req = pl.req;
    const forward_options &opt = pl.opt;
    const client_identity &id = pl.id;
    constexpr std::string_view crlf = "\r\n";

    s.put(req.method);
    s.put(' ');
    s.put(pl.path);
    if (req.query.data() != nullptr) { // "?" with an empty query is kept too: byte-exact
        s.put('?');
        s.put(req.query);
    }
    s.put(" HTTP/1.1\r\nHost: ");
    s.put(pl.host);
    s.put(crlf);

    const http::header_field *hs = req.headers;
    for (uint32_t i = 0; i < req.header_count; ++i) {
        if (pl.role(hs[i]) != field_role::pass) continue;
        s.put(hs[i].name);
        s.put(": ");
        s.put(hs[i].value);
        s.put(crlf);
    }

    // Joins the trusted peer's lines of one field (empty values skipped) and returns whether
    // anything was written, so the caller knows whether to put ", " before its own element.
    auto join = [&](field_role which) {
        bool any = false;
        for (uint32_t i = 0; i < req.header_count; ++i) {
            if (hs[i].value.empty() || pl.role(hs[i]) != which) continue;
            if (any) s.put(", ");
            s.put(hs[i].value);
            any = true;
        }
        return any;
    };
    const std::string_view peer = id.peer_text();
    const std::string_view scheme = pl.https ? std::string_view("https") : std::string_view("http");
    if (opt.x_forwarded_for) {
        s.put("X-Forwarded-For: ");
        if (pl.have_xff && join(field_role::xff)) s.put(", ");
        s.put(peer);
        s.put(crlf);
    }
    if (opt.x_forwarded_proto && !pl.have_xfp) {
        s.put("X-Forwarded-Proto: ");
        s.put(scheme);
        s.put(crlf);
    }
    if (opt.x_forwarded_host && !pl.have_xfh && !req.host.empty()) {
        s.put("X-Forwarded-Host: ");
        s.put(req.host);
        s.put(crlf);
    }
    if (opt.forwarded) {
        s.put("Forwarded: ");
        if (pl.have_fwd && join(field_role::forwarded)) s.put(", ");
        s.put("for=");
        if (id.peer.family == AF_INET6) {
            s.put("\"[");
            s.put(peer);
            s.put("]\"");
        } else {
            s.put(peer);
        }
        s.put(";proto=");
        s.put(scheme);
        if (!req.host.empty()) {
            s.put(";host=");
            put_forwarded_value(s, req.host);
        }
        s.put(crlf);
    }

    if (pl.body.kind == body_kind::length) {
        char num[24];
        const auto r = std::to_chars(num, num + sizeof num, pl.body.length);
        s.put("Content-Length: ");
        s.put(std::string_view(num, size_t(r.ptr - num)));
        s.put(crlf);
    } else if (pl.body.kind == body_kind::chunked) {
        s.put("Transfer-Encoding: chunked\r\n");
    }
    if (pl.upgrading) s.put("Connection: upgrade\r\n");
    s.put(crlf);
}

} // namespace

body_framing framing_of(const http::request_head &req) {
    if (req.chunked) return {body_kind::chunked, 0};
    if (req.content_length >= 0) return {body_kind::length, uint64_t(req.content_length)};
    return {};
}

connection_values::connection_values(std::span<const http::header_field> headers) {
    for (const http::header_field &h : headers) {
        if (!iequals(h.name, "connection")) continue;
        if (n_ < std::size(small_)) {
            small_[n_] = h.value;
        } else {
            if (big_.empty()) big_.assign(small_, small_ + n_);
            big_.push_back(h.value);
        }
        ++n_;
    }
}

bool is_hop_by_hop(std::string_view name, std::span<const std::string_view> connection_values) {
    if (fixed_hop_by_hop(name) || chars::istarts_with(name, "proxy-")) return true;
    for (std::string_view v : connection_values) {
        bool listed = false;
        for_each_list_element(v, [&](std::string_view token) { return listed = chars::iequals_nocase(token, name); });
        if (listed) return true;
    }
    return false;
}

std::string_view apply_strip_prefix(std::string_view path, std::string_view prefix) {
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    if (prefix.empty() || path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return path;
    if (path.size() == prefix.size()) return "/";
    if (path[prefix.size()] != '/') return path; // "/apix" is not under "/api"
    return path.substr(prefix.size());
}

namespace {

std::string_view protocol_name(std::string_view element) { return element.substr(0, element.find('/')); }

// Calls f(element) for each element of the request's Upgrade fields until f returns true.
template <typename F>
bool any_upgrade_element(const http::request_head &req, F &&f) {
    bool found = false;
    for (uint32_t i = 0; i < req.header_count && !found; ++i) {
        const http::header_field &h = req.headers[i];
        if (iequals(h.name, "upgrade")) for_each_list_element(h.value, [&](std::string_view p) { return found = f(p); });
    }
    return found;
}

} // namespace

bool upgrade_allowed(std::string_view protocol, const forward_options &opt) {
    const std::string_view name = protocol_name(protocol);
    if (name.empty()) return false;
    if (opt.websocket && iequals(name, "websocket")) return true;
    bool listed = false;
    for_each_list_element(opt.upgrade_protocols,
                          [&](std::string_view p) { return listed = chars::iequals_nocase(protocol_name(p), name); });
    return listed;
}

bool upgrade_offered(const http::request_head &req, std::string_view protocol) {
    const std::string_view name = protocol_name(protocol);
    return !name.empty() &&
           any_upgrade_element(req, [&](std::string_view p) { return chars::iequals_nocase(protocol_name(p), name); });
}

bool forwards_upgrade(const http::request_head &req, const forward_options &opt) {
    return req.upgrade && any_upgrade_element(req, [&](std::string_view p) { return upgrade_allowed(p, opt); });
}

bool write_request_head(const http::request_head &req, const client_identity &id, bool https, body_framing body,
                        const forward_options &opt, std::string &out) {
    if (req.path_raw.empty()) return false; // authority-form (CONNECT)

    const connection_values conn({req.headers, req.header_count});
    const std::span<const std::string_view> connection = conn.values();

    std::string_view host = opt.host.empty() ? req.host : opt.host;
    if (host.empty()) host = opt.fallback_host;
    const std::string_view path = req.path_raw == "*" ? req.path_raw : apply_strip_prefix(req.path_raw, opt.strip_prefix);
    plan pl{req, id, opt, connection, https, forwards_upgrade(req, opt), path, host, body};
    if (id.peer_trusted) {
        for (uint32_t i = 0; i < req.header_count; ++i) {
            const std::string_view n = req.headers[i].name;
            if (iequals(n, "x-forwarded-proto")) pl.have_xfp = true;
            else if (iequals(n, "x-forwarded-host")) pl.have_xfh = true;
            else if (iequals(n, "x-forwarded-for")) pl.have_xff = true;
            else if (iequals(n, "forwarded")) pl.have_fwd = true;
        }
    }

    count_sink counter;
    emit(counter, pl);
    const size_t start = out.size();
    out.resize(start + counter.n);
    write_sink writer{out.data() + start};
    emit(writer, pl);
    assert(writer.p == out.data() + out.size());
    return true;
}

} // namespace atlas::upstream
