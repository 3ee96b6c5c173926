// Tells a service manager (systemd's Type=notify) what atlasd is doing: READY=1 once it
// serves, RELOADING=1 ... READY=1 around a reload, STOPPING=1 when it drains. Writes to
// the datagram socket NOTIFY_SOCKET names; without one (not under systemd) it does nothing.
#pragma once

#include <string>

namespace atlas::control {

class service_notify {
public:
    service_notify();  // reads NOTIFY_SOCKET
    ~service_notify();
    service_notify(const service_notify &) = delete;
    service_notify &operator=(const service_notify &) = delete;

    void ready(const std::string &status);
    // After a takeover: this process is the service's main one now (NotifyAccess=all).
    void ready_as_main(const std::string &status);
    // NOTIFY_SOCKET as it was, for an atlasd this one starts to take over ("" = none).
    const std::string &socket_path() const { return path_; }
    void reloading();
    void stopping();

private:
    void send(const std::string &text);

    int fd_ = -1;
    std::string path_;  // as NOTIFY_SOCKET says; '@' = abstract namespace
};

}  // namespace atlas::control
