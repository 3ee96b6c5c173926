// mod_tcp through its real descriptor: its table becomes the options conn_open hands to
// host->stream_forward, and every bad key is one line naming it.
#include <atlas/module.h>
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <string_view>

namespace {

atlas_upstream_t *const db = reinterpret_cast<atlas_upstream_t *>(0x1000);

atlas_stream_options_t forwarded{};
int forward_calls = 0;
int32_t forward_result = ATLAS_OK;

void h_error_set(atlas_error_t *err, atlas_slice_t message) {
    size_t n = std::min(message.len, sizeof err->message - 1);
    std::memcpy(err->message, message.ptr, n);
    err->message[n] = 0;
    err->code = ATLAS_ERROR;
}

atlas_upstream_t *h_upstream_find(atlas_slice_t name) { return std::string_view(name.ptr, name.len) == "db" ? db : nullptr; }

int32_t h_stream_forward(atlas_conn_t *, const atlas_stream_options_t *opt) {
    ++forward_calls;
    forwarded = *opt;
    return forward_result;
}

const atlas_stream_handler_t &handler() {
    static const atlas_stream_handler_t *h = [] {
        static atlas_host_api_t host{};
        host.struct_size = sizeof host;
        host.abi_major = ATLAS_ABI_MAJOR;
        host.abi_minor = ATLAS_ABI_MINOR;
        host.error_set = h_error_set;
        host.upstream_find = h_upstream_find;
        host.stream_forward = h_stream_forward;
        void *so = dlopen(MOD_TCP, RTLD_NOW | RTLD_LOCAL);
        INFO("dlopen: ", (so ? "" : dlerror()));
        REQUIRE(so);
        auto entry = reinterpret_cast<atlas_module_entry_fn>(dlsym(so, ATLAS_MODULE_ENTRY_SYMBOL));
        REQUIRE((entry != nullptr));
        const atlas_module_t *d = entry(&host);
        REQUIRE(d);
        CHECK(std::string(d->name) == "tcp");
        CHECK(d->http_handler == nullptr);
        REQUIRE(d->stream_handler);
        return d->stream_handler;
    }();
    return *h;
}

// config_create(json): the config, or nullptr with the error in `why`.
void *create(std::string_view json, std::string &why) {
    atlas_error_t err{};
    err.struct_size = sizeof err;
    void *c = handler().config_create({json.data(), json.size()}, {"listener.l4.chain[0]", 20}, &err);
    why = err.message;
    return c;
}

// What conn_open passes to stream_forward for a config made from `json`.
atlas_stream_options_t opened(std::string_view json) {
    std::string why;
    void *c = create(json, why);
    INFO(why);
    REQUIRE(c);
    forward_calls = 0;
    auto *conn = reinterpret_cast<atlas_conn_t *>(0x2000);
    void *state = handler().conn_open(c, nullptr, conn);
    CHECK(state != nullptr);
    CHECK(forward_calls == 1);
    handler().conn_close(state);
    handler().config_destroy(c);
    return forwarded;
}

}  // namespace

TEST_CASE("defaults: no PROXY header, 10 minutes idle") {
    atlas_stream_options_t o = opened(R"({"upstream":"db"})");
    CHECK(o.struct_size == sizeof(atlas_stream_options_t));
    CHECK(o.upstream == db);
    CHECK(o.flags == 0);
    CHECK(o.idle_timeout_ms == 600000);
}

TEST_CASE("proxy_protocol and idle_timeout") {
    CHECK(opened(R"({"upstream":"db","proxy_protocol":"v1"})").flags == ATLAS_STREAM_PROXY_V1);
    CHECK(opened(R"({"upstream":"db","proxy_protocol":"v2"})").flags == ATLAS_STREAM_PROXY_V2);
    CHECK(opened(R"({"upstream":"db","proxy_protocol":false})").flags == 0);
    CHECK(opened(R"({"upstream":"db","idle_timeout":"30s"})").idle_timeout_ms == 30000);
    CHECK(opened(R"({"upstream":"db","idle_timeout":"250ms"})").idle_timeout_ms == 250);
    CHECK(opened(R"({"upstream":"db","idle_timeout":"2h"})").idle_timeout_ms == 7200000);
}

TEST_CASE("a refused forward refuses the connection") {
    std::string why;
    void *c = create(R"({"upstream":"db"})", why);
    REQUIRE(c);
    forward_result = ATLAS_EINVAL;
    CHECK(handler().conn_open(c, nullptr, reinterpret_cast<atlas_conn_t *>(0x2000)) == nullptr);
    forward_result = ATLAS_OK;
    handler().config_destroy(c);
}

TEST_CASE("bad tables are one line naming the key") {
    const std::pair<const char *, const char *> cases[] = {
        {R"({})", "upstream: required (e.g. upstream = \"db\" with an [upstream.db] table)"},
        {R"({"upstream":""})", "upstream: must be the name of an [upstream.NAME] table"},
        {R"({"upstream":7})", "upstream: must be the name of an [upstream.NAME] table"},
        {R"({"upstream":"web"})", "upstream: no upstream named \"web\" (declare [upstream.web])"},
        {R"({"upstream":"db","proxy_protocol":"v3"})", "proxy_protocol: must be \"v1\", \"v2\" or false"},
        {R"({"upstream":"db","proxy_protocol":true})",
         "proxy_protocol: must be \"v1\", \"v2\" or false (say which version to send)"},
        {R"({"upstream":"db","proxy_protocol":2})", "proxy_protocol: must be \"v1\", \"v2\" or false"},
        {R"({"upstream":"db","idle_timeout":"10"})", "idle_timeout: must be a duration like \"30s\" or \"10m\""},
        {R"({"upstream":"db","idle_timeout":"0s"})", "idle_timeout: must be a duration like \"30s\" or \"10m\""},
        {R"({"upstream":"db","idle_timeout":600})", "idle_timeout: must be a duration like \"30s\" or \"10m\""},
        {R"({"upstream":"db","buffer":"64k"})", "buffer: unknown key (mod_tcp takes upstream, proxy_protocol, idle_timeout)"},
    };
    for (const auto &[json, want] : cases) {
        std::string why;
        CAPTURE(json);
        CHECK(create(json, why) == nullptr);
        CHECK(why == want);
    }
}
