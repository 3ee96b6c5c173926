#include "chain/runtime.hh"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "chain/host_api.hh"
#include "chain/log.hh"
#include "chain/response_headers.hh"

namespace atlas::chain {

namespace {

int open_access_log(const std::string &path) {
    return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

}  // namespace

runtime::~runtime() {
    for (const listener_rt &l : listeners)
        if (l.log_fd > STDERR_FILENO) ::close(l.log_fd);
    for (auto &inst : instances)
        if (inst->config && inst->life.config_destroy) inst->life.config_destroy(inst->config);
}

std::string default_module_dir() {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        std::string_view e(exe, size_t(n));
        std::string_view root = ATLAS_BUILD_ROOT;
        if (e.size() > root.size() && e.substr(0, root.size()) == root && e[root.size()] == '/')
            return ATLAS_BUILD_MODULE_DIR;
    }
    return ATLAS_INSTALL_MODULE_DIR;
}

namespace {

enum class kind { handler, filter, stream, transport, client_transport, lb };

const char *kind_name(kind k) {
    switch (k) {
        case kind::handler: return "http_handler";
        case kind::filter: return "http_filter";
        case kind::stream: return "stream_handler";
        case kind::transport: return "transport";
        case kind::client_transport: return "transport (client side)";
        case kind::lb: return "lb_policy";
    }
    return "?";
}

// Every kind struct begins with struct_size and ATLAS_KIND_LIFECYCLE.
template <class kind_table>
lifecycle lifecycle_of(const kind_table *k) {
    lifecycle l;
    if (!k) return l;
    l.config_create = k->config_create;
    l.config_destroy = k->config_destroy;
    l.worker_init = k->worker_init;
    l.worker_destroy = k->worker_destroy;
    return l;
}

std::string dir_of(const std::string &file) {
    size_t slash = file.rfind('/');
    return slash == std::string::npos ? std::string(".") : file.substr(0, slash);
}

// "conf.d/x.toml:12: listener.web.route[0].handler" — where a problem is, as config
// errors say it.
std::string where(const config::module_ref &ref) {
    std::string w = ref.file;
    if (ref.line) w += ":" + std::to_string(ref.line);
    if (!w.empty()) w += ": ";
    return w + ref.key;
}

struct builder {
    runtime &rt;
    module::loader &loader;
    std::vector<std::string> &errors;

