#include "control/pid_file.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "chain/log.hh"

namespace atlas::control {

pid_file::~pid_file() {
    if (fd_ >= 0) close(fd_);
}

bool pid_file::open(const std::string &path, std::string &err) {
    // No O_TRUNC: during a takeover the file names the old process until publish().
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        err = "server.pid_file: cannot write '" + path + "': " + std::strerror(errno);
        return false;
    }
    path_ = path;
    return true;
}

void pid_file::publish() {
    if (fd_ < 0) return;
    std::string text = std::to_string(getpid()) + "\n";
    // Written, then cut to size: never empty in between, and while an old longer pid's
    // tail remains, the first line is already this one.
    if (pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size()) || ftruncate(fd_, off_t(text.size())) != 0)
        chain::log::warn("server.pid_file: cannot write '%s': %s", path_.c_str(), std::strerror(errno));
    else
        published_ = true;
}

void pid_file::remove() {
    if (fd_ < 0) return;
    std::string err;
    bool names_us = published_ && read(path_, err) == getpid();
    bool names_nobody = !published_ && lseek(fd_, 0, SEEK_END) == 0;  // created by a start that failed
    if (names_us && unlink(path_.c_str()) != 0 && ftruncate(fd_, 0) != 0)
        chain::log::warn("server.pid_file: cannot remove '%s': %s", path_.c_str(), std::strerror(errno));
    if (names_nobody) unlink(path_.c_str());
    close(fd_);
    fd_ = -1;
}

void pid_file::disown() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
}

pid_t pid_file::read(const std::string &path, std::string &err) {
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

}  // namespace atlas::control
