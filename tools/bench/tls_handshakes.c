// tls_handshakes.c - TLS 1.3 handshake load for `tools/dev bench tls` (issue 6).
//
//   tls-handshakes --port P [--host 127.0.0.1] [--path /1k.bin] [--mode full|resumed]
//                  [--concurrency 32] [--duration 5] [--expect-bytes N] [--sni localhost]
//                  [--timeout 10] [--drain 2]
//
// Every connection: TCP connect, TLS 1.3 handshake, one `GET PATH` with `Connection:
// close`, the whole response read up to the server's close, close. CONCURRENCY
// connections are in flight at any time (each that ends is replaced at once) until
// DURATION seconds have passed; then no new one starts and those in flight get DRAIN
// seconds to finish (they count if they do). Non-blocking sockets, one epoll loop, one
// thread: run it pinned (`taskset -c 0`), like wrk.
//
// full:    no session is ever offered: every handshake is a full one (ECDHE and the
//          server's CertificateVerify signature).
// resumed: one connection first, alone, obtains a session: a TLS 1.3 server sends its
//          tickets after the handshake, and they are read with the response. Every
//          connection then offers that session (SSL_set_session); SSL_session_reused()
//          says whether the server resumed it, and only those count as "resumed".
//
// The certificate is not verified (the bench's is self-signed); the CertificateVerify
// signature is checked all the same, as part of every full TLS 1.3 handshake.
// Output: one JSON line on stdout (connections/s, errors by kind, resumed share, latency
// percentiles of whole connections, the negotiated protocol, suite and group). Exit
// status 0 unless the setup failed (then the JSON has "fatal").
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum kind { E_CONNECT, E_HANDSHAKE, E_WRITE, E_READ, E_STATUS, E_SHORT, E_TIMEOUT, E_KINDS };
static const char *kind_names[E_KINDS] = {"connect", "handshake", "write", "read", "status", "short", "timeout"};

enum state { S_FREE, S_CONNECTING, S_HANDSHAKE, S_WRITING, S_READING };

struct conn {
    int fd;
    SSL *ssl;
    enum state st;
    uint32_t events;   // what epoll waits for now
    double started;    // monotonic seconds
    size_t sent;       // request bytes written
    char head[8192];   // the response head, until its blank line
    size_t head_len;
    int head_done;
    int status;
    long long content_length;  // -1: none given
    long long body;            // body bytes seen
    int tickets;               // NewSessionTicket messages seen on this connection
};

static struct {
    const char *host, *path, *sni, *mode;
    int port, concurrency;
    double duration, timeout, drain;
    long long expect_bytes;
} opt = {"127.0.0.1", "/1k.bin", "localhost", "full", 0, 32, 5.0, 10.0, 2.0, -1};

static SSL_CTX *ctx;
static SSL_SESSION *session;  // resumed mode: the session every connection offers
static int capture;            // the primer is running: keep the first session it gets
static int ep;
static struct sockaddr_in addr;
static char request[2048];
static size_t request_len;

static long long done, resumed, errors[E_KINDS], unfinished, started_total, tickets_total, non200;
static char first_error[E_KINDS][200];
static uint32_t *lat_us;  // latency of every completed connection
static size_t lat_n, lat_cap;
static char proto[32] = "", suite[64] = "", group[32] = "", sigalg[48] = "";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void fatal(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("{\"fatal\": ");
    json_str(stdout, msg);
    printf("}\n");
    exit(1);
}

static void ssl_errstr(char *out, size_t n, const char *what, int sslerr) {
    unsigned long e = ERR_get_error();
    char buf[160] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    else if (sslerr == SSL_ERROR_SYSCALL) snprintf(buf, sizeof buf, "%s", errno ? strerror(errno) : "EOF");
    snprintf(out, n, "%s: SSL error %d %s", what, sslerr, buf);
    ERR_clear_error();
}

static int new_session_cb(SSL *ssl, SSL_SESSION *s) {
    struct conn *c = SSL_get_app_data(ssl);
    if (c) c->tickets++;
    if (capture && !session) {
        session = s;
        return 1;  // we keep the reference
    }
    return 0;
}

static void set_events(struct conn *c, uint32_t ev) {
    if (c->events == ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) < 0) fatal("epoll_ctl: %s", strerror(errno));
    c->events = ev;
}

