// mod_static: serves files below a root directory.
//
// Small files are kept per worker as ready-made 200 responses (one send, no copy,
// Date patched in place once a second); larger ones are streamed with sendfile.
// ETag / Last-Modified, If-None-Match / If-Modified-Since (304), single byte
// ranges (206/416, If-Range), precompressed .br/.gz variants, index files,
// 301 for directories without a slash, 403 without an index, 405 for other
// methods. Lookups go through openat2(RESOLVE_BENEATH) so neither dot segments
// nor symlinks leave the root (where openat2 is missing, symlinks are not followed at all).
#include <atlas/module.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "cache.hh"
#include "config.hh"
#include "mime.hh"
#include "open_beneath.hh"
#include "validators.hh"

namespace {

using namespace atlas::static_files;
using atlas::module::slice;
using atlas::module::view;

atlas::module::context ctx;

// ---------------------------------------------------------------- files

// "/a/b" -> "a/b"; "/" -> "."
std::string relative(std::string_view path) {
    return path.size() > 1 ? std::string(path.substr(1)) : std::string(".");
}

bool same_file(const entry &e, const struct stat &st) {
    return uint64_t(st.st_size) == e.size && st.st_mtim.tv_sec == e.mtime.tv_sec &&
           st.st_mtim.tv_nsec == e.mtime.tv_nsec && st.st_ino == e.ino && st.st_dev == e.dev;
}

// Validators of a file as they appear in headers.
struct validators {
    std::string etag;
    char last_modified[30];
};

validators make_validators(const config &cfg, const struct stat &st) {
    validators v;
    if (cfg.etag) {
        char b[48];
        int n = std::snprintf(b, sizeof b, "\"%llx-%llx\"", (unsigned long long)st.st_mtim.tv_sec,
                              (unsigned long long)st.st_size);
        v.etag.assign(b, size_t(n));
    }
    format_http_date(st.st_mtim.tv_sec, v.last_modified);
    return v;
}

std::string_view content_type(const config &cfg, std::string_view path) {
    size_t slash = path.rfind('/');
    size_t dot = path.rfind('.');
    if (!cfg.mime.empty() && dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
        std::string ext(path.substr(dot + 1));
        for (char &c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
        if (auto it = cfg.mime.find(ext); it != cfg.mime.end()) return it->second;
    }
    return mime_type(path);
}

// --------------------------------------------------------- request helpers

struct request {
    atlas_exchange_t *ex;
    atlas_request_info_t ri;
    bool get;
    // The request headers this module reads (first occurrence; empty = absent),
    // collected in one pass instead of one lookup each.
    std::string_view if_none_match, if_modified_since, range, if_range, accept_encoding;

    void read_headers() {
        size_t n = ctx.host->header_count(ex, ATLAS_REQUEST);
        for (size_t i = 0; i < n; ++i) {
            atlas_slice_t name, value;
            if (!ctx.host->header_at(ex, ATLAS_REQUEST, i, &name, &value)) break;
            std::string_view *slot = field(view(name));
            if (slot && slot->empty()) *slot = view(value);
        }
    }
    // Anything that makes the answer differ from the plain cached 200.
    bool conditional() const {
        return !if_none_match.empty() || !if_modified_since.empty() || ranged();
    }
    bool ranged() const { return get && !range.empty(); }

private:
    std::string_view *field(std::string_view name) {
        auto is = [&](std::string_view want) {
            if (name.size() != want.size()) return false;
            for (size_t i = 0; i < name.size(); ++i)
                if (std::tolower(static_cast<unsigned char>(name[i])) != want[i]) return false;
            return true;
        };
        if (is("range")) return &range;
        if (is("if-range")) return &if_range;
        if (is("if-none-match")) return &if_none_match;
        if (is("if-modified-since")) return &if_modified_since;
        if (is("accept-encoding")) return &accept_encoding;
        return nullptr;
    }
};

int32_t respond_text(const request &r, uint32_t status, std::string_view body) {
    return ctx.host->respond(r.ex, status, slice("text/plain"), slice(body));
}

// Which precompressed variant the client accepts: "br", "gzip" or null. A coding
// listed with q=0 is refused; unlisted ones are not sent.
const char *accepted_encoding(std::string_view ae, bool have_br, bool have_gzip) {
    bool br = false, gz = false;
    while (!ae.empty()) {
        size_t comma = ae.find(',');
        std::string_view item = ae.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        size_t semi = item.find(';');
        std::string_view coding = item.substr(0, semi);
        while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
        bool refused = false;
        if (semi != std::string_view::npos) {
            std::string_view params = item.substr(semi + 1);
            size_t q = params.find("q=");
            if (q != std::string_view::npos) {
                std::string_view qv = params.substr(q + 2);
                refused = qv.size() >= 1 && qv[0] == '0' && qv.find_first_of("123456789") == std::string_view::npos;
            }
        }
        if (!refused) {
            if (coding == "br") br = true;
            else if (coding == "gzip" || coding == "x-gzip") gz = true;
            else if (coding == "*") br = gz = true;
        }
        if (comma == std::string_view::npos) break;
        ae.remove_prefix(comma + 1);
    }
    if (br && have_br) return "br";
    if (gz && have_gzip) return "gzip";
    return nullptr;
}

// ------------------------------------------------------------ responses

void release_entry(void *p, int32_t) {
    auto *e = static_cast<entry *>(p);
    e->owner->release(e);
}

void close_fd(void *user, int32_t) { close(int(reinterpret_cast<intptr_t>(user))); }

// Headers every answer about a representation carries.
void representation_headers(const request &r, std::string_view ctype, std::string_view etag,
                            const char *last_modified, const char *encoding, bool vary) {
    auto set = [&](const char *n, std::string_view v) {
        ctx.host->header_set(r.ex, ATLAS_RESPONSE, slice(n), slice(v));
    };
    if (!ctype.empty()) set("Content-Type", ctype);
    set("Last-Modified", std::string_view(last_modified, 29));
    if (!etag.empty()) set("ETag", etag);
    set("Accept-Ranges", "bytes");
    if (vary) set("Vary", "Accept-Encoding");
    if (encoding) set("Content-Encoding", encoding);
}

// The body is either in a cache entry (memory) or in an open file.
struct body_source {
    entry *e = nullptr;
    int fd = -1;
    uint64_t size = 0;
};

// Evaluates conditionals and ranges, then answers. Takes ownership of src (the
// entry reference or the fd).
int32_t answer(const request &r, body_source src, std::string_view ctype, std::string_view etag,
               const char *last_modified, time_t mtime, const char *encoding, bool vary) {
    auto drop_source = [&] {
        if (src.e) src.e->owner->release(src.e);
        else if (src.fd >= 0) close(src.fd);
    };
    // RFC 9110 13.2.2: If-None-Match, else If-Modified-Since; then If-Range + Range.
    std::string_view inm = r.if_none_match;
    bool not_modified = false;
    if (!inm.empty()) {
        not_modified = !etag.empty() && none_match(inm, etag);
        if (!not_modified && etag.empty()) not_modified = inm == "*";
    } else if (std::string_view ims = r.if_modified_since; !ims.empty()) {
        time_t since;
        not_modified = parse_http_date(ims, since) && mtime <= since;
    }
    if (not_modified) {
        drop_source();
        representation_headers(r, {}, etag, last_modified, encoding, vary);
        int32_t rc = ctx.host->response_start(r.ex, 304, -1);
        if (rc != ATLAS_OK) return rc;
        return ctx.host->response_write(r.ex, nullptr, 0, ATLAS_WRITE_END, nullptr, nullptr);
    }

    uint64_t first = 0, last = src.size ? src.size - 1 : 0;
    range_result range = range_result::none;
    if (r.get) {
        std::string_view rh = r.range;
        if (!rh.empty()) {
            bool honour = true;
            if (std::string_view ir = r.if_range; !ir.empty()) {
                if (ir.front() == '"' || ir.substr(0, 2) == "W/") {
                    honour = !etag.empty() && strong_match(ir, etag);
                } else {
                    time_t d;
                    honour = parse_http_date(ir, d) && d == mtime;
                }
            }
            if (honour) range = parse_range(rh, src.size, first, last);
        }
    }
    if (range == range_result::unsatisfiable) {
        drop_source();
        char cr[64];
        int n = std::snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)src.size);
        ctx.host->header_set(r.ex, ATLAS_RESPONSE, slice("Content-Range"), {cr, size_t(n)});
        return respond_text(r, 416, "416 Range Not Satisfiable\n");
    }
    uint32_t status = 200;
    uint64_t offset = 0, length = src.size;
    representation_headers(r, ctype, etag, last_modified, encoding, vary);
    if (range == range_result::satisfiable) {
        status = 206;
        offset = first;
        length = last - first + 1;
        char cr[80];
        int n = std::snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)first,
                              (unsigned long long)last, (unsigned long long)src.size);
        ctx.host->header_set(r.ex, ATLAS_RESPONSE, slice("Content-Range"), {cr, size_t(n)});
    }
    int32_t rc = ctx.host->response_start(r.ex, status, int64_t(length));
    if (rc != ATLAS_OK) {
        drop_source();
        return rc;
    }
    if (length == 0 || !r.get) {
        drop_source();
        return ctx.host->response_write(r.ex, nullptr, 0, ATLAS_WRITE_END, nullptr, nullptr);
    }
    if (src.e && src.e->fd >= 0) {  // a cached open file
        rc = ctx.host->response_sendfile(r.ex, src.e->fd, offset, length, ATLAS_WRITE_END, release_entry, src.e);
        if (rc != ATLAS_OK) src.e->owner->release(src.e);
        return rc;
    }
    if (src.e) {
        atlas_iovec_t v{src.e->body().data() + offset, size_t(length)};
        rc = ctx.host->response_write(r.ex, &v, 1, ATLAS_WRITE_END | ATLAS_WRITE_REF, release_entry, src.e);
        if (rc != ATLAS_OK) src.e->owner->release(src.e);
        return rc;
    }
    rc = ctx.host->response_sendfile(r.ex, src.fd, offset, length, ATLAS_WRITE_END, close_fd,
                                     reinterpret_cast<void *>(intptr_t(src.fd)));
    if (rc != ATLAS_OK) close(src.fd);
    return rc;
}

