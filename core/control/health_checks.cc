#include "control/health_checks.hh"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <set>
#include <string>

#include "http/response_parser.hh"

namespace atlas::control {

namespace {
constexpr uint32_t max_fields = 100;
}  // namespace

// One server's checks. Owned by health_checks; deleted once stopped and no operation of
// it is still in the kernel.
struct health_checks::prober final : handler {
    prober(loop &l, upstream::registry &reg, uint32_t slot, const upstream::server &s, const config::upstream &up)
        : loop_(l), reg_(reg), group_slot(slot), server_id(s.id), addr(s.addr), host(s.written), cfg(up.health),
          max_head(up.max_response_head) {}

    loop &loop_;
    upstream::registry &reg_;
    const uint32_t group_slot;
    const uint64_t server_id;
    const net::address addr;  // copies: the server may be freed before this prober is
    const std::string host;
    config::health_check cfg;
    uint32_t max_head;  // the upstream's max_response_head: a check reads the head only

    int fd = -1;
    bool connecting = false, sending = false, receiving = false;
    bool checking = false;  // a check is under way
    bool stopped = false;
    event::timer *next = nullptr;      // the next check
    event::timer *deadline = nullptr;  // the running check's timeout
    std::string request;
    size_t sent = 0;
    std::string in;

    bool in_kernel() const { return connecting || sending || receiving; }

    void schedule(uint64_t delay_ms) {
        if (!stopped) next = loop_.timers().start(loop_.now_ms() + delay_ms, &prober::fire, this);
    }

    static void fire(void *p) {
        auto *pr = static_cast<prober *>(p);
        pr->next = nullptr;
        pr->start();
    }

    static void expired(void *p) {
        auto *pr = static_cast<prober *>(p);
        pr->deadline = nullptr;
        pr->finish(false, "timed out after " + std::to_string(pr->cfg.timeout.count()) + " ms");
        pr->settle();
    }

    void start() {
        if (stopped || checking) return;
        if (in_kernel()) {  // the last check's socket is still closing: a little later
            schedule(50);
            return;
        }
        fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            report(false, std::string("socket: ") + std::strerror(errno));
            schedule(uint64_t(cfg.interval.count()));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        checking = true;
        in.clear();
        sent = 0;
        deadline = loop_.timers().start(loop_.now_ms() + uint64_t(cfg.timeout.count()), &prober::expired, this);
        connecting = true;
        loop_.ring().connect(fd, -1, addr.sa(), addr.length, user_data(this, event::op::connect));
    }

    void send_more() {
        sending = true;
        loop_.ring().send(fd, -1, request.data() + sent, request.size() - sent, 0, user_data(this, event::op::send));
    }

    void arm_recv() {
        receiving = true;
        loop_.ring().recv_multishot(fd, -1, user_data(this, event::op::recv));
    }

    // The response head so far: a verdict once it is complete (or broken).
    void parse() {
        http::header_field fields[max_fields];
        http::response_head h;
        uint32_t scan = 0;
        http::response_limits limits;
        limits.max_head_bytes = max_head;  // the parser fails a longer head, complete or not
        auto r = http::parse_response_head(in, limits, h, fields, max_fields, scan);
        if (r == http::parse_result::incomplete) return;
        if (r == http::parse_result::error) {
            finish(false, std::string("bad response: ") + (h.error_reason ? h.error_reason : "malformed head"));
            return;
        }
        if (h.is_interim()) {  // 100 Continue and friends: the final status follows
            in.erase(0, h.head_length);
            if (!in.empty()) parse();
            return;
        }
        std::string detail = "status " + std::to_string(h.status);
        bool pass = h.status >= cfg.status_min && h.status <= cfg.status_max;
        if (!pass)
            detail += " (expected " + std::to_string(cfg.status_min) +
                      (cfg.status_max != cfg.status_min ? "-" + std::to_string(cfg.status_max) : "") + ")";
        finish(pass, detail);
    }

