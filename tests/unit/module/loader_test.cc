#include <doctest/doctest.h>

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
