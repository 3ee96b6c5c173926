#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "open_beneath.hh"

using namespace atlas::static_files;
namespace fs = std::filesystem;

namespace {

// root/ with a/b.txt, a link to a file inside the root, a link out of it, a link to a
// directory, and outside.txt next to root/.
struct tree {
    fs::path top, root;
    int root_fd = -1;
    tree() {
        char tmpl[] = "/tmp/atlas-open-beneath-XXXXXX";
        top = mkdtemp(tmpl);
        root = top / "root";
        fs::create_directories(root / "a");
        write(root / "a" / "b.txt", "inside");
        write(top / "outside.txt", "outside");
        fs::create_symlink("a/b.txt", root / "inner-link");
        fs::create_symlink("../outside.txt", root / "outer-link");
        fs::create_directory_symlink("a", root / "dir-link");
        root_fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    ~tree() {
        close(root_fd);
        fs::remove_all(top);
    }
    static void write(const fs::path &p, const std::string &text) {
        int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, text.data(), text.size()) == ssize_t(text.size()));
        close(fd);
    }
};

std::string read_all(int fd) {
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

}  // namespace

TEST_CASE("open_walking opens files and directories below the root and follows no symlink") {
    tree t;
    REQUIRE(t.root_fd >= 0);
    int fd = open_walking(t.root_fd, "a/b.txt");
    REQUIRE(fd >= 0);
    CHECK(read_all(fd) == "inside");

    for (const char *dir : {".", "a/"}) {  // the root, a directory (index lookups)
        CAPTURE(dir);
        fd = open_walking(t.root_fd, dir);
        REQUIRE(fd >= 0);
        struct stat st;
        CHECK(fstat(fd, &st) == 0);
        CHECK(S_ISDIR(st.st_mode));
        close(fd);
    }

    for (const char *refused : {"inner-link", "outer-link", "dir-link/b.txt"}) {
        CAPTURE(refused);
        errno = 0;
        CHECK(open_walking(t.root_fd, refused) < 0);
        CHECK((errno == ELOOP || errno == ENOTDIR));
    }
    errno = 0;
    CHECK(open_walking(t.root_fd, "a/missing") < 0);
    CHECK(errno == ENOENT);
    errno = 0;
    CHECK(open_walking(t.root_fd, "a/b.txt/c") < 0);
    CHECK(errno == ENOTDIR);
}

TEST_CASE("open_beneath keeps links inside the root and refuses the ones that leave it") {
    tree t;
    int fd = open_beneath(t.root_fd, "inner-link");
    REQUIRE(fd >= 0);  // openat2 follows a link that stays below the root
    CHECK(read_all(fd) == "inside");
    CHECK(open_beneath(t.root_fd, "outer-link") < 0);
    CHECK(open_beneath(t.root_fd, "../outside.txt") < 0);
}
