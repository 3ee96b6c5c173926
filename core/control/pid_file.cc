#include "control/pid_file.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace atlas::control::pid_file {

bool write(const std::string &path, std::string &err) {
    // Written beside and renamed over: a reader never sees a half-written number.
    std::string tmp = path + ".new";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = "server.pid_file: cannot write " + path + ": " + std::strerror(errno);
        return false;
    }
    std::string text = std::to_string(getpid()) + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
        if (ok) saved = errno;
        unlink(tmp.c_str());
        err = "server.pid_file: cannot write " + path + ": " + std::strerror(saved);
        return false;
    }
    return true;
}

pid_t read(const std::string &path, std::string &err) {
    std::ifstream f(path);
    if (!f) {
        err = "cannot read the pid file " + path + ": " + std::strerror(errno) + " (is atlasd running?)";
        return 0;
    }
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    char *end = nullptr;
    errno = 0;
    long pid = std::strtol(text.c_str(), &end, 10);
    while (end && (*end == '\n' || *end == ' ')) ++end;
    if (errno || end == text.c_str() || *end != '\0' || pid <= 1 || pid > 0x3fffffff) {
        err = "the pid file " + path + " does not hold a process id";
        return 0;
    }
    return pid_t(pid);
}

void remove_if_ours(const std::string &path) {
    std::string err;
    if (read(path, err) == getpid()) unlink(path.c_str());
}

}  // namespace atlas::control::pid_file
