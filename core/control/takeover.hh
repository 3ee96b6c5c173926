// Zero-downtime upgrade by socket takeover (`atlasd --takeover`): the new atlasd connects
// to the running one over a Unix socket beside the pid file, receives its listening
// sockets (SCM_RIGHTS, one per worker and address) and serves on them; once it says it
// is ready, the old one stops accepting — without closing the sockets, which now live on
// in the new process with their queued connections — and drains.
//
// The takeover socket itself goes over too, so the next upgrade finds the new process
// at the same path with nothing to unlink or bind (the directory may be root's).
//
// Wire (SOCK_SEQPACKET, one message each):  new -> old  "atlas-takeover 1"
//                                            old -> new  "socket <address>" + fd, one per worker, ...
//                                            old -> new  "admin <address>" + fd (when it has one)
//                                            old -> new  "control" + the takeover socket's fd
//                                            old -> new  "end <count> <pid>"
//                                            new -> old  "ready"
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control/loop.hh"

namespace atlas::control::takeover {

// Where the running atlasd listens for a takeover: beside its pid file.
std::string socket_path(const std::string &pid_file);

struct handed_socket {
    std::string key;  // its address, as chain::listen_key writes it
    int fd = -1;
};

// What a running atlasd hands over: its workers' listening sockets and the admin API's.
struct inventory {
    std::vector<handed_socket> listeners;
    int admin_fd = -1;
    std::string admin_address;  // as [admin] listen says
};

// The new process's side. take() receives the old process's listening sockets;
// confirm() tells it the new process serves (it then drains). Blocking, with a deadline:
// this runs before anything else is started.
struct client {
    int fd = -1;
    pid_t old_pid = 0;
    int control_fd = -1;  // the takeover socket, for server::adopt
    ~client();
    // `got`'s descriptors are the caller's from here, also when it fails part-way.
    bool take(const std::string &path, inventory &got, std::string &err);
    bool confirm(std::string &err);
};

// The running process's side, on the main loop. `sockets` gives what to hand over at that
// moment; `handed_over` runs when the new process confirmed (the caller drains).
class server final : public handler {
public:
    server(loop &lp, std::function<inventory()> sockets, std::function<void(pid_t)> handed_over)
        : lp_(lp), sockets_(std::move(sockets)), handed_over_(std::move(handed_over)) {}
    ~server();
    server(const server &) = delete;
    server &operator=(const server &) = delete;

    // True (+ `err`) when an atlasd answers on `path`: one runs with this pid file. Asked
    // before anything of this process touches the pid file.
    static bool in_use(const std::string &path, std::string &err);
    // Binds the takeover socket (as root, before the switch: the directory may be root's),
    // replacing a file a dead atlasd left; -1 + `err` when it cannot.
    static int bind_socket(const std::string &path, std::string &err);
    // Accepts takeovers on a socket from bind_socket, or on the one a takeover handed over.
    void adopt(const std::string &path, int fd);
    void close();  // stops taking takeovers (draining); removes the socket file if still ours

    void on_completion(event::op op, const event::completion &c) override;

private:
    void on_peer(int fd);
    void drop_peer(const char *why);

    loop &lp_;
    std::function<inventory()> sockets_;
    std::function<void(pid_t)> handed_over_;
    std::string path_;
    int listen_fd_ = -1;
    bool handed_ = false;    // the takeover socket went to the new process: leave its file
    int peer_fd_ = -1;
    pid_t peer_pid_ = 0;
    int stage_ = 0;          // 0: the peer's hello is awaited, 1: its "ready"
    char buf_[64];
};

}  // namespace atlas::control::takeover