// Serves a cached entry: the ready-made bytes when nothing conditional is asked
// and the connection is plain HTTP/1.1 keep-alive, otherwise through answer().
int32_t serve_entry(const request &r, entry *e) {
    e->owner->touch(e);
    e->owner->acquire(e);
    bool plain = e->fd < 0 && r.ri.keep_alive && r.ri.version_minor == 1 && !r.conditional();
    if (plain) {
        atlas_slice_t date = ctx.host->http_date();
        if (date.len == 29 && std::memcmp(e->bytes.data() + e->date_off, date.ptr, 29) != 0)
            std::memcpy(e->bytes.data() + e->date_off, date.ptr, 29);
        int32_t rc = ctx.host->response_raw(r.ex, e->bytes.data(), e->bytes.size(), e->head_len, release_entry, e);
        if (rc == ATLAS_OK) return rc;
        // A response filter on the route: go the long way.
    }
    return answer(r, body_source{e, e->fd, e->size}, e->content_type, e->etag, e->last_modified, e->mtime.tv_sec,
                  e->encoding, e->vary);
}

// A cache entry carrying a file's identity, validators and header values; the
// body (bytes or fd) is the caller's to add.
std::unique_ptr<entry> new_entry(const config &cfg, const std::string &key, const std::string &rel,
                                 const struct stat &st, std::string_view ctype, const char *encoding, bool vary) {
    auto e = std::make_unique<entry>();
    e->key = key;
    e->file_rel = rel;
    e->size = uint64_t(st.st_size);
    e->mtime = st.st_mtim;
    e->ino = st.st_ino;
    e->dev = st.st_dev;
    validators v = make_validators(cfg, st);
    e->etag = std::move(v.etag);
    std::memcpy(e->last_modified, v.last_modified, sizeof e->last_modified);
    e->content_type = ctype;
    e->encoding = encoding;
    e->vary = vary;
    e->checked_ms = ctx.host->now_ms();
    return e;
}

