#include "chain/access_log.hh"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>
#include <initializer_list>
#include <span>
#include <string_view>

#include "chain/proxy.hh"
#include "chain/stream_proxy.hh"
#include "chain/worker.hh"
#include "http/chars.hh"
#include "upstream/client_identity.hh"

namespace atlas::chain::access_log {

namespace {

// A buffer is written once it holds this much (else on the sweep).
constexpr size_t flush_at = 32 * 1024;

// The second's timestamps, formatted once per second per thread.
struct clock_text {
    time_t sec = -1;
    char combined[32];  // 22/Nov/2026:06:20:00 +0000
    char iso[24];       // 2026-11-22T06:20:00Z
};

const clock_text &now_text() {
    thread_local clock_text t;
    time_t s = time(nullptr);
    if (s != t.sec) {
        tm g;
        gmtime_r(&s, &g);
        strftime(t.combined, sizeof t.combined, "%d/%b/%Y:%H:%M:%S +0000", &g);
        strftime(t.iso, sizeof t.iso, "%Y-%m-%dT%H:%M:%SZ", &g);
        t.sec = s;
    }
    return t;
}

void put_number(std::string &out, uint64_t n) {
    char num[24];
    out.append(num, size_t(std::to_chars(num, num + sizeof num, n).ptr - num));
}

const char hex[] = "0123456789abcdef";

// A request-supplied value inside "...": nginx's escaping (\xHH for '"', '\\', controls
// and bytes >= 0x7f), so a client cannot forge line breaks or fields.
void put_quoted_combined(std::string &out, std::string_view v) {
    for (unsigned char c : v) {
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            const char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            out.append(e, 4);
        } else {
            out.push_back(char(c));
        }
    }
}

// A JSON string value. Bytes >= 0x80 are written as \u00HH (read as Latin-1), so the
// line stays valid JSON whatever the client sent.
void put_json_string(std::string &out, std::string_view v) {
    out.push_back('"');
    for (unsigned char c : v) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(char(c));
        } else if (c < 0x20 || c >= 0x7f) {
            const char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            out.append(e, 6);
        } else {
            out.push_back(char(c));
        }
    }
    out.push_back('"');
}

// ,"name":n
void put_json_number(std::string &out, std::string_view name, uint64_t n) {
    out.append(",\"").append(name).append("\":");
    put_number(out, n);
}

// The JSON fields of a connection's TLS handshake (none without one).
void put_tls_json(std::string &out, const transport_info *tls) {
    if (!tls) return;
    for (auto [k, v] : {std::pair<std::string_view, std::string_view>{"tls_protocol", tls->protocol},
                        {"tls_cipher", tls->cipher},
                        {"tls_server_name", tls->server_name},
                        {"tls_alpn", tls->alpn}}) {
        out.append(",\"").append(k).append("\":");
        put_json_string(out, v);
    }
    out.append(",\"tls_resumed\":").append(tls->resumed ? "true" : "false");
}

std::string_view header(const exchange *ex, std::string_view lower_name) {
    const http::header_field *h = ex->find_header(lower_name);
    return h ? h->value : std::string_view();
}

// An address as logs show it (nginx's $remote_addr): "1.2.3.4:5678" -> "1.2.3.4",
// "[::1]:5678" -> "::1"; a bare address stays as it is.
std::string_view without_port(std::string_view a) {
    if (!a.empty() && a.front() == '[') {
        size_t close = a.find(']');
        return close == std::string_view::npos ? a : a.substr(1, close - 1);
    }
    size_t colon = a.find(':');
    if (colon != std::string_view::npos && a.find(':', colon + 1) == std::string_view::npos) return a.substr(0, colon);
    return a;
}

// The one client identity: the proxy's when it resolved one, else resolved here the
// same way (trusted proxies, then the header), else the TCP peer.
std::string_view client_of(worker &w, exchange *ex) {
    std::string_view proxied = proxy::client_of(ex);
    if (!proxied.empty()) return proxied;
    const listener_rt &l = *ex->c->listener;
    std::string_view peer = w.peer_address(ex->c);
    if (l.trusted.empty()) return peer;
    thread_local upstream::client_identity id;
    std::span<const http::header_field> headers(ex->req_headers.data(), ex->req_headers.size());
    if (!upstream::resolve_client(peer, headers, l.trusted, l.client_from, id)) return peer;
    return id.client_text();
}

std::string &buffer_for(worker &w, int fd) {
    for (auto &[f, buf] : w.log_buffers_)
        if (f == fd) return buf;
    w.log_buffers_.emplace_back(fd, std::string());
    w.log_buffers_.back().second.reserve(flush_at * 2);
    return w.log_buffers_.back().second;
}

