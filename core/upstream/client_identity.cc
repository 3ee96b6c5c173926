#include "upstream/client_identity.hh"

#include <netinet/in.h>

#include "http/chars.hh"

namespace atlas::upstream {

namespace chars = http::chars;
namespace {

// port = 1*5DIGIT <= 65535, or RFC 7239 obfport "_" 1*(ALPHA / DIGIT / "." / "_" / "-").
bool valid_port(std::string_view p) {
    if (p.empty()) return false;
    if (p[0] == '_') {
        if (p.size() == 1) return false;
        for (char c : p.substr(1))
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-'))
                return false;
        return true;
    }
    if (p.size() > 5) return false;
    unsigned v = 0;
    for (char c : p) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + unsigned(c - '0');
    }
    return v <= 65535;
}

// Calls f(element) for every non-empty X-Forwarded-For element, left to right over all lines.
template <class F>
void for_each_xff(std::span<const http::header_field> headers, F &&f) {
    for (const http::header_field &h : headers) {
        if (!chars::iequals(h.name, "x-forwarded-for")) continue;
        std::string_view v = h.value;
        for (;;) {
            const size_t comma = v.find(',');
            const std::string_view e = chars::trim_ows(v.substr(0, comma));
            if (!e.empty()) f(e, true);
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
}

// RFC 7239 4: Forwarded = 1#forwarded-element; forwarded-element = [ pair ] *( ";" [ pair ] );
// pair = token "=" ( token / quoted-string ). Calls f(for_value, ok) per non-empty element, left
// to right over all lines; ok is false when the element is malformed or has no (or two) for=.
// Commas inside quoted strings do not split. Unquoted values run to the next ; , or OWS, so the
// common non-conforming `for=[2001:db8::1]` still reads.
template <class F>
void for_each_forwarded(std::span<const http::header_field> headers, F &&f) {
    for (const http::header_field &h : headers) {
        if (!chars::iequals(h.name, "forwarded")) continue;
        const std::string_view v = h.value;
        size_t i = 0;
        const size_t n = v.size();
        while (i <= n) {
            std::string_view for_value;
            unsigned for_count = 0;
            bool bad = false, nonempty = false;
            // One element: pairs until ',' or the end.
            while (i < n && v[i] != ',') {
                while (i < n && chars::is_ows(v[i])) ++i;
                if (i >= n || v[i] == ',') break;
                if (v[i] == ';') {
                    ++i;
                    continue;
                }
                nonempty = true;
                const size_t name_start = i;
                while (i < n && chars::is_tchar(v[i])) ++i;
                const std::string_view name = v.substr(name_start, i - name_start);
                std::string_view value;
                bool ok = !name.empty() && i < n && v[i] == '=';
                if (ok) {
                    ++i;
                    if (i < n && v[i] == '"') {
                        const size_t vs = ++i;
                        while (i < n && v[i] != '"') i += (v[i] == '\\') ? 2 : 1;
                        if (i >= n) {
                            ok = false; // unterminated: the rest of the line is this element
                            i = n;
                        } else {
                            value = v.substr(vs, i - vs); // escapes left in: they never form an IP
                            ++i;
                        }
                    } else {
                        const size_t vs = i;
                        while (i < n && v[i] != ';' && v[i] != ',' && !chars::is_ows(v[i]) && v[i] != '"') ++i;
                        value = v.substr(vs, i - vs);
                        ok = !value.empty();
                    }
                }
                if (ok) {
                    while (i < n && chars::is_ows(v[i])) ++i;
                    ok = i >= n || v[i] == ';' || v[i] == ',';
                }
                if (!ok) {
                    bad = true;
                    // Resynchronise at the next comma outside a quoted string.
                    bool quoted = false;
                    while (i < n && (quoted || v[i] != ',')) {
                        if (v[i] == '\\' && quoted) ++i;
                        else if (v[i] == '"') quoted = !quoted;
                        ++i;
                    }
                    break;
                }
                if (chars::iequals(name, "for")) {
                    ++for_count;
                    for_value = value;
                }
            }
            if (nonempty) f(for_value, !bad && for_count == 1);
            if (i >= n) break;
            ++i; // the comma
        }
    }
}

void finish(const ip_address &peer, bool peer_trusted, const ip_address &client, uint32_t hops,
            client_identity &out) {
    out.peer = peer;
    out.client = client;
    out.peer_trusted = peer_trusted;
    out.hops = hops;
    out.peer_len = static_cast<uint8_t>(format_ip(peer, out.peer_buf));
    out.client_len = static_cast<uint8_t>(format_ip(client, out.client_buf));
}

void resolve(const ip_address &peer, std::span<const http::header_field> headers, const cidr_set &trusted,
             client_source source, client_identity &out) {
    const bool peer_trusted = trusted.contains(peer);
    if (!peer_trusted || source == client_source::none) {
        finish(peer, peer_trusted, peer, 0, out);
        return;
    }
    // The walk goes right to left, but quoted strings can only be split left to right; so one
    // forward pass keeps what the walk would have answered for the elements seen so far:
    //   untrusted address -> it is the answer (the walk from the right would stop here);
    //   element that is not an address -> the walk would stop here, so the answer is the next
    //                                     element to its right (`pending`), or the peer;
    //   trusted address -> the answer only if nothing was found yet (leftmost) or pending.
    // Linear, allocation-free, and only ever run for requests from a trusted peer.
    ip_address answer;
    uint32_t answer_index = 0, count = 0;
    bool have = false, pending = false;
    auto visit = [&](std::string_view node, bool ok) {
        const uint32_t index = count++;
        ip_address ip;
        if (!ok || !parse_node(node, ip)) {
            pending = true;
            return;
        }
        if (!trusted.contains(ip) || !have || pending) {
            answer = ip;
            answer_index = index;
            have = true;
            pending = false;
        }
    };
    if (source == client_source::x_forwarded_for) for_each_xff(headers, visit);
    else for_each_forwarded(headers, visit);
    if (!have || pending) finish(peer, true, peer, 0, out);
    else finish(peer, true, answer, count - answer_index, out);
}

} // namespace

bool parse_node(std::string_view text, ip_address &out) {
    if (text.empty()) return false;
    if (text[0] == '[') {
        const size_t close = text.find(']');
        if (close == std::string_view::npos) return false;
        const std::string_view inner = text.substr(1, close - 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty() && (rest[0] != ':' || !valid_port(rest.substr(1)))) return false;
        // Brackets are for IPv6 only ("[192.0.2.1]" is not a node).
        return inner.find(':') != std::string_view::npos && parse_ip(inner, out);
    }
    if (parse_ip(text, out)) return true;
    // "192.0.2.1:80": exactly one colon, so it cannot be a bare IPv6 address.
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) return false;
    ip_address ip;
    if (!valid_port(text.substr(colon + 1)) || !parse_ip(text.substr(0, colon), ip) || ip.family != AF_INET)
        return false;
    out = ip;
    return true;
}

bool parse_peer(std::string_view text, ip_address &out) { return parse_node(text, out); }

bool resolve_client(std::string_view peer, std::span<const http::header_field> headers, const cidr_set &trusted,
                    client_source source, client_identity &out) {
    ip_address ip;
    if (!parse_peer(peer, ip)) return false;
    resolve(ip, headers, trusted, source, out);
    return true;
}

bool resolve_client(const sockaddr *peer, std::span<const http::header_field> headers, const cidr_set &trusted,
                    client_source source, client_identity &out) {
    ip_address ip;
    if (!parse_ip(peer, ip)) return false;
    resolve(ip, headers, trusted, source, out);
    return true;
}

} // namespace atlas::upstream