// Reads a small regular file into a new cache entry holding the whole 200 response.
entry *fill_entry(const config &cfg, cache &c, const std::string &key, const std::string &rel, int fd,
                  const struct stat &st, std::string_view ctype, const char *encoding, bool vary) {
    auto e = new_entry(cfg, key, rel, st, ctype, encoding, vary);
    std::string &b = e->bytes;
    b.reserve(256 + e->size);
    b += "HTTP/1.1 200 OK\r\nServer: atlas\r\nDate: ";
    e->date_off = b.size();
    atlas_slice_t date = ctx.host->http_date();
    b.append(date.len == 29 ? std::string_view(date.ptr, 29) : std::string_view(e->last_modified, 29));
    b += "\r\nContent-Type: ";
    b += ctype;
    b += "\r\nContent-Length: ";
    b += std::to_string(e->size);
    b += "\r\nLast-Modified: ";
    b.append(e->last_modified, 29);
    if (!e->etag.empty()) b += "\r\nETag: " + e->etag;
    b += "\r\nAccept-Ranges: bytes";
    if (vary) b += "\r\nVary: Accept-Encoding";
    if (encoding) b += std::string("\r\nContent-Encoding: ") + encoding;
    b += "\r\n\r\n";
    e->head_len = b.size();
    b.resize(e->head_len + e->size);
    size_t got = 0;
    while (got < e->size) {
        ssize_t n = pread(fd, b.data() + e->head_len + got, e->size - got, off_t(got));
        if (n <= 0) return nullptr;  // shrank or unreadable: serve it uncached
        got += size_t(n);
    }
    return c.insert(std::move(e));
}