    module_instance *instantiate(const config::module_ref &ref, kind k) {
        std::string err;
        const module::loaded_module *m = loader.load(ref.name, rt.module_dir, err);
        if (!m) {
            errors.push_back(where(ref) + ": " + err);
            return nullptr;
        }
        auto inst = std::make_unique<module_instance>();
        inst->mod = m;
        inst->key = ref.key;
        const atlas_module_t *d = m->desc;
        switch (k) {
            case kind::handler:
                inst->handler = d->http_handler;
                inst->life = lifecycle_of(inst->handler);
                break;
            case kind::filter:
                inst->filter = d->http_filter;
                inst->life = lifecycle_of(inst->filter);
                break;
            case kind::stream:
                inst->stream = d->stream_handler;
                inst->life = lifecycle_of(inst->stream);
                break;
            case kind::transport:
                inst->transport = d->transport;
                inst->life = lifecycle_of(inst->transport);
                break;
            case kind::client_transport:
                // The client side brings its own config parser; the rest of the lifecycle is shared.
                if (d->transport && ATLAS_HAS_FIELD(atlas_transport_t, d->transport, client_open) &&
                    d->transport->client_config_create && d->transport->client_open) {
                    inst->transport = d->transport;
                    inst->life = lifecycle_of(inst->transport);
                    inst->life.config_create = d->transport->client_config_create;
                }
                break;
            case kind::lb:
                inst->lb = d->lb_policy;
                inst->life = lifecycle_of(inst->lb);
                break;
        }
        auto create = inst->life.config_create;
        if (!inst->handler && !inst->filter && !inst->stream && !inst->transport && !inst->lb) {
            errors.push_back(where(ref) + ": module '" + ref.name + "' (" + m->path + ") does not offer the " +
                             kind_name(k) + " kind this place needs (it offers " + module::describe_kinds(d) + ")");
            return nullptr;
        }
        if (create) {
            atlas_error_t e{};
            e.struct_size = sizeof e;
            std::string dir = ref.base_dir.empty() ? dir_of(ref.file) : ref.base_dir;
            set_config_dir(dir);
            set_building_runtime(&rt);
            inst->config = create({ref.config_json.data(), ref.config_json.size()},
                                  {ref.key.data(), ref.key.size()}, &e);
            set_building_runtime(nullptr);
            set_config_dir({});
            if (!inst->config) {
                e.message[sizeof e.message - 1] = 0;
                std::string msg = e.message[0] ? e.message : "the module refused its configuration";
                std::replace(msg.begin(), msg.end(), '\n', ' ');
                errors.push_back(where(ref) + ": " + msg);
                return nullptr;
            }
        } else if (ref.config_json != "{}" && !ref.config_json.empty()) {
            errors.push_back(where(ref) + ": module '" + ref.name + "' takes no options");
            return nullptr;
        }
        inst->slot = uint32_t(rt.instances.size());
        rt.instances.push_back(std::move(inst));
        return rt.instances.back().get();
    }
};

}  // namespace

std::unique_ptr<runtime> build_runtime(std::shared_ptr<const config::snapshot> snap,
                                       module::loader &loader, std::vector<std::string> &errors) {
    auto rt = std::make_unique<runtime>();
    rt->snap = snap;
    rt->module_dir = snap->server.module_dir.empty() ? default_module_dir() : snap->server.module_dir;
    // workers = 0: one per CPU this process may run on (taskset/cgroups respected).
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    long cpus = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed)
                                                                     : sysconf(_SC_NPROCESSORS_ONLN);
    rt->workers = snap->server.workers ? snap->server.workers : uint32_t(cpus > 0 ? cpus : 1);
    rt->worker_states = std::make_unique<std::vector<void *>[]>(rt->workers);
    builder b{*rt, loader, errors};

    rt->upstreams.reserve(snap->upstreams.size());
    for (const config::upstream &u : snap->upstreams) {
        upstream_rt ur;
        ur.cfg = &u;
        for (size_t i = 0; i < u.servers.size(); ++i) {
            const config::upstream_server &s = u.servers[i];
            std::vector<net::address> addrs;
            std::string err;
            if (!net::resolve_address(s.address, addrs, err)) {
                errors.push_back(u.key + ".servers[" + std::to_string(i) + "]: '" + s.address + "': " + err);
                continue;
            }
            for (const net::address &a : addrs) ur.specs.push_back({a, net::to_string(a), s.address, s.weight});
        }
        ur.lb = b.instantiate(u.lb, kind::lb);
        if (u.tls) ur.tls = b.instantiate(*u.tls, kind::client_transport);
        rt->upstreams.push_back(std::move(ur));
    }

