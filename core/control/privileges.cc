#include "control/privileges.hh"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace atlas::control {

namespace {

std::string sys_error(const std::string &what) { return what + ": " + std::strerror(errno); }

// Raw syscalls: glibc has no wrapper and libcap would be a dependency for two calls.
bool get_caps(__user_cap_data_struct (&data)[_LINUX_CAPABILITY_U32S_3]) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capget, &hdr, data) == 0;
}

bool set_caps(__user_cap_data_struct (&data)[_LINUX_CAPABILITY_U32S_3]) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capset, &hdr, data) == 0;
}

}  // namespace

std::string check_identity(const config::server_settings &s) {
    if (!s.switch_user || geteuid() == 0) return {};
    if (geteuid() != s.uid)
        return "server.user: switching to \"" + s.user + "\" needs root (running as uid " + std::to_string(geteuid()) + ")";
    if (getegid() != s.gid)
        return "server.group: switching to \"" + s.group + "\" needs root (running as gid " + std::to_string(getegid()) + ")";
    return {};
}

bool needs_switch(const config::server_settings &s) { return s.switch_user && geteuid() == 0; }

bool switch_identity(const config::server_settings &s, std::string &err) {
    const std::string who = "server.user: switching to \"" + s.user + "\": ";
    // Without KEEPCAPS, setuid away from 0 clears the permitted set, and
    // CAP_NET_BIND_SERVICE could not be kept.
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
        err = who + sys_error("prctl(PR_SET_KEEPCAPS)");
        return false;
    }
    if (initgroups(s.user.c_str(), gid_t(s.gid)) != 0) {
        err = who + sys_error("initgroups");
        return false;
    }
    if (setresgid(gid_t(s.gid), gid_t(s.gid), gid_t(s.gid)) != 0) {
        err = who + sys_error("setgid(" + std::to_string(s.gid) + ")");
        return false;
    }
    if (setresuid(uid_t(s.uid), uid_t(s.uid), uid_t(s.uid)) != 0) {
        err = who + sys_error("setuid(" + std::to_string(s.uid) + ")");
        return false;
    }
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (s.uid == 0) return true;  // user = "root": only the groups changed

    __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
    caps[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].permitted = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
    caps[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].effective = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
    if (!set_caps(caps)) {
        err = who + sys_error("capset(CAP_NET_BIND_SERVICE)");
        return false;
    }

    // Trust nothing: the switch must be irreversible and the capabilities exactly one.
    __user_cap_data_struct now[_LINUX_CAPABILITY_U32S_3] = {};
    if (!get_caps(now)) {
        err = who + sys_error("capget");
        return false;
    }
    for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
        uint32_t want = i == unsigned(CAP_TO_INDEX(CAP_NET_BIND_SERVICE)) ? CAP_TO_MASK(CAP_NET_BIND_SERVICE) : 0;
        if (now[i].permitted != want || now[i].effective != want || now[i].inheritable != 0) {
            err = who + "capabilities other than CAP_NET_BIND_SERVICE remain after the switch";
            return false;
        }
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || (s.gid != 0 && setgid(0) == 0)) {
        err = who + "root could be regained after the switch";
        return false;
    }
    if (getuid() != s.uid || geteuid() != s.uid || getgid() != s.gid || getegid() != s.gid) {
        err = who + "the process did not end up with uid " + std::to_string(s.uid) + " and gid " + std::to_string(s.gid);
        return false;
    }
    return true;
}

}  // namespace atlas::control
