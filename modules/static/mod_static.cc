// mod_static: serves files below a root directory.
//
// Minimal by design for now (issue 2): GET/HEAD, index files, content types,
// 301 for directories without a trailing slash, 404. Lookups go through
// openat2(RESOLVE_BENEATH) so neither dot segments nor symlinks leave the root.
#include <atlas/module.hpp>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mime.hh"

namespace {

using atlas::module::slice;
using atlas::module::view;

atlas::module::context ctx;

struct config {
    std::string root;
    int root_fd = -1;
    std::vector<std::string> index{"index.html"};
};

int open_beneath(int dirfd, const std::string &rel) {
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return int(syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
}

void *config_create(atlas_slice_t json, atlas_slice_t, atlas_error_t *err) {
    return atlas::module::guard_config(err, [&]() -> void * {
        auto j = nlohmann::json::parse(view(json));
        auto c = std::make_unique<config>();
        for (auto &[k, v] : j.items()) {
            if (k == "root") {
                if (!v.is_string() || v.get<std::string>().empty()) throw std::runtime_error("root: must be a directory path");
                c->root = v.get<std::string>();
            } else if (k == "index") {
                if (!v.is_array()) throw std::runtime_error("index: must be an array of file names");
                c->index.clear();
                for (auto &f : v) {
                    if (!f.is_string() || f.get<std::string>().find('/') != std::string::npos)
                        throw std::runtime_error("index: entries must be plain file names");
                    c->index.push_back(f.get<std::string>());
                }
            } else {
                throw std::runtime_error(k + ": unknown key (mod_static takes root, index)");
            }
        }
        if (c->root.empty()) throw std::runtime_error("root: required");
        if (c->root[0] != '/') {
            atlas_slice_t dir = ctx.host->config_dir();
            c->root = std::string(view(dir)) + "/" + c->root;
        }
        c->root_fd = open(c->root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c->root_fd < 0)
            throw std::runtime_error("root: cannot open directory " + c->root + ": " + std::strerror(errno));
        return c.release();
    });
}

void config_destroy(void *p) {
    auto *c = static_cast<config *>(p);
    if (c->root_fd >= 0) close(c->root_fd);
    delete c;
}

void close_fd(void *user, int32_t) { close(int(reinterpret_cast<intptr_t>(user))); }

int32_t respond_text(atlas_exchange_t *ex, uint32_t status, std::string_view body) {
    return ctx.host->respond(ex, status, slice("text/plain"), slice(body));
}

int32_t serve_fd(atlas_exchange_t *ex, int fd, const struct stat &st, std::string_view name) {
    ctx.host->header_set(ex, ATLAS_RESPONSE, slice("Content-Type"), slice(atlas::static_files::mime_type(name)));
    int32_t rc = ctx.host->response_start(ex, 200, int64_t(st.st_size));
    if (rc != ATLAS_OK) {
        close(fd);
        return rc;
    }
    if (st.st_size == 0) {
        close(fd);
        return ctx.host->response_write(ex, nullptr, 0, ATLAS_WRITE_END, nullptr, nullptr);
    }
    rc = ctx.host->response_sendfile(ex, fd, 0, uint64_t(st.st_size), ATLAS_WRITE_END, close_fd,
                                     reinterpret_cast<void *>(intptr_t(fd)));
    if (rc != ATLAS_OK) close(fd);
    return rc;
}

int32_t on_request(void *cfgp, void *, atlas_exchange_t *ex, void **) {
    return atlas::module::guard(ctx, int32_t(ATLAS_ERROR), [&]() -> int32_t {
        auto *cfg = static_cast<config *>(cfgp);
        atlas_request_info_t ri{};
        ri.struct_size = sizeof ri;
        ctx.host->exchange_request_info(ex, &ri);
        std::string_view method = view(ri.method);
        if (method != "GET" && method != "HEAD") {
            ctx.host->header_set(ex, ATLAS_RESPONSE, slice("Allow"), slice("GET, HEAD"));
            return respond_text(ex, 405, "405 Method Not Allowed\n");
        }
        std::string_view path = view(ri.path);
        // The route prefix is part of the URL space below root, as with nginx `root`.
        std::string rel = path.size() > 1 ? std::string(path.substr(1)) : std::string(".");
        int fd = open_beneath(cfg->root_fd, rel);
        if (fd < 0) {
            if (errno == EACCES) return respond_text(ex, 403, "403 Forbidden\n");
            return respond_text(ex, 404, "404 Not Found\n");
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            return respond_text(ex, 404, "404 Not Found\n");
        }
        if (S_ISDIR(st.st_mode)) {
            if (path.back() != '/') {
                close(fd);
                std::string loc = std::string(path) + "/";
                if (ri.query.len) loc += "?" + std::string(view(ri.query));
                ctx.host->header_set(ex, ATLAS_RESPONSE, slice("Location"), slice(loc));
                return respond_text(ex, 301, "301 Moved Permanently\n");
            }
            for (const std::string &idx : cfg->index) {
                int f = openat(fd, idx.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (f < 0) continue;
                struct stat ist;
                if (fstat(f, &ist) == 0 && S_ISREG(ist.st_mode)) {
                    close(fd);
                    return serve_fd(ex, f, ist, idx);
                }
                close(f);
            }
            close(fd);
            return respond_text(ex, 403, "403 Forbidden\n");  // no index, and no listings
        }
        if (!S_ISREG(st.st_mode)) {
            close(fd);
            return respond_text(ex, 404, "404 Not Found\n");
        }
        return serve_fd(ex, fd, st, path);
    });
}

const atlas_http_handler_t handler = {
    sizeof(atlas_http_handler_t),
    config_create,
    config_destroy,
    nullptr,  // worker_init
    nullptr,  // worker_destroy
    on_request,
    nullptr,  // on_request_body: request bodies are discarded by the host
    nullptr,  // on_abort
    nullptr,  // request_destroy
};

const atlas_module_t descriptor = {
    ATLAS_MODULE_HEAD,
    "static",
    "0.1.0",
    "static files below a root directory",
    &handler,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

extern "C" ATLAS_EXPORT const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host) {
    ctx.host = host;
    ctx.self = &descriptor;
    return &descriptor;
}