// Keeps an open large file as a cache entry (its fd, validators and headers); the
// entry owns fd from here on.
entry *fd_entry(const config &cfg, cache &c, const std::string &key, const std::string &rel, int fd,
                const struct stat &st, std::string_view ctype, const char *encoding, bool vary) {
    auto e = new_entry(cfg, key, rel, st, ctype, encoding, vary);
    e->fd = fd;
    return c.insert(std::move(e));
}

// Opens `rel` (a regular file) below the root; -1 and errno when it is not one.
int open_regular(const config &cfg, const std::string &rel, struct stat &st) {
    int fd = open_beneath(cfg.root_fd, rel.c_str());
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = ENOENT;
        return -1;
    }
    return fd;
}

bool variant_exists(const config &cfg, const std::string &rel, const char *suffix) {
    struct stat st;
    int fd = open_regular(cfg, rel + suffix, st);
    if (fd < 0) return false;
    close(fd);
    return true;
}

// Serves one regular file (identity or a precompressed variant), cached when small.
int32_t serve_file(const config &cfg, cache *c, const request &r, const std::string &key, const std::string &rel,
                   int fd, const struct stat &st, std::string_view ctype, const char *encoding, bool vary) {
    if (c && c->fits(uint64_t(st.st_size))) {
        if (entry *e = fill_entry(cfg, *c, key, rel, fd, st, ctype, encoding, vary)) {
            close(fd);
            return serve_entry(r, e);
        }
    } else if (c && c->enabled()) {
        return serve_entry(r, fd_entry(cfg, *c, key, rel, fd, st, ctype, encoding, vary));
    }
    validators v = make_validators(cfg, st);
    return answer(r, body_source{nullptr, fd, uint64_t(st.st_size)}, ctype, v.etag, v.last_modified,
                  st.st_mtim.tv_sec, encoding, vary);
}

