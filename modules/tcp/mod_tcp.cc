// mod_tcp: the L4 (TCP) proxy, a stream handler. It reads its table and hands every
// connection to the host's L4 proxy (host->stream_forward), which picks the server
// through the upstream's LB policy, connects, relays both ways and passes half-closes
// on; this module decides where to and how.
//
//   chain = [{ module = "tcp",
//              upstream = "db",          # required: an [upstream.NAME] of the config
//              proxy_protocol = "v2",    # send a PROXY protocol header first: "v1", "v2",
//                                        # or false (the default)
//              idle_timeout = "10m" }]   # close both sides after this long without a
//                                        # byte either way (default 10m)
//
// Errors name the key relative to this table (the host puts the table's place in front).
#include <atlas/module.hpp>

#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

using atlas::module::slice;
using atlas::module::view;
using nlohmann::json;

atlas::module::context ctx;

struct config {
    atlas_upstream_t *upstream = nullptr;
    uint32_t flags = 0;
    uint64_t idle_timeout_ms = 10 * 60 * 1000;
};

[[noreturn]] void bad(const std::string &key, const std::string &why) { throw std::runtime_error(key + ": " + why); }

config *parse(std::string_view text) {
    json j = json::parse(text);
    if (!j.is_object()) bad("tcp", "must be a table");
    auto c = std::make_unique<config>();
    std::string upstream;
    for (auto &[k, v] : j.items()) {
        if (k == "upstream") {
            if (!v.is_string() || v.get<std::string>().empty()) bad(k, "must be the name of an [upstream.NAME] table");
            upstream = v.get<std::string>();
        } else if (k == "proxy_protocol") {
            const char *want = "must be \"v1\", \"v2\" or false";
            if (v.is_boolean()) {
                if (v.get<bool>()) bad(k, std::string(want) + " (say which version to send)");
                c->flags = 0;
            } else if (v == "v1") {
                c->flags = ATLAS_STREAM_PROXY_V1;
            } else if (v == "v2") {
                c->flags = ATLAS_STREAM_PROXY_V2;
            } else {
                bad(k, want);
            }
        } else if (k == "idle_timeout") {
            uint64_t ms = 0;
            if (!v.is_string() || !atlas::module::parse_duration_ms(v.get<std::string>(), ms) || ms == 0)
                bad(k, "must be a duration like \"30s\" or \"10m\"");
            c->idle_timeout_ms = ms;
        } else {
            bad(k, "unknown key (mod_tcp takes upstream, proxy_protocol, idle_timeout)");
        }
    }
    c->upstream = atlas::module::upstream_named(ctx, upstream, "db");
    return c.release();
}

void *config_create(atlas_slice_t json_text, atlas_slice_t, atlas_error_t *err) noexcept {
    return atlas::module::guard_config(err, [&]() -> void * { return parse(view(json_text)); });
}

void config_destroy(void *c) noexcept { delete static_cast<config *>(c); }

// Every connection goes to the host's L4 proxy at once (a server may speak first); the
// config doubles as the connection state, there being nothing per connection here.
void *conn_open(void *cfgp, void *, atlas_conn_t *conn) noexcept {
    const auto *cfg = static_cast<const config *>(cfgp);
    atlas_stream_options_t opt{};
    opt.struct_size = sizeof opt;
    opt.upstream = cfg->upstream;
    opt.flags = cfg->flags;
    opt.idle_timeout_ms = cfg->idle_timeout_ms;
    if (ctx.host->stream_forward(conn, &opt) != ATLAS_OK) return nullptr;
    return cfgp;
}

// The host relays the bytes itself once the connection is forwarded.
void on_data(void *, atlas_conn_t *, atlas_slice_t) noexcept {}
void conn_close(void *) noexcept {}

const atlas_stream_handler_t stream = {
    sizeof(atlas_stream_handler_t),
    config_create,
    config_destroy,
    nullptr,  // worker_init
    nullptr,  // worker_destroy
    conn_open,
    on_data,
    nullptr,  // on_eof: never called once forwarded
    conn_close,
};

const atlas_module_t descriptor = {
    ATLAS_MODULE_HEAD, "tcp", "0.1.0", "L4 (TCP) proxy to an upstream group",
    nullptr, nullptr, &stream, nullptr, nullptr,
};

}  // namespace

ATLAS_MODULE_ENTRY(ctx, descriptor)
