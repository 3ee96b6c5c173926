// bulk.c - long TCP streams for `tools/dev bench tcp` (issue 7), the bulk workload.
//
//   tcp-bulk server [--port 0]
//   tcp-bulk client --port P --direction download|upload [--connections 4]
//                   [--duration 10] [--warmup 0] [--host 127.0.0.1] [--connect-timeout 5]
//
// server: the backend. Listens on 127.0.0.1 (port 0 = any; the chosen one is printed as
//   "listening on 127.0.0.1:PORT") and waits for each connection's first byte: 'd' makes
//   it a source (it sends the same 64 KiB buffer over and over, until the peer goes),
//   'u' a sink (it reads into a 64 KiB buffer and drops what it reads); anything else
//   closes the connection. One direction per connection, so one backend (and one
//   proxy config) serves both directions.
// client: the load. CONNECTIONS connections to PORT (the proxy under test), each sending
//   its direction's byte first, then for WARMUP + DURATION seconds reading (download)
//   or writing (upload) 64 KiB at a time; bytes moved in the last DURATION seconds are
//   counted. Then every connection is reset (SO_LINGER 0: no FIN handshake or data left
//   to drain into the next run). A connection that fails is counted by kind and not
//   replaced. Output: one JSON line on stdout (bytes, bytes/s, per connection, errors);
//   exit status 0 unless the setup failed (then the JSON has "fatal").
//
// Byte counting only: no checksums, no content checks. One thread, level-triggered
// epoll, a read or write repeated while it fills the whole buffer. Run it pinned
// (`taskset -c 0`), like wrk.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define MAX_CONNS 1024

static char buf[BUF];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int usage(void) {
    fprintf(stderr,
            "usage: tcp-bulk server [--port N]\n"
            "       tcp-bulk client --port N --direction download|upload [--connections N] [--duration S]\n"
            "                       [--warmup S] [--host A] [--connect-timeout S]\n");
    return 2;
}

// ------------------------------------------------------------------ server

enum role { R_NEW, R_SOURCE, R_SINK };

struct peer {
    int fd;
    enum role role;
};

static void drop(struct peer *p) {
    close(p->fd);  // also leaves the epoll set
    free(p);
}

// Reads what is there: the role byte first. 0 = keep it, -1 = done with it.
static int server_read(int ep, struct peer *p) {
    for (;;) {
        ssize_t n = recv(p->fd, buf, BUF, 0);
        if (n == 0) return -1;
        if (n < 0) return errno == EINTR ? 0 : (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        if (p->role == R_NEW) {
            if (buf[0] == 'd') {
                p->role = R_SOURCE;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = p};
                epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
            } else if (buf[0] == 'u') {
                p->role = R_SINK;
            } else {
                return -1;
            }
        }
        if (n < BUF) return 0;  // most likely drained: back to epoll
    }
}

static int server_write(struct peer *p) {
    for (;;) {
        ssize_t n = send(p->fd, buf, BUF, MSG_NOSIGNAL);
        if (n == BUF) continue;
        if (n > 0) return 0;
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
}

static int run_server(int port) {
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (lfd >= 0) setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4096) != 0) {
        fprintf(stderr, "tcp-bulk: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    socklen_t len = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(sa.sin_port));
    fflush(stdout);
    memset(buf, 'x', sizeof buf);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};  // NULL: the listener
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return 1;
        for (int i = 0; i < n; ++i) {
            struct peer *p = events[i].data.ptr;
            if (!p) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    p = calloc(1, sizeof *p);
                    if (!p) {
                        close(fd);
                        continue;
                    }
                    p->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = p};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            uint32_t e = events[i].events;
            int rc = 0;
            if (e & (EPOLLERR | EPOLLHUP)) rc = -1;
            if (rc == 0 && (e & (EPOLLIN | EPOLLRDHUP))) rc = server_read(ep, p);
            if (rc == 0 && p->role == R_SOURCE && (e & EPOLLOUT)) rc = server_write(p);
            if (rc < 0) drop(p);
        }
    }
}

// ------------------------------------------------------------------ client

enum kind { E_CONNECT, E_RESET, E_EOF, E_OTHER, E_KINDS };
static const char *kind_names[E_KINDS] = {"connect", "reset", "eof", "other"};

struct conn {
    int fd;
    int up;          // connected and its direction byte sent
    int done;        // failed or closed: no longer counted
    uint64_t bytes;  // moved while counting
};

static struct conn conns[MAX_CONNS];
static long long errors[E_KINDS];
static char first_error[256];

static void fail(int ep, struct conn *c, enum kind k, const char *what, int err) {
    errors[k]++;
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s: %s", what, err ? strerror(err) : "closed by the peer");
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->done = 1;
}

static void json_fatal(const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    for (char *s = msg; *s; ++s)
        if (*s == '"' || *s == '\\') *s = '\'';
    printf("{\"fatal\": \"%s\"}\n", msg);
}