// Cache key of a variant: the path plus a byte no URL path contains.
// Built in a per-thread buffer (hooks run on worker threads): a cached variant hit
// allocates nothing. Valid until the next call on the same thread.
const std::string &variant_key(std::string_view path, const char *encoding) {
    thread_local std::string k;
    k.assign(path);
    k += '\0';
    k += encoding;
    return k;
}

// A still-valid cached entry for key, or null (stale entries are dropped).
entry *fresh_entry(const config &cfg, cache *c, std::string_view key) {
    if (!c) return nullptr;
    entry *e = c->find(key);
    if (!e) return nullptr;
    uint64_t now = ctx.host->now_ms();
    if (now - e->checked_ms < cfg.cache.valid_ms) return e;
    struct stat st;
    int fd = open_regular(cfg, e->file_rel, st);
    if (fd >= 0) close(fd);
    if (fd < 0 || !same_file(*e, st)) {
        c->remove(e);
        return nullptr;
    }
    // A precompressed variant appearing or vanishing changes the answer (and Vary).
    if (cfg.precompressed && !e->encoding &&
        (variant_exists(cfg, e->file_rel, ".br") != e->has_br ||
         variant_exists(cfg, e->file_rel, ".gz") != e->has_gzip)) {
        c->remove(e);
        return nullptr;
    }
    e->checked_ms = now;
    return e;
}

int32_t handle(config &cfg, cache *c, const request &r) {
    std::string_view path = view(r.ri.path);
    bool ranged = r.ranged();

    // Hot path: a cached identity entry (and, when enabled, its cached variant).
    if (entry *e = fresh_entry(cfg, c, path)) {
        const char *enc = nullptr;
        if (cfg.precompressed && (e->has_br || e->has_gzip) && !ranged)
            enc = accepted_encoding(r.accept_encoding, e->has_br, e->has_gzip);
        if (!enc) return serve_entry(r, e);
        const std::string &vkey = variant_key(path, enc);
        if (entry *ve = fresh_entry(cfg, c, vkey)) return serve_entry(r, ve);
        std::string vrel = e->file_rel + (enc[0] == 'b' ? ".br" : ".gz");
        struct stat vst;
        int vfd = open_regular(cfg, vrel, vst);
        if (vfd >= 0) return serve_file(cfg, c, r, vkey, vrel, vfd, vst, e->content_type, enc, true);
        c->remove(e);  // the variant vanished: look again from scratch below
    }

    std::string rel = relative(path);
    int fd = open_beneath(cfg.root_fd, rel.c_str());
    if (fd < 0) {
        if (errno == EACCES) return respond_text(r, 403, "403 Forbidden\n");
        return respond_text(r, 404, "404 Not Found\n");
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return respond_text(r, 404, "404 Not Found\n");
    }
    std::string name = std::string(path);
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        if (path.back() != '/') {
            std::string loc = std::string(path) + "/";
            if (r.ri.query.len) loc += "?" + std::string(view(r.ri.query));
            ctx.host->header_set(r.ex, ATLAS_RESPONSE, slice("Location"), slice(loc));
            return respond_text(r, 301, "301 Moved Permanently\n");
        }
        fd = -1;
        for (const std::string &idx : cfg.index) {
            std::string irel = (rel == "." ? std::string() : rel) + idx;
            fd = open_regular(cfg, irel, st);
            if (fd >= 0) {
                rel = irel;
                name = idx;
                break;
            }
        }
        if (fd < 0) return respond_text(r, 403, "403 Forbidden\n");  // no index, and no listings
    } else if (!S_ISREG(st.st_mode)) {
        close(fd);
        return respond_text(r, 404, "404 Not Found\n");
    }
    std::string_view ctype = content_type(cfg, name);

    bool has_br = false, has_gzip = false;
    if (cfg.precompressed) {
        has_br = variant_exists(cfg, rel, ".br");
        has_gzip = variant_exists(cfg, rel, ".gz");
    }
    bool vary = has_br || has_gzip;
    const char *enc = vary && !ranged ? accepted_encoding(r.accept_encoding, has_br, has_gzip) : nullptr;

    // Cache the identity entry first: it records which variants exist.
    entry *ident = nullptr;
    bool fd_owned = false;  // the identity entry took the fd
    if (c && c->fits(uint64_t(st.st_size))) {
        ident = fill_entry(cfg, *c, std::string(path), rel, fd, st, ctype, nullptr, vary);
    } else if (c && c->enabled()) {
        ident = fd_entry(cfg, *c, std::string(path), rel, fd, st, ctype, nullptr, vary);
        fd_owned = true;
    }
    if (ident) {
        ident->has_br = has_br;
        ident->has_gzip = has_gzip;
    }
    if (enc) {
        std::string vrel = rel + (enc[0] == 'b' ? ".br" : ".gz");
        struct stat vst;
        int vfd = open_regular(cfg, vrel, vst);
        if (vfd >= 0) {
            if (!fd_owned) close(fd);
            return serve_file(cfg, c, r, variant_key(path, enc), vrel, vfd, vst, ctype, enc, true);
        }
    }
    if (ident) {
        if (!fd_owned) close(fd);
        return serve_entry(r, ident);
    }
    return serve_file(cfg, nullptr, r, std::string(path), rel, fd, st, ctype, nullptr, vary);
}

