#include "module/loader.hh"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace atlas::module {

namespace {

// Size of each struct as ABI 1.0 defined it: a module may not hand us less.
constexpr size_t min_module_size = offsetof(atlas_module_t, lb_policy) + sizeof(void *);
constexpr size_t min_handler_size = offsetof(atlas_http_handler_t, request_destroy) + sizeof(void *);
constexpr size_t min_filter_size = offsetof(atlas_http_filter_t, filter_destroy) + sizeof(void *);
constexpr size_t min_stream_size = offsetof(atlas_stream_handler_t, conn_close) + sizeof(void *);
constexpr size_t min_transport_size = offsetof(atlas_transport_t, conn_close) + sizeof(void *);
constexpr size_t min_lb_size = offsetof(atlas_lb_policy_t, on_release) + sizeof(void *);

std::string hex(uint32_t v) {
    char b[16];
    std::snprintf(b, sizeof b, "0x%08x", v);
    return b;
}

template <class T>
std::string check_kind(const T *k, size_t min_size, const char *kind) {
    if (!k) return {};
    if (k->struct_size < min_size)
        return std::string(kind) + " struct_size " + std::to_string(k->struct_size) +
               " is smaller than the ABI 1.0 minimum " + std::to_string(min_size);
    return {};
}

}  // namespace

std::string describe_kinds(const atlas_module_t *d) {
    std::string s;
    auto add = [&](bool has, const char *n) {
        if (!has) return;
        if (!s.empty()) s += ", ";
        s += n;
    };
    add(d->http_handler, "http_handler");
    add(d->http_filter, "http_filter");
    add(d->stream_handler, "stream_handler");
    add(d->transport, "transport");
    add(d->lb_policy, "lb_policy");
    return s.empty() ? "nothing" : s;
}

std::string validate_descriptor(const atlas_module_t *d) {
    if (!d) return "atlas_module_entry returned no descriptor";
    if (d->magic != ATLAS_ABI_MAGIC)
        return "bad magic " + hex(d->magic) + " (expected " + hex(ATLAS_ABI_MAGIC) +
               "): not an Atlas module descriptor";
    if (d->abi_major != ATLAS_ABI_MAJOR)
        return "built for ABI major " + std::to_string(d->abi_major) + ", this atlasd has ABI major " +
               std::to_string(ATLAS_ABI_MAJOR) + " (rebuild it against this atlasd's atlas/module.h)";
    if (d->abi_minor > ATLAS_ABI_MINOR)
        return "built for ABI " + std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) +
               ", newer than this atlasd's ABI " + std::to_string(ATLAS_ABI_MAJOR) + "." +
               std::to_string(ATLAS_ABI_MINOR) + " (upgrade atlasd or rebuild the module)";
    if (d->struct_size < min_module_size)
        return "descriptor struct_size " + std::to_string(d->struct_size) +
               " is smaller than the ABI 1.0 minimum " + std::to_string(min_module_size);
    if (!d->name || !*d->name) return "descriptor has no name";
    if (!d->http_handler && !d->http_filter && !d->stream_handler && !d->transport && !d->lb_policy)
        return "descriptor offers no kind (http_handler, http_filter, stream_handler, transport, lb_policy)";
    std::string e;
    if (!(e = check_kind(d->http_handler, min_handler_size, "http_handler")).empty()) return e;
    if (!(e = check_kind(d->http_filter, min_filter_size, "http_filter")).empty()) return e;
    if (!(e = check_kind(d->stream_handler, min_stream_size, "stream_handler")).empty()) return e;
    if (!(e = check_kind(d->transport, min_transport_size, "transport")).empty()) return e;
    if (!(e = check_kind(d->lb_policy, min_lb_size, "lb_policy")).empty()) return e;
    if (d->http_handler && !d->http_handler->on_request) return "http_handler has no on_request hook";
    if (d->http_filter && !d->http_filter->on_request_head && !d->http_filter->on_response_head)
        return "http_filter has neither on_request_head nor on_response_head";
    if (d->stream_handler &&
        (!d->stream_handler->conn_open || !d->stream_handler->on_data || !d->stream_handler->conn_close))
        return "stream_handler needs conn_open, on_data and conn_close";
    if (d->transport && (!d->transport->conn_open || !d->transport->on_wire ||
                         !d->transport->on_plain || !d->transport->conn_close))
        return "transport needs conn_open, on_wire, on_plain and conn_close";
    if (d->lb_policy && (!d->lb_policy->set_endpoints || !d->lb_policy->pick))
        return "lb_policy needs set_endpoints and pick";
    return {};
}

