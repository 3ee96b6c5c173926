// mod_proxy: the reverse-proxy handler. It reads its table and hands each request to
// the host's HTTP/1.1 proxy (host->proxy_forward), which owns connections, pools,
// the codec and the streaming; this module decides where and how.
//
//   handler = { module = "proxy",
//               upstream = "api",            # required: an [upstream.NAME] of the config
//               strip_prefix = true,         # true: drop the route's path_prefix; a string:
//                                            # drop that prefix; false / absent: keep the path
//               host = "api.internal",       # Host sent upstream; absent: the client's
//               x_forwarded_for = true,      # X-Forwarded-For (default on)
//               x_forwarded_proto = true,    # X-Forwarded-Proto (default on)
//               x_forwarded_host = true,     # X-Forwarded-Host (default on)
//               forwarded = false,           # RFC 7239 Forwarded (default off)
//               websocket = true,            # tunnel WebSocket upgrades (default on)
//               upgrade = ["name", ...] }    # other Upgrade protocols to tunnel (default none:
//                                            # h2c, say, would let a client bypass the routes)
//
// Errors name the key relative to this table (the host puts the table's place in front).
#include <atlas/module.hpp>

#include <cctype>
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
    std::string upstream_name;
    bool strip_route_prefix = false;
    std::string strip_prefix;  // explicit prefix (when a string was given)
    std::string host;
    std::string upgrade;  // "a, b": the host's comma-separated protocol list
    uint32_t flags = ATLAS_PROXY_X_FORWARDED_FOR | ATLAS_PROXY_X_FORWARDED_PROTO | ATLAS_PROXY_X_FORWARDED_HOST |
                     ATLAS_PROXY_WEBSOCKET;
};

[[noreturn]] void bad(const std::string &key, const std::string &why) { throw std::runtime_error(key + ": " + why); }

bool flag(const json &v, const std::string &key) {
    if (!v.is_boolean()) bad(key, "must be true or false");
    return v.get<bool>();
}

bool clean_text(const std::string &s) {
    for (unsigned char c : s)
        if (c <= 0x20 || c == 0x7f) return false;
    return !s.empty();
}

// An Upgrade protocol: token ["/" token] (RFC 9110 7.8).
bool protocol_text(const std::string &s) {
    static constexpr std::string_view tchar_extra = "!#$%&'*+-.^_`|~";
    size_t slashes = 0;
    for (char c : s) {
        if (c == '/') ++slashes;
        else if (!std::isalnum(static_cast<unsigned char>(c)) && tchar_extra.find(c) == std::string_view::npos) return false;
    }
    return !s.empty() && s.front() != '/' && s.back() != '/' && slashes <= 1;
}

config *parse(std::string_view text) {
    json j = json::parse(text);
    if (!j.is_object()) bad("proxy", "must be a table");
    auto c = std::make_unique<config>();
    for (auto &[k, v] : j.items()) {
        if (k == "upstream") {
            if (!v.is_string() || v.get<std::string>().empty()) bad(k, "must be the name of an [upstream.NAME] table");
            c->upstream_name = v.get<std::string>();
        } else if (k == "strip_prefix") {
            if (v.is_boolean()) {
                c->strip_route_prefix = v.get<bool>();
            } else if (v.is_string()) {
                c->strip_prefix = v.get<std::string>();
                if (c->strip_prefix.empty() || c->strip_prefix[0] != '/' || !clean_text(c->strip_prefix))
                    bad(k, "must be true, false or a path prefix like \"/api\"");
            } else {
                bad(k, "must be true, false or a path prefix like \"/api\"");
            }
        } else if (k == "host") {
            if (!v.is_string() || !clean_text(v.get<std::string>()))
                bad(k, "must be a host name (and optional port) to send as Host");
            c->host = v.get<std::string>();
        } else if (k == "x_forwarded_for" || k == "x_forwarded_proto" || k == "x_forwarded_host" ||
                   k == "forwarded") {
            uint32_t bit = k == "x_forwarded_for"     ? ATLAS_PROXY_X_FORWARDED_FOR
                           : k == "x_forwarded_proto" ? ATLAS_PROXY_X_FORWARDED_PROTO
                           : k == "x_forwarded_host"  ? ATLAS_PROXY_X_FORWARDED_HOST
                                                      : ATLAS_PROXY_FORWARDED;
            if (flag(v, k)) c->flags |= bit;
            else c->flags &= ~bit;
        } else if (k == "websocket") {
            if (flag(v, k)) c->flags |= ATLAS_PROXY_WEBSOCKET;
            else c->flags &= ~ATLAS_PROXY_WEBSOCKET;
        } else if (k == "upgrade") {
            const char *want = "must be a list of Upgrade protocol names, e.g. [\"foo\", \"bar/2\"]";
            if (!v.is_array()) bad(k, want);
            for (const json &p : v) {
                if (!p.is_string() || !protocol_text(p.get<std::string>())) bad(k, want);
                if (!c->upgrade.empty()) c->upgrade += ", ";
                c->upgrade += p.get<std::string>();
            }
        } else {
            bad(k, "unknown key (mod_proxy takes upstream, strip_prefix, host, x_forwarded_for, "
                   "x_forwarded_proto, x_forwarded_host, forwarded, websocket, upgrade)");
        }
    }
    c->upstream = atlas::module::upstream_named(ctx, c->upstream_name, "api");
    return c.release();
}

void *config_create(atlas_slice_t json_text, atlas_slice_t, atlas_error_t *err) noexcept {
    return atlas::module::guard_config(err, [&]() -> void * { return parse(view(json_text)); });
}

void config_destroy(void *c) noexcept { delete static_cast<config *>(c); }

int32_t on_request(void *cfgp, void *, atlas_exchange_t *ex, void **) noexcept {
    const auto *cfg = static_cast<const config *>(cfgp);
    atlas_proxy_options_t opt{};
    opt.struct_size = sizeof opt;
    opt.upstream = cfg->upstream;
    opt.flags = cfg->flags;
    opt.host = slice(cfg->host);
    opt.strip_prefix = slice(cfg->strip_prefix);
    opt.upgrade = slice(cfg->upgrade);
    if (cfg->strip_route_prefix) {
        atlas_request_info_t info{};
        info.struct_size = sizeof info;
        if (ctx.host->exchange_request_info(ex, &info) == ATLAS_OK) opt.strip_prefix = info.route_prefix;
    }
    return ctx.host->proxy_forward(ex, &opt);
}

// The host streams the body of a proxied request itself; a handler without this hook
// would have its request bodies read and dropped before on_request.
void on_request_body(void *, atlas_exchange_t *, atlas_slice_t, bool) noexcept {}

const atlas_http_handler_t handler = {
    sizeof(atlas_http_handler_t),
    config_create,
    config_destroy,
    nullptr,  // worker_init
    nullptr,  // worker_destroy
    on_request,
    on_request_body,
    nullptr,  // on_abort: the host cancels the upstream side
    nullptr,  // request_destroy: no per-request state
};

const atlas_module_t descriptor = {
    ATLAS_MODULE_HEAD, "proxy", "0.1.0", "HTTP/1.1 reverse proxy to an upstream group",
    &handler, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

ATLAS_MODULE_ENTRY(ctx, descriptor)
