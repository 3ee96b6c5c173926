// relay_modes.c - the measurement behind mod_tcp's relay (issue 7): does splicing
// through io_uring pay on this kernel? One thread relays the download direction of N
// bulk streams three ways and reports its CPU seconds (io-wq threads included) per GB.
//
//   cc -O2 -o build/bench/relay-modes tools/bench/relay_modes.c -luring
//   build/bench/tcp-bulk server --port 19101 &                       # (bench.py builds it)
//   taskset -c 1 build/bench/relay-modes MODE 19110 19101 &
//   taskset -c 0 build/bench/tcp-bulk client --port 19110 --direction download --connections 4 --duration 7
//
// MODE:
//   copy   io_uring recv into a 64 KiB buffer, then send that buffer (what Atlas's relay
//          does with its bulk buffers: the kernel copies in and out, no user-space copy)
//   uring  io_uring POLL_ADD(POLLIN) -> SPLICE(socket -> pipe) => SPLICE(pipe -> socket),
//          linked (a hard link after the first splice: a short one must still go out).
//          io_uring runs every splice in an io-wq worker thread. SPLICE_F_NONBLOCK
//          cannot be used there: io_uring then polls the pipe, which is always writable,
//          and spins.
//   sync   epoll + non-blocking splice(2) from this thread, as haproxy's splice does
//
// It accepts connections for 0.3 s after the first, relays for 1 s unmeasured, then
// measures 5 s. An experiment, not part of the bench: see README, "L4 (TCP) proxy".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define MAXC 64

enum tag { T_POLL = 1, T_SPLICE_IN = 2, T_SPLICE_OUT = 3 };

struct pair {
    int cfd, sfd;  // the client's connection, the server's
    int p[2];      // the pipe between them (splice modes)
    size_t in_pipe;
    char *buf;     // copy mode
    int sending;   // copy mode: a send is in flight, else a receive
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

// This process's CPU time, its io-wq threads included (they are threads of it).
static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int loopback(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect to the backend");
        exit(1);
    }
    return s;
}