    void on_completion(event::op op, const event::completion &c) override {
        switch (op) {
            case event::op::connect:
                connecting = false;
                if (!checking) break;
                if (c.res < 0) {
                    finish(false, std::string("connect failed: ") + std::strerror(-c.res));
                } else if (!cfg.http) {
                    finish(true, "connected");
                } else {
                    request = "GET " + cfg.path + " HTTP/1.1\r\nHost: " + (cfg.host.empty() ? host : cfg.host) +
                              "\r\nUser-Agent: atlas-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n";
                    send_more();
                }
                break;
            case event::op::send:
                sending = false;
                if (!checking) break;
                if (c.res < 0) {
                    finish(false, std::string("send failed: ") + std::strerror(-c.res));
                    break;
                }
                sent += size_t(c.res);
                if (sent < request.size()) send_more();
                else arm_recv();
                break;
            case event::op::recv:
                if (!c.more()) receiving = false;
                if (c.has_buffer()) {
                    if (checking && c.res > 0) in.append(loop_.ring().buffer(c.buffer_id()), size_t(c.res));
                    loop_.ring().recycle(c.buffer_id());
                }
                if (!checking) break;
                if (c.res > 0) {
                    parse();
                    if (checking && !receiving) arm_recv();  // the multishot ended (ENOBUFS)
                } else if (c.res == 0) {
                    finish(false, "closed before answering");
                } else if (c.res == -ENOBUFS) {
                    if (!receiving) arm_recv();
                } else if (c.res != -ECANCELED) {
                    finish(false, std::string("receive failed: ") + std::strerror(-c.res));
                }
                break;
            default:
                break;
        }
        settle();
    }

    void report(bool pass, const std::string &detail) {
        const auto &groups = reg_.groups();
        if (group_slot >= groups.size() || !groups[group_slot]) return;
        upstream::group &g = *groups[group_slot];
        upstream::server *s = g.find_id(server_id);
        if (s && !s->retired.load(std::memory_order_relaxed)) reg_.check_result(g, *s, pass, detail, loop_.now_ms());
    }

    void finish(bool pass, const std::string &detail) {
        if (!checking) return;
        checking = false;
        if (deadline) {
            loop_.timers().cancel(deadline);
            deadline = nullptr;
        }
        abort_io();
        report(pass, detail);
        schedule(uint64_t(cfg.interval.count()));
    }

    // Wakes whatever is still in the kernel for this socket; it is closed once nothing is.
    void abort_io() {
        if (fd < 0) return;
        ::shutdown(fd, SHUT_RDWR);
        if (connecting) loop_.ring().cancel(user_data(this, event::op::connect));
        if (receiving) loop_.ring().cancel(user_data(this, event::op::recv));
    }

    // Closes the socket once its operations are done; true when the prober may be deleted.
    bool settle() {
        if (fd >= 0 && !checking && !in_kernel()) {
            ::close(fd);
            fd = -1;
        }
        if (stopped && fd < 0 && !in_kernel()) {
            delete this;
            return true;
        }
        return false;
    }

    void stop() {
        stopped = true;
        if (next) {
            loop_.timers().cancel(next);
            next = nullptr;
        }
        if (deadline) {
            loop_.timers().cancel(deadline);
            deadline = nullptr;
        }
        checking = false;
        abort_io();
        settle();
    }
};

health_checks::~health_checks() {
    // The ring goes away with the loop: nothing will complete any more.
    for (auto &[id, p] : probers_) {
        if (p->fd >= 0) ::close(p->fd);
        delete p;
    }
}

void health_checks::sync() {
    std::set<uint64_t> wanted;
    std::minstd_rand jitter(uint32_t(loop_.now_ms()));
    for (const auto &g : reg_.groups()) {
        if (!g || !g->cfg.health.enabled) continue;
        for (const auto &s : g->members) {
            wanted.insert(s->id);
            auto it = probers_.find(s->id);
            if (it != probers_.end()) {
                it->second->cfg = g->cfg.health;  // takes effect at its next check
                it->second->max_head = g->cfg.max_response_head;
                continue;
            }
            auto *p = new prober(loop_, reg_, g->slot, *s, g->cfg);
            probers_.emplace(s->id, p);
            // Spread the first checks over up to a second so servers are not hit at once.
            uint64_t spread = std::min<uint64_t>(uint64_t(g->cfg.health.interval.count()), 1000);
            p->schedule(jitter() % spread);
        }
    }
    for (auto it = probers_.begin(); it != probers_.end();) {
        if (wanted.count(it->first)) {
            ++it;
            continue;
        }
        it->second->stop();  // deletes itself once its socket is closed
        it = probers_.erase(it);
    }
}

}  // namespace atlas::control
