// The runnable form of a config snapshot: modules loaded, module configs created,
// listeners resolved. Built on the main thread, then shared read-only by workers.
#pragma once

#include <atlas/module.h>

#include <memory>
#include <string>
#include <vector>

#include "config/model.hh"
#include "module/loader.hh"
#include "net/address.hh"

namespace atlas::chain {

// One use of a module in the config (a route's handler, a filter, a transport...),
// with the config object the module created for it.
struct module_instance {
    const module::loaded_module *mod = nullptr;
    const atlas_http_handler_t *handler = nullptr;
    const atlas_http_filter_t *filter = nullptr;
    const atlas_stream_handler_t *stream = nullptr;
    const atlas_transport_t *transport = nullptr;
    void *config = nullptr;
    std::string key;
    uint32_t slot = 0;  // index of this instance's per-worker state
};

struct route_rt {
    std::string host;        // lowercase; empty = any
    bool host_wildcard = false;  // "*.example.com": host holds ".example.com"
    std::string path_prefix;
    std::vector<std::string> methods;
    std::vector<module_instance *> filters;
    module_instance *handler = nullptr;
    bool has_response_filters = false;
};

struct listener_rt {
    const config::listener *cfg = nullptr;
    std::vector<net::address> addresses;
    std::vector<route_rt> routes;
    module_instance *transport = nullptr;
    module_instance *stream = nullptr;
};

struct runtime {
    std::shared_ptr<const config::snapshot> snap;
    std::vector<std::unique_ptr<module_instance>> instances;
    std::vector<listener_rt> listeners;
    uint32_t workers = 1;
    std::string module_dir;

    runtime() = default;
    runtime(const runtime &) = delete;
    runtime &operator=(const runtime &) = delete;
    ~runtime();  // destroys module configs
};

// The module directory used when the config does not set one: the build tree's
// while atlasd runs from it, the installed one otherwise.
std::string default_module_dir();

// Loads modules, creates their configs and resolves listeners. Appends one line
// per problem to `errors`; the result is usable only when no error was added.
std::unique_ptr<runtime> build_runtime(std::shared_ptr<const config::snapshot> snap,
                                       module::loader &loader, std::vector<std::string> &errors);

// Route selection: longest path prefix wins; on a tie an exact host beats a
// wildcard beats any host, then declaration order. nullptr = 404.
const route_rt *match_route(const listener_rt &l, std::string_view host, std::string_view path,
                            std::string_view method);

}  // namespace atlas::chain