namespace {

// Who else could change what `p` is (st from stat), or "" when nobody but root and us.
std::string writable_by_others(const std::string &p, const struct stat &st, uid_t euid) {
    if (st.st_mode & S_IWOTH) return p + " is world-writable";
    if (st.st_mode & S_IWGRP) return p + " is group-writable";
    if (st.st_uid != 0 && st.st_uid != euid)
        return p + " is owned by uid " + std::to_string(st.st_uid) + ", not root or the running user (uid " +
               std::to_string(euid) + ")";
    return {};
}

}  // namespace

std::string check_ownership(const std::string &path, uid_t euid) {
    // Code loaded into atlasd runs with its privileges: whoever can rewrite the file, or
    // swap it through its directory, would own the server.
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return path + ": " + std::strerror(errno);
    if (std::string why = writable_by_others(path, st, euid); !why.empty()) return why + ": refusing to load it";
    auto dir_of = [](const std::string &p) {
        size_t slash = p.rfind('/');
        return slash == std::string::npos ? std::string(".") : slash == 0 ? std::string("/") : p.substr(0, slash);
    };
    // The directory named in module_dir, and the one the file really is in when a
    // symlink points elsewhere: either would let the module be swapped.
    std::vector<std::string> dirs{dir_of(path)};
    if (char *real = realpath(path.c_str(), nullptr)) {
        std::string real_dir = dir_of(real);
        free(real);
        if (real_dir != dirs[0]) dirs.push_back(real_dir);
    }
    for (const std::string &dir : dirs) {
        if (stat(dir.c_str(), &st) != 0) return dir + ": " + std::strerror(errno);
        if (std::string why = writable_by_others(dir, st, euid); !why.empty())
            return "its directory " + why + " (the module could be swapped): refusing to load " + path;
    }
    return {};
}

const loaded_module *loader::load(const std::string &name, const std::string &dir, std::string &err) {
    std::string path = dir + "/mod_" + name + ".so";
    if (auto it = by_path_.find(path); it != by_path_.end()) return it->second.get();
    if (auto it = failed_.find(path); it != failed_.end()) {
        err = it->second;
        return nullptr;
    }
    auto fail = [&](const std::string &why) -> const loaded_module * {
        err = "module '" + name + "' (" + path + "): " + why;
        failed_[path] = err;
        return nullptr;
    };
    struct stat st;
    if (stat(path.c_str(), &st) != 0)
        return fail("not found (module_dir is " + dir + ")");
    if (!S_ISREG(st.st_mode)) return fail("not a regular file");
    if (std::string why = check_ownership(path, geteuid()); !why.empty()) {
        err = "module '" + name + "': " + why;
        failed_[path] = err;
        return nullptr;
    }
    void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        return fail(std::string("cannot load: ") + (e ? e : "unknown dlopen error"));
    }
    auto entry = reinterpret_cast<atlas_module_entry_fn>(dlsym(h, ATLAS_MODULE_ENTRY_SYMBOL));
    if (!entry)
        return fail("not an Atlas module: it exports no symbol " ATLAS_MODULE_ENTRY_SYMBOL);
    const atlas_module_t *desc = entry(host_);
    std::string why = validate_descriptor(desc);
    if (!why.empty()) return fail(why);
    if (name != desc->name)
        return fail(std::string("descriptor names itself '") + desc->name + "', expected '" + name + "'");
    auto m = std::make_unique<loaded_module>();
    m->name = name;
    m->path = path;
    m->desc = desc;
    // The handle is deliberately leaked: modules are never unloaded (their static
    // state and atexit handlers must outlive every worker).
    auto *raw = m.get();
    by_path_[path] = std::move(m);
    return raw;
}

}  // namespace atlas::module
