// Switching from root to the configured [server] user/group once every privileged
// resource (listening sockets, pid file, log files, TLS keys) is open.
#pragma once

#include <string>

#include "config/model.hh"

namespace atlas::control {

// Whether the switch `s` asks for can happen in this process: "" when it can (running
// as root, or already as that user and group, or no user configured), else one line
// naming the key.
std::string check_identity(const config::server_settings &s);

// Whether a switch is to be done (a user is configured and we are root).
bool needs_switch(const config::server_settings &s);

// Supplementary groups (the user's, as initgroups reads them), gid, then uid; keeps only
// CAP_NET_BIND_SERVICE (so a reload can still bind ports below 1024) and checks that
// root cannot be regained. Must run before any other thread exists. false + `err`.
bool switch_identity(const config::server_settings &s, std::string &err);

}  // namespace atlas::control