    for (const config::listener &l : snap->listeners) {
        listener_rt lr;
        lr.cfg = &l;
        lr.gate = std::make_shared<listener_gate>();
        lr.stats = std::shared_ptr<listener_shard[]>(new listener_shard[rt->workers]());  // counters: not copyable, so no make_shared
        for (const std::string &a : l.addresses) {
            net::address addr;
            std::string err;
            if (!net::parse_address(a, addr, err)) {
                errors.push_back(l.key + ".listen: '" + a + "': " + err);
                continue;
            }
            lr.addresses.push_back(addr);
        }
        for (size_t j = 0; j < l.trusted_proxies.size(); ++j) {
            std::string err;
            if (!lr.trusted.add(l.trusted_proxies[j], err))
                errors.push_back(l.key + ".trusted_proxies[" + std::to_string(j) + "]: '" + l.trusted_proxies[j] +
                                 "': " + err);
        }
        lr.client_from = l.client_address_from == "forwarded" ? upstream::client_source::forwarded
                                                              : upstream::client_source::x_forwarded_for;
        lr.log_json = l.access_log_json;
        if (l.access_log == "stderr") {
            lr.log_fd = STDERR_FILENO;
        } else if (!l.access_log.empty()) {
            lr.log_fd = open_access_log(l.access_log);
            if (lr.log_fd < 0)
                errors.push_back(l.key + ".access_log: cannot open '" + l.access_log + "': " + std::strerror(errno));
        }
        if (l.transport) lr.transport = b.instantiate(*l.transport, kind::transport);
        if (!l.is_http) {
            if (l.stream) lr.stream = b.instantiate(*l.stream, kind::stream);
        } else {
            for (const config::route &r : l.routes) {
                route_rt rr;
                rr.key = r.key;
                rr.stats = std::shared_ptr<http_shard[]>(new http_shard[rt->workers]());
                if (r.host) {
                    std::string h = *r.host;
                    std::transform(h.begin(), h.end(), h.begin(), ::tolower);
                    if (h.size() > 1 && h[0] == '*' && h[1] == '.') {
                        rr.host_wildcard = true;
                        rr.host = h.substr(1);
                    } else {
                        rr.host = h;
                    }
                }
                rr.path_prefix = r.path_prefix;
                rr.methods = r.methods;
                for (const auto &[name, value] : r.headers) rr.headers.push_back({name, value});
                for (const config::module_ref &f : r.filters) {
                    module_instance *fi = b.instantiate(f, kind::filter);
                    if (!fi) continue;
                    rr.filters.push_back(fi);
                    if (fi->filter->on_response_head) rr.has_response_filters = true;
                }
                rr.handler = b.instantiate(r.handler, kind::handler);
                lr.routes.push_back(std::move(rr));
            }
        }
        rt->listeners.push_back(std::move(lr));
    }
    return rt;
}

bool listener_gate::take(uint32_t limit) {
    uint32_t n = open.fetch_add(1);
    if (limit == 0 || n < limit) return true;
    open.fetch_sub(1);
    return false;
}

std::vector<worker *> listener_gate::give_back() {
    open.fetch_sub(1);
    std::vector<worker *> wake;
    if (!waiting.load()) return wake;
    std::lock_guard lk(mu);
    wake.swap(waiters);
    waiting.store(false);
    return wake;
}

void listener_gate::wait(worker *w) {
    std::lock_guard lk(mu);
    if (std::find(waiters.begin(), waiters.end(), w) == waiters.end()) waiters.push_back(w);
    waiting.store(true);
}

void carry_gates(runtime &next, const runtime &current) {
    for (listener_rt &l : next.listeners)
        for (const listener_rt &old : current.listeners)
            if (old.cfg->name == l.cfg->name) l.gate = old.gate;
}

void carry_stats(runtime &next, const runtime &current) {
    for (listener_rt &l : next.listeners)
        for (const listener_rt &old : current.listeners) {
            if (old.cfg->name != l.cfg->name) continue;
            l.stats = old.stats;
            for (route_rt &r : l.routes)
                for (const route_rt &o : old.routes)
                    if (o.key == r.key) r.stats = o.stats;
        }
}

void reopen_access_logs(const runtime &rt) {
    for (const listener_rt &l : rt.listeners) {
        if (l.log_fd <= STDERR_FILENO) continue;
        const std::string &path = l.cfg->access_log;
        int fd = open_access_log(path);
        if (fd < 0 || ::dup2(fd, l.log_fd) < 0) {
            log::warn("%s.access_log: cannot reopen '%s': %s", l.cfg->key.c_str(), path.c_str(), std::strerror(errno));
        }
        if (fd >= 0) ::close(fd);
    }
}

