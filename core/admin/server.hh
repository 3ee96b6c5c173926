// The admin API's HTTP/1.1 listener on the main thread's loop: a small, strict server
// (the core's request parser, Content-Length bodies up to 1 MiB, keep-alive, header and
// idle timeouts) that hands each request to one function and sends what it returns.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/loop.hh"

namespace atlas::admin {

struct request {
    std::string_view method;
    std::string path;  // percent-decoded, without the query
    std::string_view query;
    std::string_view authorization;  // the Authorization header's value, empty if none
    std::string_view body;
};

struct response {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

using handler_fn = std::function<response(const request &)>;

class server final : public control::handler {
public:
    server(control::loop &l, handler_fn fn) : loop_(l), fn_(std::move(fn)) {}
    ~server();
    server(const server &) = delete;
    server &operator=(const server &) = delete;

    // Binds and starts accepting; false with `err` naming the address and the reason.
    bool listen(const std::string &address, std::string &err);
    // Takeover: accepts on a listening socket the previous atlasd handed over; and, in
    // that one, stops accepting while leaving the socket listening for its successor.
    void adopt(int fd);
    void hand_off();
    int listening_fd() const { return fd_; }

    struct connection;

private:
    void on_completion(event::op op, const event::completion &c) override;
    void arm_accept();

    control::loop &loop_;
    handler_fn fn_;
    int fd_ = -1;
    bool armed_ = false;
    std::set<connection *> conns_;
    friend struct connection;
};

}  // namespace atlas::admin
