#include "control/takeover.hh"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "chain/log.hh"
#include "event/memcheck.hh"

namespace atlas::control::takeover {

namespace {

constexpr const char *hello = "atlas-takeover 1";
constexpr int io_timeout_s = 10;  // a takeover peer that stalls longer is given up

bool make_address(const std::string &path, sockaddr_un &sa, std::string &err) {
    sa = sockaddr_un{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) {
        err = "the takeover socket path " + path + " is longer than " + std::to_string(sizeof sa.sun_path - 1) +
              " bytes: use a shorter server.pid_file";
        return false;
    }
    std::memcpy(sa.sun_path, path.data(), path.size());
    return true;
}

void set_timeouts(int fd) {
    timeval tv{io_timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_text(int fd, const std::string &text, int pass_fd = -1) {
    iovec iov{const_cast<char *>(text.data()), text.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (pass_fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &msg, MSG_NOSIGNAL) == ssize_t(text.size());
}

}  // namespace

std::string socket_path(const std::string &pid_file) { return pid_file + ".takeover"; }

// ---------------------------------------------------------------- the new process

client::~client() {
    if (fd >= 0) ::close(fd);
}

bool client::take(const std::string &path, inventory &got_all, std::string &err) {
    sockaddr_un sa;
    if (!make_address(path, sa, err)) return false;
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = std::string("takeover: socket: ") + std::strerror(errno);
        return false;
    }
    set_timeouts(fd);
    if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
        err = "takeover: cannot reach the running atlasd at " + path + ": " + std::strerror(errno) +
              (errno == ENOENT || errno == ECONNREFUSED ? " (is one running with this configuration?)" : "");
        return false;
    }
    if (!send_text(fd, hello)) {
        err = "takeover: " + path + ": " + std::strerror(errno);
        return false;
    }
    for (;;) {
        char text[512];
        iovec iov{text, sizeof text - 1};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            err = "takeover: the running atlasd " +
                  std::string(n == 0 ? "closed the connection" : std::strerror(errno)) + " before handing over";
            return false;
        }
        text[n] = '\0';
        int got = -1;
        for (cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) std::memcpy(&got, CMSG_DATA(cm), sizeof(int));
        unsigned count = 0;
        int pid = 0;
        if (got >= 0 && std::strncmp(text, "socket ", 7) == 0) {
            got_all.listeners.push_back({text + 7, got});
            continue;
        }
        if (got >= 0 && std::strncmp(text, "admin ", 6) == 0 && got_all.admin_fd < 0) {
            got_all.admin_fd = got;
            got_all.admin_address = text + 6;
            continue;
        }
        if (got >= 0 && std::strcmp(text, "control") == 0) {
            control_fd = got;
            continue;
        }
        if (got >= 0) ::close(got);
        if (std::sscanf(text, "end %u %d", &count, &pid) == 2 && count == got_all.listeners.size() && pid > 0 && control_fd >= 0) {
            old_pid = pid;
            return true;
        }
        err = std::string("takeover: unexpected message from the running atlasd: ") + text;
        return false;
    }
}

bool client::confirm(std::string &err) {
    if (send_text(fd, "ready")) return true;
    err = std::string("takeover: telling the old atlasd: ") + std::strerror(errno);
    return false;
}

// ---------------------------------------------------------------- the running process

server::~server() {
    if (peer_fd_ >= 0) ::close(peer_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

bool server::in_use(const std::string &path, std::string &err) {
    sockaddr_un sa;
    if (!make_address(path, sa, err)) return true;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;  // bind_socket will say why
    bool answers = connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0;
    ::close(fd);
    if (answers) err = "server.pid_file: an atlasd already runs with " + path + " (atlasd --takeover replaces it)";
    return answers;
}

int server::bind_socket(const std::string &path, std::string &err) {
    sockaddr_un sa;
    if (!make_address(path, sa, err)) return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = std::string("takeover socket: ") + std::strerror(errno);
        return -1;
    }
    unlink(path.c_str());  // a file left by an atlasd that did not exit cleanly (in_use said so)
    mode_t old_mask = umask(0077);  // root (or our user) only: the socket hands out listeners
    int r = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa);
    umask(old_mask);
    if (r != 0 || ::listen(fd, 4) != 0) {
        err = "takeover socket " + path + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

void server::adopt(const std::string &path, int fd) {
    path_ = path;
    listen_fd_ = fd;
    lp_.ring().multishot_accept(listen_fd_, user_data(this, event::op::accept));
}

void server::close() {
    if (listen_fd_ < 0) return;
    lp_.ring().cancel(user_data(this, event::op::accept));
    ::close(listen_fd_);
    listen_fd_ = -1;
    if (!handed_) unlink(path_.c_str());
    if (peer_fd_ >= 0) drop_peer("atlasd is stopping");
}

void server::drop_peer(const char *why) {
    chain::log::warn("takeover by pid %d not done: %s; still serving", int(peer_pid_), why);
    lp_.ring().cancel(user_data(this, event::op::wake));
    ::close(peer_fd_);
    peer_fd_ = -1;
    stage_ = 0;
}

void server::on_completion(event::op op, const event::completion &c) {
    if (op == event::op::accept) {
        if (c.res >= 0) on_peer(c.res);
        if (!c.more() && listen_fd_ >= 0) lp_.ring().multishot_accept(listen_fd_, user_data(this, event::op::accept));
        return;
    }
    if (c.res == -ECANCELED || peer_fd_ < 0) return;
    if (c.res <= 0) {
        drop_peer(c.res == 0 ? "the new atlasd went away before it was ready" : std::strerror(-c.res));
        return;
    }
    event::kernel_wrote(buf_, c.res);
    std::string text(buf_, size_t(c.res));
    if (stage_ == 0) {
        if (text != hello) {
            drop_peer("it does not speak this takeover protocol");
            return;
        }
        inventory inv = sockets_();
        const std::vector<handed_socket> &list = inv.listeners;
        bool ok = true;
        for (const handed_socket &s : list)
            ok = ok && send_text(peer_fd_, "socket " + s.key, s.fd);
        if (inv.admin_fd >= 0) ok = ok && send_text(peer_fd_, "admin " + inv.admin_address, inv.admin_fd);
        ok = ok && send_text(peer_fd_, "control", listen_fd_);
        ok = ok && send_text(peer_fd_, "end " + std::to_string(list.size()) + " " + std::to_string(getpid()));
        if (!ok) {
            drop_peer(std::strerror(errno));
            return;
        }
        chain::log::info("takeover: handed %zu listening socket%s to pid %d; serving until it is ready", list.size(),
                         list.size() == 1 ? "" : "s", int(peer_pid_));
        stage_ = 1;
        lp_.ring().read(peer_fd_, buf_, sizeof buf_, user_data(this, event::op::wake));
        return;
    }
    if (text != "ready") {
        drop_peer("it sent something other than ready");
        return;
    }
    pid_t pid = peer_pid_;
    ::close(peer_fd_);
    peer_fd_ = -1;
    handed_ = true;
    close();
    handed_over_(pid);
}

void server::on_peer(int fd) {
    if (listen_fd_ < 0) {  // accepted just before close(): this process hands nothing over now
        ::close(fd);
        return;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != 0 && cred.uid != geteuid())) {
        chain::log::warn("takeover: refused a connection from uid %u (only root or uid %u may take over)",
                         unsigned(cred.uid), unsigned(geteuid()));
        ::close(fd);
        return;
    }
    if (peer_fd_ >= 0) {
        chain::log::warn("takeover: pid %d asked while pid %d is taking over: refused", int(cred.pid), int(peer_pid_));
        ::close(fd);
        return;
    }
    set_timeouts(fd);
    peer_fd_ = fd;
    peer_pid_ = cred.pid;
    stage_ = 0;
    lp_.ring().read(peer_fd_, buf_, sizeof buf_, user_data(this, event::op::wake));
}

}  // namespace atlas::control::takeover