bool give_access_logs_to(const runtime &rt, uint32_t uid, uint32_t gid, std::string &err) {
    for (const listener_rt &l : rt.listeners) {
        struct stat st;
        // Only files: access_log = "/dev/stdout" must not hand a device to the user.
        if (l.log_fd <= STDERR_FILENO || ::fstat(l.log_fd, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (::fchown(l.log_fd, uid_t(uid), gid_t(gid)) != 0) {
            err = l.cfg->key + ".access_log: cannot give '" + l.cfg->access_log + "' to uid " + std::to_string(uid) +
                  ": " + std::strerror(errno);
            return false;
        }
    }
    return true;
}

void bind_upstreams(runtime &rt, upstream::registry &reg, uint64_t now) {
    rt.registry = &reg;
    for (upstream_rt &u : rt.upstreams) u.group = reg.bind(*u.cfg, u.specs, now);
}

std::string listen_key(const net::address &a) { return net::to_string(a); }

const listener_rt *listener_on(const runtime &rt, const std::string &key) {
    if (key.ends_with(":0")) return nullptr;  // a new random port each time
    for (const listener_rt &l : rt.listeners)
        for (const net::address &a : l.addresses)
            if (listen_key(a) == key) return &l;
    return nullptr;
}

bool open_new_listeners(const runtime &next, const runtime *current, std::vector<listen_fds> &out, std::string &err) {
    out.assign(next.workers, {});
    for (size_t i = 0; i < next.listeners.size(); ++i) {
        const listener_rt &l = next.listeners[i];
        for (const net::address &a : l.addresses) {
            std::string key = listen_key(a);
            if (current && listener_on(*current, key)) continue;
            for (uint32_t w = 0; w < next.workers; ++w) {
                int fd = net::listen_socket(a, 4096, err);
                if (fd < 0) {
                    err = l.cfg->key + ": " + err;
                    for (listen_fds &f : out)
                        for (const new_listen_socket &n : f.fds) ::close(n.fd);
                    out.clear();
                    return false;
                }
                out[w].fds.push_back({i, fd, key});
            }
        }
    }
    return true;
}

const upstream_rt *find_upstream(const runtime &rt, std::string_view name) {
    for (const upstream_rt &u : rt.upstreams)
        if (u.cfg->name == name) return &u;
    return nullptr;
}

namespace {

bool host_matches(const route_rt &r, std::string_view host) {
    if (r.host.empty()) return true;
    if (!r.host_wildcard) return host == r.host;
    // "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com".
    return host.size() > r.host.size() && host.substr(host.size() - r.host.size()) == r.host;
}

int host_rank(const route_rt &r) { return r.host.empty() ? 0 : r.host_wildcard ? 1 : 2; }

// Every condition holds for some field of that name (a name may repeat).
bool headers_match(const route_rt &r, const http::header_field *headers, size_t count) {
    for (const header_match &m : r.headers) {
        bool ok = false;
        for (size_t i = 0; i < count && !ok; ++i)
            ok = response_headers::iequals_nocase(headers[i].name, m.name) && (m.value == "*" || headers[i].value == m.value);
        if (!ok) return false;
    }
    return true;
}

}  // namespace

const route_rt *match_route(const listener_rt &l, std::string_view host, std::string_view path,
                            std::string_view method, const http::header_field *headers, size_t header_count) {
    const route_rt *best = nullptr;
    for (const route_rt &r : l.routes) {
        if (path.size() < r.path_prefix.size() || path.substr(0, r.path_prefix.size()) != r.path_prefix)
            continue;
        if (!host_matches(r, host)) continue;
        if (!r.methods.empty() &&
            std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end())
            continue;
        if (!headers_match(r, headers, header_count)) continue;
        if (!best || r.path_prefix.size() > best->path_prefix.size()) {
            best = &r;
        } else if (r.path_prefix.size() == best->path_prefix.size()) {
            int a = host_rank(r), b = host_rank(*best);
            if (a > b || (a == b && r.headers.size() > best->headers.size())) best = &r;
        }
    }
    return best;
}

}  // namespace atlas::chain
