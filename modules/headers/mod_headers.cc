// mod_headers: an http_filter that edits request and response headers and can
// give every request an X-Request-ID.
//
// CONFIGURATION (the filter's TOML table; every key is optional)
//
//   filters = [{ module = "headers",
//                request  = { remove = ["X-C"], set = { "X-B" = "2" }, add = { "X-A" = "1" } },
//                response = { remove = ["X-Powered-By"], set = { "X-Frame-Options" = "DENY" },
//                             add = { "Link" = ["</a.css>; rel=preload", "</b.js>; rel=preload"] } },
//                request_id = "auto" }]
//
//   request, response   edits of that side, each a table of
//     remove = ["Name", ...]              remove every field of that name
//     set    = { "Name" = "value", ... }  replace all fields of that name by one
//     add    = { "Name" = "value" | ["v1", "v2", ...], ... }  append (an array adds
//                                         one field per value, in array order)
//     applied in this order: remove, then set, then add (each in declaration order).
//     Request edits happen before the handler (and later filters) see the request;
//     response edits just before the response head is written.
//   add, set, remove    at the top level: shorthand for response = { ... } (as in
//                       `filters = [{ module = "headers", add = { "X-Gateway" = "atlas" },
//                       remove = ["Server"] }]`). Cannot be combined with `response`.
//   request_id = "auto" | "off" (default "off")
//                       "auto": an incoming X-Request-ID of 1..200 visible ASCII
//                       characters is passed on; otherwise (absent or unfit) the
//                       field is replaced by a fresh id of 128 random bits as 32
//                       lowercase hex digits. Several incoming fields become one.
//                       The id is also set on the response. With request_id on,
//                       X-Request-ID may not be edited elsewhere in the table.
//                       Alias: request = { set = { "X-Request-ID" = "auto" } }
//                       (so the literal value "auto" cannot be set on the request).
//
// Refused (config_create fails with one line naming the key, e.g.
// `listener.web.route[0].filters[0]: response.add: value of "X-A" contains CR or LF`):
// unknown keys, wrong types, names that are not RFC 9110 tokens, values with CR, LF,
// NUL or other control characters (HTAB is fine) or leading/trailing whitespace, a
// name set twice in one `set` (case-insensitive); on the response side the framing
// fields Content-Length, Transfer-Encoding and Connection (they belong to atlasd),
// Date (atlasd writes it after the filters) and adding Server (atlasd's Server is
// among the headers filters see: set replaces it, remove drops it); on the request
// side Host, Content-Length and Transfer-Encoding (framing and routing were decided
// on them).
//
// Hot path: no allocation of our own (the host copies what header_add/set are given);
// the request id needs no per-exchange state: on_response_head reads it back from the
// request headers. Each worker has its own xoshiro256** generator seeded from getrandom.
#include <atlas/module.hpp>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include "config.hh"