static int run_client(const char *host, int port, int download, int nconns, double duration, double warmup,
                      double connect_timeout) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        json_fatal("bad --host %s", host);
        return 1;
    }
    memset(buf, 'x', sizeof buf);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    double t0 = now();
    for (int i = 0; i < nconns; ++i) {
        struct conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            json_fatal("socket: %s", strerror(errno));
            return 1;
        }
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
            errors[E_CONNECT]++;
            if (!first_error[0]) snprintf(first_error, sizeof first_error, "connect: %s", strerror(errno));
            close(c->fd);
            c->done = 1;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    char dir = download ? 'd' : 'u';
    double count_from = t0 + warmup, end = count_from + duration, counted_from = 0;
    int counting = warmup <= 0, live = nconns;
    if (counting) counted_from = t0;
    struct epoll_event events[MAX_CONNS];
    for (;;) {
        double t = now();
        if (!counting && t >= count_from) {
            counting = 1;
            counted_from = t;
        }
        if (t >= end) break;
        double until = counting ? end : count_from;
        int ms = (int)((until - t) * 1000.0) + 1;
        int n = epoll_wait(ep, events, MAX_CONNS, ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        for (int i = 0; i < n; ++i) {
            struct conn *c = events[i].data.ptr;
            if (c->done) continue;
            if (!c->up) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || send(c->fd, &dir, 1, MSG_NOSIGNAL) != 1) {
                    fail(ep, c, E_CONNECT, "connect", err ? err : errno);
                    live--;
                    continue;
                }
                c->up = 1;
                struct epoll_event ev = {.events = download ? EPOLLIN : EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            for (;;) {
                ssize_t r = download ? recv(c->fd, buf, BUF, 0) : send(c->fd, buf, BUF, MSG_NOSIGNAL);
                if (r > 0) {
                    if (counting) c->bytes += (uint64_t)r;
                    if (r == BUF) continue;
                    break;
                }
                if (r < 0 && errno == EINTR) continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (r == 0) fail(ep, c, E_EOF, download ? "recv" : "send", 0);
                else fail(ep, c, errno == ECONNRESET || errno == EPIPE ? E_RESET : E_OTHER,
                          download ? "recv" : "send", errno);
                live--;
                break;
            }
        }
        if (!live) break;
        for (int i = 0; i < nconns; ++i) {
            struct conn *c = &conns[i];
            if (!c->up && !c->done && now() - t0 > connect_timeout) {
                fail(ep, c, E_CONNECT, "connect", ETIMEDOUT);
                live--;
            }
        }
    }
    double t1 = now();
    double counted = counting ? t1 - counted_from : 0.0;
    struct linger lg = {1, 0};  // reset: nothing lingers into the next run
    uint64_t total = 0, least = UINT64_MAX;
    int up = 0;
    for (int i = 0; i < nconns; ++i) {
        struct conn *c = &conns[i];
        total += c->bytes;
        if (c->bytes < least) least = c->bytes;
        up += c->up;
        if (!c->done) {
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(c->fd);
        }
    }
    long long errors_total = 0;
    for (int k = 0; k < E_KINDS; ++k) errors_total += errors[k];
    printf("{\"direction\": \"%s\", \"connections\": %d, \"established\": %d, \"buffer\": %d, \"warmup_s\": %.3f, "
           "\"duration_s\": %.3f, \"counted_s\": %.6f, \"elapsed_s\": %.6f, \"bytes\": %llu, \"bytes_per_s\": %.1f, "
           "\"least_connection_share\": %.4f, \"per_connection\": [",
           download ? "download" : "upload", nconns, up, BUF, warmup, duration, counted, t1 - t0,
           (unsigned long long)total, counted > 0 ? (double)total / counted : 0.0,
           total ? (double)least * nconns / (double)total : 0.0);
    for (int i = 0; i < nconns; ++i) printf("%s%llu", i ? ", " : "", (unsigned long long)conns[i].bytes);
    printf("], \"errors\": {");
    for (int k = 0; k < E_KINDS; ++k) printf("%s\"%s\": %lld", k ? ", " : "", kind_names[k], errors[k]);
    printf("}, \"errors_total\": %lld, \"first_error\": ", errors_total);
    if (first_error[0]) printf("\"%s\"}\n", first_error);
    else printf("null}\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    int server = strcmp(argv[1], "server") == 0;
    if (!server && strcmp(argv[1], "client") != 0) return usage();
    const char *host = "127.0.0.1", *direction = NULL;
    int port = server ? 0 : -1, nconns = 4;
    double duration = 10, warmup = 0, connect_timeout = 5;
    for (int i = 2; i < argc; ++i) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--port")) port = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--direction")) direction = v;
        else if (!strcmp(a, "--connections")) nconns = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--duration")) duration = strtod(v, &end);
        else if (!strcmp(a, "--warmup")) warmup = strtod(v, &end);
        else if (!strcmp(a, "--connect-timeout")) connect_timeout = strtod(v, &end);
        else return usage();
        if (end && *end) return usage();
    }
    signal(SIGPIPE, SIG_IGN);
    if (port < 0 || port > 65535) return usage();
    if (server) return run_server(port);
    if (!direction || (strcmp(direction, "download") && strcmp(direction, "upload")) || nconns < 1 ||
        nconns > MAX_CONNS || duration <= 0 || warmup < 0 || connect_timeout <= 0 || port == 0)
        return usage();
    return run_client(host, port, !strcmp(direction, "download"), nconns, duration, warmup, connect_timeout);
}