static void release(struct conn *c, int abort_it) {
    if (c->ssl) {
        // The server has closed (Connection: close): no close_notify is sent back. Marked
        // shut down all the same, or SSL_free takes the session for a bad one and makes
        // it not resumable (ssl_clear_bad_session) - the primer's session included.
        if (!abort_it) SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        if (abort_it) {  // RST: no TIME_WAIT on our side for connections we give up
            struct linger l = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(c->fd);  // also removes it from epoll
    }
    c->ssl = NULL;
    c->fd = -1;
    c->st = S_FREE;
    c->events = 0;
}

static void fail(struct conn *c, enum kind k, const char *msg) {
    errors[k]++;
    if (!first_error[k][0]) snprintf(first_error[k], sizeof first_error[k], "%s", msg);
    release(c, 1);
}

static void start(struct conn *c) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->content_length = -1;
    c->started = now();
    started_total++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(c, E_CONNECT, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // as wrk does
    c->ssl = SSL_new(ctx);
    if (!c->ssl) fatal("SSL_new failed");
    SSL_set_app_data(c->ssl, c);
    if (opt.sni && *opt.sni) SSL_set_tlsext_host_name(c->ssl, opt.sni);
    if (session && !capture) {
        // A copy each time: when a resumed connection gets its new tickets, OpenSSL
        // marks the session it offered not resumable (remove_session_lock), which would
        // turn every later connection offering the same object into a full handshake.
        SSL_SESSION *copy = SSL_SESSION_dup(session);
        if (!copy || !SSL_set_session(c->ssl, copy)) fatal("SSL_SESSION_dup/SSL_set_session failed");
        SSL_SESSION_free(copy);
    }
    SSL_set_fd(c->ssl, c->fd);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        char m[120];
        snprintf(m, sizeof m, "connect: %s", strerror(errno));
        fail(c, E_CONNECT, m);
        return;
    }
    c->st = S_CONNECTING;
    set_events(c, EPOLLOUT);
}

// Parses the head once its blank line is in; returns -1 on a malformed head.
static int parse_head(struct conn *c, const char *end) {
    c->head_done = 1;
    if (sscanf(c->head, "HTTP/1.%*d %d", &c->status) != 1) return -1;
    for (const char *p = c->head; p && p < end; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, "content-length:", 15) == 0) c->content_length = atoll(p + 15);
    }
    return 0;
}

static void finished(struct conn *c) {
    if (!c->head_done) {
        fail(c, E_SHORT, "closed before the response head");
        return;
    }
    if (c->status != 200) {
        char m[64];
        snprintf(m, sizeof m, "status %d", c->status);
        non200++;
        fail(c, E_STATUS, m);
        return;
    }
    long long want = c->content_length >= 0 ? c->content_length : opt.expect_bytes;
    if ((want >= 0 && c->body != want) || (opt.expect_bytes >= 0 && c->body != opt.expect_bytes)) {
        char m[120];
        snprintf(m, sizeof m, "body %lld bytes, expected %lld", c->body, opt.expect_bytes >= 0 ? opt.expect_bytes : want);
        fail(c, E_SHORT, m);
        return;
    }
    done++;
    if (SSL_session_reused(c->ssl)) resumed++;
    tickets_total += c->tickets;
    if (!proto[0]) {
        snprintf(proto, sizeof proto, "%s", SSL_get_version(c->ssl));
        snprintf(suite, sizeof suite, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
        int g = SSL_get_negotiated_group(c->ssl);
        const char *gn = g > 0 ? OBJ_nid2sn(g & ~0x01000000) : NULL;  // TLSEXT_nid_unknown marks unnamed ids
        snprintf(group, sizeof group, "%s", gn ? gn : "?");
        int nid = 0;
        if (SSL_get_peer_signature_type_nid(c->ssl, &nid) == 1) {
            int md = 0;
            SSL_get_peer_signature_nid(c->ssl, &md);
            snprintf(sigalg, sizeof sigalg, "%s+%s", OBJ_nid2sn(nid), md ? OBJ_nid2sn(md) : "?");
        }
    }
    double us = (now() - c->started) * 1e6;
    if (lat_n == lat_cap) {
        lat_cap = lat_cap ? 2 * lat_cap : 65536;
        lat_us = realloc(lat_us, lat_cap * sizeof *lat_us);
        if (!lat_us) fatal("out of memory");
    }
    lat_us[lat_n++] = us > 4e9 ? 4000000000u : (uint32_t)us;
    release(c, 0);
}

// Drives one connection as far as it goes without blocking.
static void step(struct conn *c) {
    char m[300];
    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            snprintf(m, sizeof m, "connect: %s", strerror(err));
            fail(c, E_CONNECT, m);
            return;
        }
        c->st = S_HANDSHAKE;
    }
    if (c->st == S_HANDSHAKE) {
        int r = SSL_connect(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) set_events(c, EPOLLIN);
            else if (e == SSL_ERROR_WANT_WRITE) set_events(c, EPOLLOUT);
            else {
                ssl_errstr(m, sizeof m, "handshake", e);
                fail(c, E_HANDSHAKE, m);
            }
            return;
        }
        c->st = S_WRITING;
    }
    if (c->st == S_WRITING) {
        while (c->sent < request_len) {
            int r = SSL_write(c->ssl, request + c->sent, (int)(request_len - c->sent));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ) set_events(c, EPOLLIN);
                else if (e == SSL_ERROR_WANT_WRITE) set_events(c, EPOLLOUT);
                else {
                    ssl_errstr(m, sizeof m, "write", e);
                    fail(c, E_WRITE, m);
                }
                return;
            }
            c->sent += (size_t)r;
        }
        c->st = S_READING;
    }
    if (c->st == S_READING) {
        char buf[16384];
        for (;;) {
            int r = SSL_read(c->ssl, buf, sizeof buf);
            if (r > 0) {
                size_t off = 0;
                if (!c->head_done) {
                    size_t n = (size_t)r;
                    if (n > sizeof c->head - 1 - c->head_len) n = sizeof c->head - 1 - c->head_len;
                    memcpy(c->head + c->head_len, buf, n);
                    size_t before = c->head_len;
                    c->head_len += n;
                    c->head[c->head_len] = 0;
                    char *end = strstr(c->head, "\r\n\r\n");
                    if (end) {
                        if (parse_head(c, end) < 0) {
                            fail(c, E_STATUS, "malformed response head");
                            return;
                        }
                        off = (size_t)(end + 4 - c->head) - before;
                    } else if (c->head_len == sizeof c->head - 1) {
                        fail(c, E_STATUS, "response head over 8 KiB");
                        return;
                    } else {
                        continue;
                    }
                }
                c->body += r - (long long)off;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                set_events(c, EPOLLIN);
                return;
            }
            if (e == SSL_ERROR_WANT_WRITE) {
                set_events(c, EPOLLOUT);
                return;
            }
            if (e == SSL_ERROR_ZERO_RETURN) {  // close_notify, or (IGNORE_UNEXPECTED_EOF) a bare FIN
                finished(c);
                return;
            }
            ssl_errstr(m, sizeof m, "read", e);
            // Everything arrived and then the server reset or broke the stream: still a
            // failure (the response was complete, but the connection did not end cleanly).
            fail(c, E_READ, m);
            return;
        }
    }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!lat_n) return -1;
    size_t i = (size_t)(p / 100.0 * (double)(lat_n - 1) + 0.5);
    return lat_us[i] / 1000.0;
}