void write_out(int fd, std::string &buf) {
    size_t off = 0;
    while (off < buf.size()) {
        ssize_t n = ::write(fd, buf.data() + off, buf.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // a full disk or a closed stderr: these lines are lost, not retried forever
        off += size_t(n);
    }
    buf.clear();
}

// What one line says. An empty method means the request was rejected before it parsed.
struct entry {
    std::string_view client, method, target, protocol, host, referer, agent, upstream;
    const transport_info *tls = nullptr;  // the connection's handshake, when it had one
    unsigned status = 0;
    uint64_t bytes = 0, duration_ms = 0;
};

void write_entry(worker &w, const listener_rt &l, const entry &e) {
    std::string &out = buffer_for(w, l.log_fd);
    const clock_text &t = now_text();
    if (!l.log_json) {
        // nginx's combined: $remote_addr - $remote_user [$time_local] "$request" $status
        // $body_bytes_sent "$http_referer" "$http_user_agent"
        out.append(e.client).append(" - - [").append(t.combined).append("] \"");
        if (e.method.empty()) {
            out.push_back('-');
        } else {
            put_quoted_combined(out, e.method);
            out.push_back(' ');
            put_quoted_combined(out, e.target);
            out.push_back(' ');
            out.append(e.protocol);
        }
        out.append("\" ");
        put_number(out, e.status);
        out.push_back(' ');
        put_number(out, e.bytes);
        out.append(" \"");
        if (e.referer.empty()) out.push_back('-');
        else put_quoted_combined(out, e.referer);
        out.append("\" \"");
        if (e.agent.empty()) out.push_back('-');
        else put_quoted_combined(out, e.agent);
        out.append("\"\n");
    } else {
        // Keys in a fixed order: text fields, numbers, then the rest of the text fields.
        using text = std::pair<std::string_view, std::string_view>;
        using number = std::pair<std::string_view, uint64_t>;
        auto put_texts = [&](std::initializer_list<text> fields) {
            for (const text &f : fields) {
                out.append(",\"").append(f.first).append("\":");
                put_json_string(out, f.second);
            }
        };
        out.append("{\"time\":\"").append(t.iso).append("\"");
        put_texts({{"client", e.client}, {"method", e.method}, {"target", e.target}, {"protocol", e.protocol},
                   {"host", e.host}});
        for (const number &f : {number{"status", e.status}, number{"bytes", e.bytes}, number{"duration_ms", e.duration_ms}})
            put_json_number(out, f.first, f.second);
        put_texts({{"referer", e.referer}, {"user_agent", e.agent}, {"upstream", e.upstream}});
        put_tls_json(out, e.tls);
        out.append("}\n");
    }
    if (out.size() >= flush_at) write_out(l.log_fd, out);
}

}  // namespace

void record(worker &w, exchange *ex, unsigned status) {
    const listener_rt *l = ex->c ? ex->c->listener : nullptr;
    if (!l || l->log_fd < 0 || ex->head.method.empty()) return;
    entry e;
    e.client = without_port(client_of(w, ex));
    e.method = ex->head.method;
    e.target = ex->head.target;
    e.protocol = ex->head.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    e.host = ex->host;
    e.referer = header(ex, "referer");
    e.agent = header(ex, "user-agent");
    e.upstream = proxy::server_of(ex);
    if (ex->c->info_set) e.tls = ex->c->info.get();
    e.status = status;
    e.bytes = ex->head.is_head ? 0 : ex->resp_written;
    e.duration_ms = w.now_ms_ > ex->start_ms ? w.now_ms_ - ex->start_ms : 0;
    write_entry(w, *l, e);
}

void record_rejected(worker &w, conn *c, unsigned status, uint64_t bytes) {
    const listener_rt *l = c->listener;
    if (!l || l->log_fd < 0) return;
    entry e;
    e.client = without_port(w.peer_address(c));
    if (c->info_set) e.tls = c->info.get();
    e.status = status;
    e.bytes = bytes;
    write_entry(w, *l, e);
}

void record_stream(worker &w, conn *c, unsigned status) {
    const listener_rt *l = c->listener;
    if (!l || l->log_fd < 0) return;
    std::string_view client = without_port(w.peer_address(c));
    std::string_view server = stream_proxy::server_of(c);
    if (!status) status = stream_proxy::status_of(c);
    uint64_t ms = w.now_ms_ > c->opened_ms ? w.now_ms_ - c->opened_ms : 0;
    const transport_info *tls = c->info_set ? c->info.get() : nullptr;
    std::string &out = buffer_for(w, l->log_fd);
    const clock_text &t = now_text();
    const std::pair<std::string_view, uint64_t> numbers[] = {
        {"status", status}, {"bytes_sent", c->bytes_out}, {"bytes_received", c->bytes_in}};
    if (!l->log_json) {
        // nginx's stream log: $remote_addr [$time_local] $protocol $status $bytes_sent
        // $bytes_received $session_time "$upstream_addr"
        out.append(client).append(" [").append(t.combined).append("] TCP");
        for (const auto &[name, n] : numbers) {
            out.push_back(' ');
            put_number(out, n);
        }
        out.push_back(' ');
        put_number(out, ms / 1000);
        char frac[5] = {'.', char('0' + ms % 1000 / 100), char('0' + ms % 100 / 10), char('0' + ms % 10), 0};
        out.append(frac).append(" \"").append(server.empty() ? std::string_view("-") : server).append("\"\n");
    } else {
        out.append("{\"time\":\"").append(t.iso).append("\",\"client\":");
        put_json_string(out, client);
        out.append(",\"protocol\":\"TCP\"");
        for (const auto &[name, n] : numbers) put_json_number(out, name, n);
        put_json_number(out, "duration_ms", ms);
        out.append(",\"upstream\":");
        put_json_string(out, server);
        put_tls_json(out, tls);
        out.append("}\n");
    }
    if (out.size() >= flush_at) write_out(l->log_fd, out);
}

void flush(worker &w) {
    for (auto &[fd, buf] : w.log_buffers_)
        if (!buf.empty()) write_out(fd, buf);
}

}  // namespace atlas::chain::access_log
