#include "control/pid_file.hh"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using atlas::control::pid_file;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/atlas-pid-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~temp_dir() { fs::remove_all(path); }
};

std::string slurp(const fs::path &p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void put(const fs::path &p, const std::string &text) { std::ofstream(p) << text; }

}  // namespace

TEST_CASE("read: a pid, or why there is none") {
    temp_dir d;
    fs::path p = d.path / "a.pid";
    std::string err;
    CHECK(pid_file::read(p, err) == 0);
    CHECK(err.find("cannot read the pid file") != std::string::npos);
    for (const char *good : {"1234\n", "1234", "1234 \n"}) {
        put(p, good);
        err.clear();
        CHECK(pid_file::read(p, err) == 1234);
        CHECK(err.empty());
    }
    for (const char *bad : {"", "\n", "banana\n", "12a\n", "-5\n", "1\n", "0\n", "99999999999\n", "12 34\n"}) {
        CAPTURE(bad);
        put(p, bad);
        err.clear();
        CHECK(pid_file::read(p, err) == 0);
        CHECK(err.find("does not hold a process id") != std::string::npos);
    }
}

TEST_CASE("open, publish, remove: the file names this process while it runs") {
    temp_dir d;
    fs::path p = d.path / "a.pid";
    std::string err;
    {
        pid_file f;
        REQUIRE(f.open(p, err));
        f.publish();
        CHECK(slurp(p) == std::to_string(getpid()) + "\n");
        f.remove();
        CHECK_FALSE(fs::exists(p));
    }
    SUBCASE("opened, not yet published: what was there stays (a takeover's old pid)") {
        put(p, "987654321\n");  // longer than our pid: publishing leaves no tail of it
        pid_file f;
        REQUIRE(f.open(p, err));
        CHECK(slurp(p) == "987654321\n");
        f.publish();
        CHECK(slurp(p) == std::to_string(getpid()) + "\n");
    }
    SUBCASE("another process wrote its pid since: not ours to remove") {
        pid_file f;
        REQUIRE(f.open(p, err));
        f.publish();
        put(p, "4242\n");
        f.remove();
        CHECK(slurp(p) == "4242\n");
    }
    SUBCASE("handed over: left for the successor, even while it still names us") {
        pid_file f;
        REQUIRE(f.open(p, err));
        f.publish();
        f.disown();
        f.remove();
        CHECK(slurp(p) == std::to_string(getpid()) + "\n");
    }
    SUBCASE("created and never written (a start that failed): removed") {
        pid_file f;
        REQUIRE(f.open(p, err));
        f.remove();
        CHECK_FALSE(fs::exists(p));
    }
    SUBCASE("an unwritable place: one line naming the key") {
        pid_file f;
        CHECK_FALSE(f.open(d.path / "no" / "such" / "a.pid", err));
        CHECK(err.find("server.pid_file: cannot write '") == 0);
    }
}