// Runs until `until` (then drains); stop_after: return as soon as that many connections
// are done (the primer). Returns the seconds it ran.
static double run(struct conn *conns, int n, double until, long long stop_after) {
    double t0 = now();
    int active = 0;
    for (int i = 0; i < n; ++i) {
        start(&conns[i]);
        if (conns[i].st != S_FREE) active++;
    }
    struct epoll_event evs[256];
    double next_sweep = t0 + 0.1, drain_until = 0;
    for (;;) {
        double t = now();
        int stopping = t >= until || (stop_after && done >= stop_after);
        if (stopping && !drain_until) drain_until = stop_after ? t : t + opt.drain;
        if (stopping && (active == 0 || t >= drain_until)) break;
        int k = epoll_wait(ep, evs, 256, 10);
        if (k < 0 && errno != EINTR) fatal("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < k; ++i) step(evs[i].data.ptr);
        t = now();
        if (t >= next_sweep) {
            for (int i = 0; i < n; ++i)
                if (conns[i].st != S_FREE && t - conns[i].started > opt.timeout) fail(&conns[i], E_TIMEOUT, "no end within the timeout");
            next_sweep = t + 0.1;
        }
        stopping = t >= until || (stop_after && done >= stop_after);
        active = 0;
        for (int i = 0; i < n; ++i) {
            if (conns[i].st == S_FREE && !stopping) start(&conns[i]);
            if (conns[i].st != S_FREE) active++;
        }
    }
    double elapsed = now() - t0;
    for (int i = 0; i < n; ++i)
        if (conns[i].st != S_FREE) {
            unfinished++;
            release(&conns[i], 1);
        }
    return elapsed;
}

static void usage(void) {
    fprintf(stderr,
            "usage: tls-handshakes --port P [--host H] [--path /x] [--mode full|resumed] [--concurrency N]\n"
            "                      [--duration S] [--expect-bytes N] [--sni NAME] [--timeout S] [--drain S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--path")) opt.path = v;
        else if (!strcmp(a, "--mode")) opt.mode = v;
        else if (!strcmp(a, "--concurrency")) opt.concurrency = atoi(v);
        else if (!strcmp(a, "--duration")) opt.duration = atof(v);
        else if (!strcmp(a, "--expect-bytes")) opt.expect_bytes = atoll(v);
        else if (!strcmp(a, "--sni")) opt.sni = v;
        else if (!strcmp(a, "--timeout")) opt.timeout = atof(v);
        else if (!strcmp(a, "--drain")) opt.drain = atof(v);
        else usage();
        ++i;
    }
    int resume = !strcmp(opt.mode, "resumed");
    if (opt.port <= 0 || opt.port > 65535 || opt.concurrency < 1 || opt.duration <= 0 ||
        (!resume && strcmp(opt.mode, "full")))
        usage();
    signal(SIGPIPE, SIG_IGN);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1) fatal("--host %s: not an IPv4 address", opt.host);
    request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                                   opt.path, opt.sni && *opt.sni ? opt.sni : opt.host);

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) fatal("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Sessions only ever go through new_session_cb: nothing is cached behind our back, so
    // `full` never offers one and `resumed` offers exactly the primer's.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fatal("epoll_create1: %s", strerror(errno));
    struct conn *conns = calloc((size_t)opt.concurrency, sizeof *conns);
    if (!conns) fatal("out of memory");
    for (int i = 0; i < opt.concurrency; ++i) conns[i].fd = -1;

    double primer_s = 0;
    int primer_tickets = 0;
    if (resume) {
        capture = 1;
        primer_s = run(conns, 1, now() + opt.timeout, 1);
        capture = 0;
        if (!done || !session) {
            long long e = 0;
            for (int k = 0; k < E_KINDS; ++k) e += errors[k];
            char why[300] = "";
            for (int k = 0; k < E_KINDS; ++k)
                if (first_error[k][0]) {
                    snprintf(why, sizeof why, "%s", first_error[k]);
                    break;
                }
            fatal("resumed: the priming connection %s", !done ? (e ? why : "did not complete") : "got no session ticket");
        }
        primer_tickets = (int)tickets_total;
        // The figures are the loop's only.
        done = resumed = tickets_total = started_total = non200 = unfinished = 0;
        memset(errors, 0, sizeof errors);
        memset(first_error, 0, sizeof first_error);
        lat_n = 0;
        proto[0] = suite[0] = group[0] = sigalg[0] = 0;
    }

    double elapsed = run(conns, opt.concurrency, now() + opt.duration, 0);

    qsort(lat_us, lat_n, sizeof *lat_us, cmp_u32);
    long long errs = 0;
    for (int k = 0; k < E_KINDS; ++k) errs += errors[k];
    printf("{\"mode\": \"%s\", \"concurrency\": %d, \"duration_s\": %.3f, \"elapsed_s\": %.3f, \"connections\": %lld, "
           "\"conn_per_s\": %.1f, \"resumed\": %lld, \"resumed_share\": %.5f, \"started\": %lld, \"unfinished\": %lld, "
           "\"errors_total\": %lld, \"non200\": %lld, \"errors\": {",
           opt.mode, opt.concurrency, opt.duration, elapsed, done, elapsed > 0 ? done / elapsed : 0.0, resumed,
           done ? (double)resumed / (double)done : 0.0, started_total, unfinished, errs, non200);
    for (int k = 0; k < E_KINDS; ++k) printf("%s\"%s\": %lld", k ? ", " : "", kind_names[k], errors[k]);
    printf("}, \"first_errors\": {");
    int first = 1;
    for (int k = 0; k < E_KINDS; ++k)
        if (first_error[k][0]) {
            printf("%s\"%s\": ", first ? "" : ", ", kind_names[k]);
            json_str(stdout, first_error[k]);
            first = 0;
        }
    printf("}, \"tickets_per_conn\": %.3f, \"latency_ms\": {\"50\": %.3f, \"90\": %.3f, \"99\": %.3f, \"max\": %.3f}, ",
           done ? (double)tickets_total / (double)done : 0.0, pct(50), pct(90), pct(99), lat_n ? lat_us[lat_n - 1] / 1000.0 : -1);
    printf("\"protocol\": ");
    json_str(stdout, proto);
    printf(", \"cipher\": ");
    json_str(stdout, suite);
    printf(", \"group\": ");
    json_str(stdout, group);
    printf(", \"peer_signature\": ");
    json_str(stdout, sigalg);
    if (resume) printf(", \"primer_s\": %.4f, \"primer_tickets\": %d", primer_s, primer_tickets);
    printf(", \"openssl\": ");
    json_str(stdout, OpenSSL_version(OPENSSL_VERSION));
    printf("}\n");
    return 0;
}