// Accepts the streams, connects each to the backend and passes its direction byte on.
static int accept_pairs(int lport, int bport, struct pair *ps) {
    int one = 1, n = 0;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 64) < 0) {
        perror("listen");
        exit(1);
    }
    struct pollfd pf = {ls, POLLIN, 0};
    while (n < MAXC && poll(&pf, 1, n ? 300 : -1) > 0) {
        struct pair *p = &ps[n];
        p->cfd = accept(ls, NULL, NULL);
        p->sfd = loopback(bport);
        char d;
        if (read(p->cfd, &d, 1) != 1 || write(p->sfd, &d, 1) != 1) exit(1);
        setsockopt(p->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(p->sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(p->cfd, F_SETFL, O_NONBLOCK);
        fcntl(p->sfd, F_SETFL, O_NONBLOCK);
        if (pipe2(p->p, O_NONBLOCK) < 0) exit(1);
        fcntl(p->p[0], F_SETPIPE_SZ, CHUNK);
        p->in_pipe = 0;
        p->buf = malloc(CHUNK);
        p->sending = 0;
        ++n;
    }
    close(ls);
    return n;
}

struct meter {
    double t0, c0;
    unsigned long long total, start_total;
    int measuring;
};

// false once the 5 measured seconds are over.
static int tick(struct meter *m) {
    if (!m->measuring && now() - m->t0 > 1) {
        m->measuring = 1;
        m->t0 = now();
        m->c0 = cpu();
        m->start_total = m->total;
    }
    return !(m->measuring && now() - m->t0 > 5);
}

static void run_sync(struct pair *ps, int n, struct meter *m) {
    int ep = epoll_create1(0);
    for (int i = 0; i < n; ++i) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, ps[i].sfd, &ev);
    }
    struct epoll_event evs[MAXC];
    while (tick(m)) {
        int k = epoll_wait(ep, evs, MAXC, 1000);
        if (k <= 0) return;
        for (int j = 0; j < k; ++j) {
            struct pair *p = &ps[evs[j].data.u32];
            ssize_t r = splice(p->sfd, NULL, p->p[1], NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (r == 0) return;
            if (r > 0) p->in_pipe += (size_t)r;
            while (p->in_pipe) {
                ssize_t w = splice(p->p[0], NULL, p->cfd, NULL, p->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (w <= 0) {
                    struct pollfd q = {p->cfd, POLLOUT, 0};
                    poll(&q, 1, 1000);
                    continue;
                }
                p->in_pipe -= (size_t)w;
                m->total += (unsigned long long)w;
            }
        }
    }
}

static void prep(struct io_uring *ring, int fd, void (*fill)(struct io_uring_sqe *, int, struct pair *),
                 struct pair *p, int i, int tag, unsigned flags) {
    struct io_uring_sqe *e = io_uring_get_sqe(ring);
    fill(e, fd, p);
    e->flags |= flags;
    e->user_data = ((uint64_t)i << 8) | (uint64_t)tag;
}

static void fill_poll(struct io_uring_sqe *e, int fd, struct pair *p) {
    (void)p;
    io_uring_prep_poll_add(e, fd, POLLIN);
}
static void fill_splice_in(struct io_uring_sqe *e, int fd, struct pair *p) {
    io_uring_prep_splice(e, fd, -1, p->p[1], -1, CHUNK, SPLICE_F_MOVE);
}
static void fill_splice_out(struct io_uring_sqe *e, int fd, struct pair *p) {
    io_uring_prep_splice(e, p->p[0], -1, fd, -1, CHUNK, SPLICE_F_MOVE);
}
static void fill_recv(struct io_uring_sqe *e, int fd, struct pair *p) { io_uring_prep_recv(e, fd, p->buf, CHUNK, 0); }

static void splice_chain(struct io_uring *ring, struct pair *p, int i) {
    prep(ring, p->sfd, fill_poll, p, i, T_POLL, IOSQE_IO_LINK);
    prep(ring, p->sfd, fill_splice_in, p, i, T_SPLICE_IN, IOSQE_IO_HARDLINK);
    prep(ring, p->cfd, fill_splice_out, p, i, T_SPLICE_OUT, 0);
}

static void run_uring(struct pair *ps, int n, int copy, struct meter *m) {
    struct io_uring ring;
    struct io_uring_params prm = {0};
    prm.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(256, &ring, &prm) < 0) exit(1);
    for (int i = 0; i < n; ++i) {
        if (copy) prep(&ring, ps[i].sfd, fill_recv, &ps[i], i, 0, 0);
        else splice_chain(&ring, &ps[i], i);
    }
    int stop = 0;
    while (!stop && tick(m)) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            ++seen;
            int i = (int)(cqe->user_data >> 8), tag = (int)(cqe->user_data & 0xff);
            struct pair *p = &ps[i];
            if (copy) {
                if (cqe->res <= 0) {
                    stop = 1;
                } else if (!p->sending) {
                    struct io_uring_sqe *e = io_uring_get_sqe(&ring);
                    io_uring_prep_send(e, p->cfd, p->buf, (size_t)cqe->res, MSG_WAITALL);
                    e->user_data = (uint64_t)i << 8;
                    p->sending = 1;
                } else {
                    m->total += (unsigned long long)cqe->res;
                    prep(&ring, p->sfd, fill_recv, p, i, 0, 0);
                    p->sending = 0;
                }
            } else if (tag == T_SPLICE_IN && cqe->res == 0) {
                stop = 1;
            } else if (tag == T_SPLICE_OUT) {  // the chain is over: the next one
                if (cqe->res > 0) m->total += (unsigned long long)cqe->res;
                splice_chain(&ring, p, i);
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "copy") && strcmp(argv[1], "uring") && strcmp(argv[1], "sync"))) {
        fprintf(stderr, "usage: relay-modes copy|uring|sync LISTEN_PORT BACKEND_PORT\n");
        return 2;
    }
    struct pair ps[MAXC];
    int n = accept_pairs(atoi(argv[2]), atoi(argv[3]), ps);
    struct meter m = {now(), cpu(), 0, 0, 0};
    if (!strcmp(argv[1], "sync")) run_sync(ps, n, &m);
    else run_uring(ps, n, !strcmp(argv[1], "copy"), &m);
    double dt = now() - m.t0, dc = cpu() - m.c0;
    double gb = (double)(m.total - m.start_total) / 1e9;
    printf("%s: %d streams, %.0f MB/s, %.2f CPU-s in %.2f s, %.3f CPU-s per GB\n", argv[1], n, gb * 1e3 / dt, dc, dt,
           gb > 0 ? dc / gb : 0.0);
    return 0;
}
