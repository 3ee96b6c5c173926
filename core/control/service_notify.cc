#include "control/service_notify.hh"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "chain/log.hh"
#include "event/clock.hh"

namespace atlas::control {

service_notify::service_notify() {
    const char *p = std::getenv("NOTIFY_SOCKET");
    if (!p || (p[0] != '/' && p[0] != '@') || std::strlen(p) >= sizeof(sockaddr_un{}.sun_path)) return;
    path_ = p;
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    // Modules and children must not inherit it (systemd's sd_notify unsets it the same way).
    unsetenv("NOTIFY_SOCKET");
}

service_notify::~service_notify() {
    if (fd_ >= 0) close(fd_);
}

void service_notify::send(const std::string &text) {
    if (fd_ < 0) return;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path_.data(), path_.size());
    if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
    auto len = socklen_t(offsetof(sockaddr_un, sun_path) + path_.size());
    if (sendto(fd_, text.data(), text.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr *>(&sa), len) < 0)
        chain::log::warn("NOTIFY_SOCKET %s: %s", path_.c_str(), std::strerror(errno));
}

void service_notify::ready(const std::string &status) { send("READY=1\nSTATUS=" + status + "\n"); }

void service_notify::ready_as_main(const std::string &status) {
    send("MAINPID=" + std::to_string(getpid()) + "\nREADY=1\nSTATUS=" + status + "\n");
}

// systemd (253+) wants the monotonic time with RELOADING=1, to tell this reload from an
// earlier one.
void service_notify::reloading() {
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(event::monotonic_us()) + "\n");
}

void service_notify::stopping() { send("STOPPING=1\n"); }

}  // namespace atlas::control
