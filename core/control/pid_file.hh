// server.pid_file: written once atlasd serves, removed when it exits (unless another
// atlasd has written its own pid there since, e.g. after a takeover), and read by
// `atlasd -s SIGNAL` to find the running server.
#pragma once

#include <sys/types.h>

#include <string>

namespace atlas::control::pid_file {

bool write(const std::string &path, std::string &err);
void remove_if_ours(const std::string &path);
// The pid in the file; 0 with `err` set when there is none to read.
pid_t read(const std::string &path, std::string &err);

}  // namespace atlas::control::pid_file
