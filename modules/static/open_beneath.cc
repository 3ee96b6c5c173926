#include "open_beneath.hh"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

namespace atlas::static_files {

int open_walking(int dirfd, const char *rel) {
    int cur = dirfd;
    for (;;) {
        const char *slash = std::strchr(rel, '/');
        if (!slash) break;
        const std::string dir(rel, size_t(slash - rel));
        const int next = openat(cur, dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        const int saved = errno;
        if (cur != dirfd) close(cur);
        if (next < 0) {
            errno = saved;
            return -1;
        }
        cur = next;
        rel = slash + 1;
    }
    // "dir/" names the directory itself (index lookups).
    const int fd = openat(cur, *rel ? rel : ".", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
    const int saved = errno;
    if (cur != dirfd) close(cur);
    errno = saved;
    return fd;
}

int open_beneath(int dirfd, const char *rel) {
    // The same answer for every worker; learnt once, from the first ENOSYS.
    static std::atomic<bool> have_openat2{true};
    if (have_openat2.load(std::memory_order_relaxed)) {
        open_how how{};
        how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        const int fd = int(syscall(SYS_openat2, dirfd, rel, &how, sizeof how));
        if (fd >= 0 || errno != ENOSYS) return fd;
        have_openat2.store(false, std::memory_order_relaxed);
    }
    return open_walking(dirfd, rel);
}

}  // namespace atlas::static_files
