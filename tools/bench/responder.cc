// atlas-bench-responder: the constant-response backend of `tools/dev bench proxy`.
//
//     atlas-bench-responder [--port N] [--size BYTES]
//
// Listens on 127.0.0.1 (port 0 = any; the chosen one is printed as
// "listening on 127.0.0.1:PORT"), answers every HTTP/1.1 request with the same
// 200 response of BYTES bytes (default 1024), keep-alive, pipelining allowed.
// One thread, edge-triggered epoll, one read and one write per batch of requests:
// far cheaper per request than nginx, so that in a proxy benchmark the backend on
// the client's CPU is never what limits the proxy under test.
//
// It is a benchmark tool, not a server: it understands just enough HTTP to find
// where each request ends (Content-Length bodies are skipped; chunked request bodies
// and anything malformed close the connection) and answers nothing else.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct connection {
    int fd = -1;
    std::string in;       // bytes not yet parsed
    uint64_t skip = 0;    // request body bytes still to discard
    std::string out;      // responses not yet written
    size_t out_pos = 0;
    bool close_after = false;
};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
    return true;
}

// Looks at one complete head: its body length and whether the client asked to close.
// false = something this tool does not handle (chunked body, bad Content-Length).
bool inspect_head(std::string_view head, uint64_t &body, bool &close) {
    body = 0;
    close = false;
    size_t pos = head.find("\r\n");
    if (pos == std::string_view::npos) return false;
    if (head.substr(0, pos).ends_with("HTTP/1.0")) close = true;
    pos += 2;
    while (pos < head.size()) {
        size_t eol = head.find("\r\n", pos);
        if (eol == std::string_view::npos || eol == pos) break;
        std::string_view line = head.substr(pos, eol - pos);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            if (iequals(name, "content-length")) {
                if (value.empty()) return false;
                uint64_t n = 0;
                for (char ch : value) {
                    if (ch < '0' || ch > '9' || n > (UINT64_MAX - 9) / 10) return false;
                    n = n * 10 + uint64_t(ch - '0');
                }
                body = n;
            } else if (iequals(name, "transfer-encoding")) {
                return false;
            } else if (iequals(name, "connection")) {
                if (iequals(value, "close")) close = true;
                else if (iequals(value, "keep-alive")) close = false;
            }
        }
        pos = eol + 2;
    }
    return true;
}

// Consumes every complete request in c.in, queueing one response each.
bool parse(connection &c, const std::string &response) {
    size_t pos = 0;
    while (pos < c.in.size()) {
        if (c.skip) {
            uint64_t take = std::min<uint64_t>(c.skip, c.in.size() - pos);
            c.skip -= take;
            pos += size_t(take);
            continue;
        }
        size_t end = c.in.find("\r\n\r\n", pos);
        if (end == std::string::npos) {
            if (c.in.size() - pos > 65536) return false;  // no head is that long here
            break;
        }
        uint64_t body = 0;
        bool close = false;
        if (!inspect_head(std::string_view(c.in).substr(pos, end + 4 - pos), body, close)) return false;
        c.out += response;
        pos = end + 4;
        c.skip = body;
        if (close) {
            c.close_after = true;
            pos = c.in.size();
            break;
        }
    }
    c.in.erase(0, pos);
    return true;
}

// Writes what is queued; false when the connection is done (error or close_after).
bool write_out(connection &c) {
    while (c.out_pos < c.out.size()) {
        ssize_t n = send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_pos += size_t(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else {
            return false;
        }
    }
    c.out.clear();
    c.out_pos = 0;
    return !c.close_after;
}

int usage() {
    std::fprintf(stderr, "usage: atlas-bench-responder [--port N] [--size BYTES]\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv) {
    unsigned port = 0;
    unsigned long size = 1024;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if ((a == "--port" || a == "--size") && i + 1 < argc) {
            char *end = nullptr;
            unsigned long v = std::strtoul(argv[++i], &end, 10);
            if (!end || *end) return usage();
            if (a == "--port") {
                if (v > 65535) return usage();
                port = unsigned(v);
            } else {
                if (v > (64ul << 20)) return usage();
                size = v;
            }
        } else {
            return usage();
        }
    }
    signal(SIGPIPE, SIG_IGN);

    std::string response = "HTTP/1.1 200 OK\r\nServer: responder\r\nContent-Type: application/octet-stream\r\n"
                           "Content-Length: " + std::to_string(size) + "\r\n\r\n";
    response.append(size, 'x');

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0 || listen(lfd, 4096) != 0) {
        std::fprintf(stderr, "atlas-bench-responder: cannot listen on 127.0.0.1:%u: %s\n", port, std::strerror(errno));
        return 1;
    }
    socklen_t len = sizeof sa;
    getsockname(lfd, reinterpret_cast<sockaddr *>(&sa), &len);
    std::printf("listening on 127.0.0.1:%u\n", unsigned(ntohs(sa.sin_port)));
    std::fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the listener
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    std::vector<epoll_event> events(512);
    std::vector<char> buf(256 * 1024);
    for (;;) {
        int n = epoll_wait(ep, events.data(), int(events.size()), -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        for (int i = 0; i < n; ++i) {
            if (!events[size_t(i)].data.ptr) {
                for (;;) {
                    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    auto *c = new connection;
                    c->fd = fd;
                    epoll_event cev{};
                    cev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
                    cev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            auto *c = static_cast<connection *>(events[size_t(i)].data.ptr);
            bool ok = true, eof = false;
            if (events[size_t(i)].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = recv(c->fd, buf.data(), buf.size(), 0);
                    if (r > 0) {
                        c->in.append(buf.data(), size_t(r));
                        continue;
                    }
                    if (r == 0) eof = true;
                    else if (errno == EINTR) continue;
                    else if (errno != EAGAIN && errno != EWOULDBLOCK) ok = false;
                    break;
                }
                if (ok) ok = parse(*c, response);
            }
            if (ok) ok = write_out(*c);
            if (!ok || (eof && c->out.empty())) {
                close(c->fd);  // also removes it from the epoll set
                delete c;
            }
        }
    }
    return 0;
}