namespace {

using namespace atlas::headers;
using atlas::module::slice;
using atlas::module::view;

atlas::module::context ctx;

constexpr std::string_view request_id_name = "X-Request-ID";

// ------------------------------------------------------------------ ids

// xoshiro256** (Blackman & Vigna), one per worker.
struct worker_state {
    uint64_t s[4];
};

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t next(worker_state &w) {
    uint64_t *s = w.s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t splitmix64(uint64_t &x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void seed(worker_state &w) {
    size_t got = 0;
    auto *p = reinterpret_cast<unsigned char *>(w.s);
    while (got < sizeof w.s) {
        ssize_t n = getrandom(p + got, sizeof w.s - got, 0);
        if (n > 0) {
            got += size_t(n);
        } else if (n < 0 && errno != EINTR) {
            break;
        }
    }
    if (got < sizeof w.s) {
        // No getrandom (very old kernel, seccomp): still distinct per worker and start.
        ctx.log(ATLAS_LOG_WARN, "getrandom failed; request ids are seeded from the clock");
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
        x ^= uint64_t(getpid()) << 32 ^ uint64_t(gettid()) ^ reinterpret_cast<uintptr_t>(&w);
        for (uint64_t &v : w.s) v ^= splitmix64(x);
    }
    if ((w.s[0] | w.s[1] | w.s[2] | w.s[3]) == 0) w.s[0] = 1;  // the one state xoshiro must avoid
}

// 128 random bits as 32 lowercase hex digits.
void make_id(worker_state &w, char out[32]) {
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; ++half) {
        uint64_t v = next(w);
        for (int i = 0; i < 16; ++i) out[half * 16 + i] = hex[(v >> (60 - 4 * i)) & 0xf];
    }
}

// ------------------------------------------------------------------ edits

int32_t apply(const edits &e, atlas_exchange_t *ex, atlas_header_side_t sd) {
    const atlas_host_api_t *h = ctx.host;
    for (const std::string &n : e.remove) h->header_remove(ex, sd, slice(n));
    for (const field &f : e.set) {
        int32_t rc = h->header_set(ex, sd, slice(f.name), slice(f.value));
        if (rc != ATLAS_OK) return rc;
    }
    for (const field &f : e.add) {
        int32_t rc = h->header_add(ex, sd, slice(f.name), slice(f.value));
        if (rc != ATLAS_OK) return rc;
    }
    return ATLAS_OK;
}

// Passes a fit incoming X-Request-ID on (as the only one), or sets a new one.
int32_t ensure_request_id(worker_state *w, atlas_exchange_t *ex) {
    const atlas_host_api_t *h = ctx.host;
    size_t count = 0;
    atlas_slice_t first{nullptr, 0};
    size_t n = h->header_count(ex, ATLAS_REQUEST);
    for (size_t i = 0; i < n; ++i) {
        atlas_slice_t name, value;
        if (!h->header_at(ex, ATLAS_REQUEST, i, &name, &value)) break;
        if (iequals(view(name), request_id_name) && count++ == 0) first = value;
    }
    bool fit = count > 0 && acceptable_request_id(view(first));
    if (fit && count == 1) return ATLAS_OK;
    char buf[200];
    size_t len;
    if (fit) {  // several fields: keep the first (copied: header_set drops the originals)
        len = first.len;
        std::memcpy(buf, first.ptr, len);
    } else {
        if (!w) return ATLAS_ERROR;  // worker_init could not allocate
        make_id(*w, buf);
        len = 32;
    }
    return h->header_set(ex, ATLAS_REQUEST, slice(request_id_name), {buf, len});
}

// ------------------------------------------------------------------ hooks

void *config_create(atlas_slice_t json, atlas_slice_t, atlas_error_t *err) noexcept {
    try {
        return parse_config(view(json));
    } catch (const std::exception &e) {
        ctx.host->error_set(err, slice(e.what()));
    } catch (...) {
        ctx.host->error_set(err, slice("mod_headers: cannot read the configuration"));
    }
    return nullptr;
}

void config_destroy(void *c) noexcept { delete static_cast<config *>(c); }

void *worker_init(void *cfg, atlas_worker_t *) noexcept {
    if (!static_cast<config *>(cfg)->request_id) return nullptr;
    auto *w = new (std::nothrow) worker_state{};
    if (!w) {
        ctx.log(ATLAS_LOG_ERROR, "out of memory for the request id generator");
        return nullptr;
    }
    seed(*w);
    return w;
}

void worker_destroy(void *, void *state) noexcept { delete static_cast<worker_state *>(state); }

int32_t on_request_head(void *cfg, void *state, atlas_exchange_t *ex, void **) noexcept {
    auto *c = static_cast<const config *>(cfg);
    int32_t rc = apply(c->request, ex, ATLAS_REQUEST);
    if (rc == ATLAS_OK && c->request_id) rc = ensure_request_id(static_cast<worker_state *>(state), ex);
    return rc == ATLAS_OK ? int32_t(ATLAS_CONTINUE) : int32_t(ATLAS_ERROR);
}

int32_t on_response_head(void *cfg, void *, atlas_exchange_t *ex, uint32_t *) noexcept {
    auto *c = static_cast<const config *>(cfg);
    int32_t rc = apply(c->response, ex, ATLAS_RESPONSE);
    if (rc == ATLAS_OK && c->request_id) {
        atlas_slice_t id;
        if (ctx.host->header_get(ex, ATLAS_REQUEST, slice(request_id_name), &id))
            rc = ctx.host->header_set(ex, ATLAS_RESPONSE, slice(request_id_name), id);
    }
    return rc == ATLAS_OK ? int32_t(ATLAS_CONTINUE) : int32_t(ATLAS_ERROR);
}

const atlas_http_filter_t filter = {
    sizeof(atlas_http_filter_t),
    config_create,
    config_destroy,
    worker_init,
    worker_destroy,
    on_request_head,
    on_response_head,
    nullptr,  // filter_destroy: no per-exchange state
};

const atlas_module_t descriptor = {
    ATLAS_MODULE_HEAD,
    "headers",
    "0.1.0",
    "edits request and response headers; X-Request-ID",
    nullptr,
    &filter,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

ATLAS_MODULE_ENTRY(ctx, descriptor)
