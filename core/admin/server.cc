#include "admin/server.hh"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "http/path.hh"
#include "http/request_parser.hh"
#include "http/response_head.hh"
#include "net/address.hh"

namespace atlas::admin {

namespace {
constexpr size_t max_body = 1 << 20;
constexpr uint32_t max_fields = 64;
constexpr uint64_t header_timeout_ms = 10000;
constexpr uint64_t idle_timeout_ms = 30000;
constexpr size_t max_connections = 64;  // an operator's tools, not the public

response error_response(unsigned status, std::string_view message) {
    response r;
    r.status = status;
    r.body = "{\"error\":\"" + std::string(message) + "\"}\n";
    return r;
}
}  // namespace

// One client of the admin API: requests are answered one at a time, in order.
struct server::connection final : control::handler {
    connection(server &s, int fd_) : srv(s), fd(fd_) {}

    server &srv;
    int fd;
    std::string in;
    std::string out;
    size_t out_sent = 0;
    uint32_t scan_from = 0;
    bool receiving = false, sending = false;
    bool closing = false;  // no more requests: close once the answer is out
    bool dead = false;     // being torn down
    event::timer *timer = nullptr;

    control::loop &lp() { return srv.loop_; }

    void arm_timer(uint64_t ms) {
        if (timer) lp().timers().cancel(timer);
        timer = lp().timers().start(lp().now_ms() + ms, &connection::expired, this);
    }

    static void expired(void *p) {
        auto *c = static_cast<connection *>(p);
        c->timer = nullptr;
        c->kill();
        c->settle();
    }

    void start() {
        arm_timer(header_timeout_ms);
        receiving = true;
        lp().ring().recv_multishot(fd, -1, control::user_data(this, event::op::recv));
    }

    // `head_only`: a HEAD request gets the head a GET would (its Content-Length too), no body.
    void answer(const response &r, bool keep_alive, bool head_only = false) {
        std::string_view reason = http::reason_phrase(r.status);
        out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason) + "\r\nServer: atlas\r\n";
        if (!r.body.empty() || r.status != 204) out += "Content-Type: " + r.content_type + "\r\n";
        for (const auto &[k, v] : r.headers) out += k + ": " + v + "\r\n";
        out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
        out += "Cache-Control: no-store\r\n";
        if (!keep_alive) {
            out += "Connection: close\r\n";
            closing = true;
        }
        out += "\r\n";
        if (!head_only) out += r.body;
        out_sent = 0;
        send_more();
    }

    void send_more() {
        sending = true;
        lp().ring().send(fd, -1, out.data() + out_sent, out.size() - out_sent, 0,
                         control::user_data(this, event::op::send));
    }

    // Answers complete requests at the start of `in`, one at a time.
    void process() {
        while (!dead && !sending && !closing && !in.empty()) {
            http::header_field fields[max_fields];
            http::request_head head;
            http::parse_limits limits{8192, 16384, max_fields};
            auto r = http::parse_request_head(in, limits, head, fields, max_fields, scan_from);
            if (r == http::parse_result::incomplete) return;
            if (r == http::parse_result::error) {
                answer(error_response(head.error_status ? head.error_status : 400,
                                      head.error_reason ? head.error_reason : "malformed request"),
                       false);
                return;
            }
            if (head.chunked) {
                answer(error_response(411, "send the body with a Content-Length"), false);
                return;
            }
            uint64_t length = head.content_length > 0 ? uint64_t(head.content_length) : 0;
            if (length > max_body) {
                answer(error_response(413, "body over 1 MiB"), false);
                return;
            }
            if (in.size() < head.head_length + length) return;  // the body is still coming
            request req;
            req.method = head.method;
            req.query = head.query;
            if (!http::normalize_path(head.path_raw, req.path)) {
                answer(error_response(400, "bad path"), false);
                return;
            }
            for (uint32_t i = 0; i < head.header_count; ++i) {
                std::string_view n = fields[i].name;
                if (n.size() == 13 && strncasecmp(n.data(), "Authorization", 13) == 0) req.authorization = fields[i].value;
            }
            req.body = std::string_view(in).substr(head.head_length, length);
            response resp = srv.fn_(req);
            in.erase(0, head.head_length + length);
            scan_from = 0;
            answer(resp, head.keep_alive, head.is_head);
        }
    }

    void on_completion(event::op op, const event::completion &c) override {
        if (op == event::op::recv) {
            if (!c.more()) receiving = false;
            if (c.has_buffer()) {
                if (!dead && c.res > 0) in.append(lp().ring().buffer(c.buffer_id()), size_t(c.res));
                lp().ring().recycle(c.buffer_id());
            }
            if (!dead) {
                if (c.res == 0 || (c.res < 0 && c.res != -ENOBUFS)) {
                    kill();
                } else {
                    if (in.size() > 16384 + max_body) kill();
                    else process();
                    if (!dead && !receiving) {
                        receiving = true;
                        lp().ring().recv_multishot(fd, -1, control::user_data(this, event::op::recv));
                    }
                }
            }
        } else if (op == event::op::send) {
            sending = false;
            if (!dead) {
                if (c.res <= 0) {
                    kill();
                } else {
                    out_sent += size_t(c.res);
                    if (out_sent < out.size()) {
                        send_more();
                    } else if (closing) {
                        kill();
                    } else {
                        arm_timer(in.empty() ? idle_timeout_ms : header_timeout_ms);
                        process();
                    }
                }
            }
        }
        settle();
    }

    void kill() {
        if (dead) return;
        dead = true;
        if (timer) {
            lp().timers().cancel(timer);
            timer = nullptr;
        }
        ::shutdown(fd, SHUT_RDWR);
        if (receiving) lp().ring().cancel(control::user_data(this, event::op::recv));
    }

    void settle() {
        if (dead && !receiving && !sending) {
            ::close(fd);
            srv.conns_.erase(this);
            delete this;
        }
    }
};

server::~server() {
    // The loop's ring is torn down after this: nothing completes any more.
    for (connection *c : conns_) {
        if (c->timer) loop_.timers().cancel(c->timer);
        ::close(c->fd);
        delete c;
    }
    if (fd_ >= 0) ::close(fd_);
}

bool server::listen(const std::string &address, std::string &err) {
    net::address a;
    if (!net::parse_address(address, a, err)) return false;
    fd_ = net::listen_socket(a, 64, err, false);
    if (fd_ < 0) return false;
    arm_accept();
    return true;
}

void server::adopt(int fd) {
    fd_ = fd;
    arm_accept();
}

void server::hand_off() {
    if (fd_ < 0) return;
    if (armed_) loop_.ring().cancel(control::user_data(this, event::op::accept));
    ::close(fd_);
    fd_ = -1;
}

void server::arm_accept() {
    armed_ = true;
    loop_.ring().multishot_accept(fd_, control::user_data(this, event::op::accept));
}

void server::on_completion(event::op op, const event::completion &c) {
    if (op != event::op::accept) return;
    if (!c.more()) armed_ = false;
    if (c.res >= 0) {
        if (conns_.size() >= max_connections) {
            ::close(c.res);
        } else {
            auto *conn = new connection(*this, c.res);
            conns_.insert(conn);
            conn->start();
        }
    }
    if (!armed_ && fd_ >= 0) arm_accept();
}

}  // namespace atlas::admin