// ------------------------------------------------------------------ hooks

void *config_create(atlas_slice_t json, atlas_slice_t, atlas_error_t *err) {
    return atlas::module::guard_config(err, [&]() -> void * {
        return parse_config(view(json), view(ctx.host->config_dir()));
    });
}

void config_destroy(void *p) { delete static_cast<config *>(p); }

void *worker_init(void *p, atlas_worker_t *) {
    auto *cfg = static_cast<config *>(p);
    return cfg->cache.entries ? new cache(cfg->cache) : nullptr;
}

void worker_destroy(void *, void *state) { delete static_cast<cache *>(state); }

int32_t on_request(void *cfgp, void *state, atlas_exchange_t *ex, void **) {
    return atlas::module::guard(ctx, int32_t(ATLAS_ERROR), [&]() -> int32_t {
        auto *cfg = static_cast<config *>(cfgp);
        request r{ex, {}, false, {}, {}, {}, {}, {}};
        r.ri.struct_size = sizeof r.ri;
        ctx.host->exchange_request_info(ex, &r.ri);
        r.read_headers();
        std::string_view method = view(r.ri.method);
        r.get = method == "GET";
        if (!r.get && method != "HEAD") {
            ctx.host->header_set(ex, ATLAS_RESPONSE, slice("Allow"), slice("GET, HEAD"));
            return respond_text(r, 405, "405 Method Not Allowed\n");
        }
        return handle(*cfg, static_cast<cache *>(state), r);
    });
}

const atlas_http_handler_t handler = {
    sizeof(atlas_http_handler_t),
    config_create,
    config_destroy,
    worker_init,
    worker_destroy,
    on_request,
    nullptr,  // on_request_body: request bodies are read and dropped by the host
    nullptr,  // on_abort: nothing outlives the queued sends, which release themselves
    nullptr,  // request_destroy
};

const atlas_module_t descriptor = {
    ATLAS_MODULE_HEAD,
    "static",
    "0.2.0",
    "static files below a root directory",
    &handler,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

ATLAS_MODULE_ENTRY(ctx, descriptor)
