// server.pid_file: opened (created) while atlasd may still be root, so that a directory
// only root can write works, and written at once — after a takeover only once the old
// process has let go, which until then the file still names. Removed at exit while it
// names this process. Read by `atlasd -s SIGNAL` to find the running server.
#pragma once

#include <sys/types.h>

#include <string>

namespace atlas::control {

class pid_file {
public:
    pid_file() = default;
    pid_file(const pid_file &) = delete;
    pid_file &operator=(const pid_file &) = delete;
    ~pid_file();

    bool open(const std::string &path, std::string &err);  // false + err naming the key
    void publish();  // writes this process's pid
    // At exit (or a failed start): removed if it names this process; emptied when the
    // directory no longer lets us remove it (after the switch from root).
    void remove();
    // After handing over to a successor: the file is its to write, never ours to remove
    // (it may still name us for a moment, until the successor writes it).
    void disown();

    // The pid in the file at `path`; 0 with `err` set when there is none to read.
    static pid_t read(const std::string &path, std::string &err);

private:
    int fd_ = -1;
    std::string path_;
    bool published_ = false;
};

}  // namespace atlas::control
