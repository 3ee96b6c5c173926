#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "module/loader.hh"

using atlas::module::validate_descriptor;

namespace {
int32_t on_request(void *, void *, atlas_exchange_t *, void **) { return ATLAS_OK; }
const atlas_http_handler_t handler = {sizeof(atlas_http_handler_t), nullptr, nullptr, nullptr, nullptr,
                                      on_request, nullptr, nullptr, nullptr};
atlas_module_t good() {
    atlas_module_t d{ATLAS_MODULE_HEAD, "t", "1", "test", &handler, nullptr, nullptr, nullptr, nullptr};
    return d;
}
bool has(const std::string &s, const char *sub) { return s.find(sub) != std::string::npos; }
}  // namespace

TEST_CASE("a valid descriptor passes") { auto d = good(); CHECK(validate_descriptor(&d).empty()); }

TEST_CASE("each defect has its own message") {
    CHECK(has(validate_descriptor(nullptr), "returned no descriptor"));
    auto d = good();
    d.magic = 0xdeadbeef;
    CHECK(has(validate_descriptor(&d), "bad magic"));
    d = good();
    d.abi_major = ATLAS_ABI_MAJOR + 1;
    CHECK(has(validate_descriptor(&d), "ABI major"));
    d = good();
    d.abi_minor = ATLAS_ABI_MINOR + 1;
    CHECK(has(validate_descriptor(&d), "newer than"));
    d = good();
    d.struct_size = 8;
    CHECK(has(validate_descriptor(&d), "struct_size"));
    d = good();
    d.http_handler = nullptr;
    CHECK(has(validate_descriptor(&d), "offers no kind"));
    d = good();
    d.name = nullptr;
    CHECK(has(validate_descriptor(&d), "no name"));
}

TEST_CASE("required hooks and kind sizes are checked") {
    atlas_http_handler_t h = handler;
    h.on_request = nullptr;
    auto d = good();
    d.http_handler = &h;
    CHECK(has(validate_descriptor(&d), "on_request"));
    h = handler;
    h.struct_size = 8;
    CHECK(has(validate_descriptor(&d), "http_handler struct_size"));
    atlas_lb_policy_t lb{};
    lb.struct_size = sizeof lb;
    d = good();
    d.lb_policy = &lb;
    CHECK(has(validate_descriptor(&d), "lb_policy needs"));
}

TEST_CASE("older minors are accepted") {
    auto d = good();
    d.abi_minor = 0;
    CHECK(validate_descriptor(&d).empty());
}

TEST_CASE("missing files are reported with the path") {
    atlas::module::loader l(nullptr);
    std::string err;
    CHECK(l.load("nope", "/nonexistent-dir", err) == nullptr);
    CHECK(has(err, "/nonexistent-dir/mod_nope.so"));
    CHECK(has(err, "not found"));
}

TEST_CASE("check_ownership: only root or the running user may be able to change a module") {
    char tmpl[] = "/tmp/atlas-own-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    std::string dir = tmpl, file = dir + "/mod_x.so";
    chmod(dir.c_str(), 0755);
    int fd = open(file.c_str(), O_CREAT | O_WRONLY, 0755);
    REQUIRE(fd >= 0);
    close(fd);
    chmod(file.c_str(), 0755);
    uid_t me = geteuid();

    CHECK(atlas::module::check_ownership(file, me).empty());
    // A root-owned module is fine for any running user (atlasd after its switch).
    if (me == 0) CHECK(atlas::module::check_ownership(file, 4242).empty());
    chmod(file.c_str(), 0775);
    CHECK(has(atlas::module::check_ownership(file, me), "is group-writable: refusing to load it"));
    chmod(file.c_str(), 0757);
    CHECK(has(atlas::module::check_ownership(file, me), "is world-writable: refusing to load it"));
    chmod(file.c_str(), 0755);
    chmod(dir.c_str(), 0777);
    CHECK(has(atlas::module::check_ownership(file, me), ("its directory " + dir + " is world-writable").c_str()));
    chmod(dir.c_str(), 0755);
    if (me == 0) {  // ownership by another uid needs chown
        REQUIRE(chown(file.c_str(), 4242, gid_t(-1)) == 0);
        CHECK(atlas::module::check_ownership(file, 4242).empty());  // owned by the running user
        CHECK(has(atlas::module::check_ownership(file, 0), "is owned by uid 4242, not root or the running user (uid 0)"));
    }
    CHECK(has(atlas::module::check_ownership(dir + "/absent.so", me), "No such file"));
    unlink(file.c_str());
    rmdir(dir.c_str());
}
