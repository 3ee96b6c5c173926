// Shared pieces of the mod_lb_* policies: endpoint copies, the pick context, the
// inflight/weight comparison, a PRNG, a string hash and the C ABI adapter that turns a
// small C++ policy class into an atlas_lb_policy_t with every hook noexcept.
#pragma once

#include <atlas/module.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace atlas::lb {

// Host table and descriptor of this .so (common.cc is linked into each module, so
// every module has its own).
extern atlas::module::context module_ctx;

// One endpoint as a policy keeps it: the host's slices die with set_endpoints.
struct endpoint {
    std::string address;
    uint32_t weight = 1;
    bool usable = false;
};

// Copies the host's array. The stride is the host's struct_size, so a newer host that
// appended fields to atlas_lb_endpoint_t is still read correctly. May throw bad_alloc.
std::vector<endpoint> copy_endpoints(const atlas_lb_endpoint_t *endpoints, size_t count);

// Same addresses in the same order: indices still name the same servers.
bool same_members(const std::vector<endpoint> &a, const std::vector<endpoint> &b) noexcept;

// Per-endpoint counters carried over by address when the membership changes, so
// requests still in flight keep counting against their server.
std::vector<uint32_t> remap_counts(const std::vector<endpoint> &old_eps, const std::vector<uint32_t> &old_counts,
                                   const std::vector<endpoint> &new_eps);

// What a pick reads from atlas_lb_context_t (fields checked against struct_size).
struct pick_context {
    std::string_view hash_key;
    const uint8_t *tried = nullptr;
    const uint32_t *inflight = nullptr;
    atlas_exchange_t *exchange = nullptr;

    bool was_tried(size_t i) const noexcept { return tried && ((tried[i >> 3] >> (i & 7)) & 1u); }
};

inline pick_context read_context(const atlas_lb_context_t *c) noexcept {
    pick_context p;
    if (!c) return p;
    if (ATLAS_HAS_FIELD(atlas_lb_context_t, c, hash_key) && c->hash_key.ptr)
        p.hash_key = {c->hash_key.ptr, c->hash_key.len};
    if (ATLAS_HAS_FIELD(atlas_lb_context_t, c, tried)) p.tried = c->tried;
    if (ATLAS_HAS_FIELD(atlas_lb_context_t, c, inflight)) p.inflight = c->inflight;
    if (ATLAS_HAS_FIELD(atlas_lb_context_t, c, exchange)) p.exchange = c->exchange;
    return p;
}

inline bool candidate(const endpoint &e, const pick_context &ctx, size_t i) noexcept {
    return e.usable && !ctx.was_tried(i);
}

// load(a) < load(b) where load = inflight / weight, compared without division or floats.
inline bool less_loaded(uint32_t inflight_a, uint32_t weight_a, uint32_t inflight_b, uint32_t weight_b) noexcept {
    return uint64_t(inflight_a) * weight_b < uint64_t(inflight_b) * weight_a;
}

// ---------------------------------------------------------------- hashing

// splitmix64 / murmur3-style finaliser: full avalanche of a 64-bit value.
inline uint64_t mix64(uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

// MurmurHash64A. Deterministic (fixed seed) so every worker and every restart maps a
// key to the same server.
inline uint64_t hash_bytes(std::string_view s, uint64_t seed = 0x5bd1e9955bd1e995ull) noexcept {
    const uint64_t m = 0xc6a4a7935bd1e995ull;
    const int r = 47;
    uint64_t h = seed ^ (uint64_t(s.size()) * m);
    const char *p = s.data();
    size_t blocks = s.size() / 8;
    for (size_t i = 0; i < blocks; ++i, p += 8) {
        uint64_t k;
        std::memcpy(&k, p, 8);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    size_t tail = s.size() & 7;
    if (tail) {
        for (size_t i = tail; i-- > 0;) h ^= uint64_t(uint8_t(p[i])) << (8 * i);
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

// ------------------------------------------------------------------ PRNG

// splitmix64 generator: one add and a finaliser per number, passes BigCrush, no locks
// needed because each worker owns one.
struct prng {
    uint64_t state;

    explicit prng(uint64_t seed) noexcept : state(seed) {}

    // Seeded from the worker index and the clock so workers and restarts differ.
    static prng for_worker(uint32_t worker_index) noexcept {
        uint64_t t = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
        uint64_t w = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
        return prng(mix64(t ^ mix64(w + worker_index)) ^ mix64(uint64_t(worker_index) + 1));
    }

    uint64_t next() noexcept { return mix64(state += 0x9e3779b97f4a7c15ull); }

    // Uniform in [0, bound) by multiply-shift (Lemire); bias < bound / 2^64, negligible.
    uint64_t below(uint64_t bound) noexcept {
        return uint64_t((static_cast<unsigned __int128>(next()) * bound) >> 64);
    }
};

// ------------------------------------------------------------ config

// Parses the module's JSON table. Policies here only take string options; `allowed`
// lists them. Returns false after filling `error` (one line naming the option relative
// to the policy's table: the host puts the table's place in front). Empty text is {}.
bool parse_options(atlas_slice_t json, std::string_view module_name, std::initializer_list<std::string_view> allowed,
                   std::vector<std::pair<std::string, std::string>> &out, std::string &error);

// Writes a config error through host->error_set (module.hpp's writer if absent).
void report_error(atlas_error_t *err, std::string_view message) noexcept;

inline uint32_t worker_index(atlas_worker_t *w) noexcept {
    const atlas_host_api_t *h = module_ctx.host;
    if (!w || !h || !h->worker_index) return 0;
    return h->worker_index(w);
}

// Policies whose config has no options.
struct no_options {};

// ----------------------------------------------------------- ABI adapter

// Turns a policy class P into the C hook table. P provides:
//   static constexpr const char *name = "lb_...";       // the module name, for messages
//   using config = ...;  // no_options, or a type with
//                        //   static config *make_config(atlas_slice_t json, std::string &error);  // may throw
//   P(const config &, uint32_t worker_index);
//   void set_endpoints(std::vector<endpoint> &&eps);   // may throw (allocation)
//   void clear() noexcept;                             // forget all endpoints
//   int32_t pick(const pick_context &) noexcept;        // must not allocate
//   optionally void take(uint32_t) noexcept; void release(uint32_t) noexcept;
template <class P>
struct adapter {
    using config = typename P::config;

    static void *config_create(atlas_slice_t json, atlas_slice_t key, atlas_error_t *err) noexcept {
        (void)key;  // messages are relative to the policy's table; the host adds its place
        try {
            std::string why;
            config *c = nullptr;
            if constexpr (std::is_same_v<config, no_options>) {
                std::vector<std::pair<std::string, std::string>> opts;
                if (parse_options(json, P::name, {}, opts, why)) c = new config{};
            } else {
                c = P::make_config(json, why);
            }
            if (!c) report_error(err, why);
            return c;
        } catch (const std::exception &e) {
            report_error(err, e.what());
        } catch (...) {
            report_error(err, "cannot read the policy configuration");
        }
        return nullptr;
    }

    static void config_destroy(void *c) noexcept { delete static_cast<config *>(c); }

    static void *worker_init(void *c, atlas_worker_t *w) noexcept {
        if (!c) return nullptr;
        return atlas::module::guard(module_ctx, static_cast<void *>(nullptr), [&]() -> void * {
            return new P(*static_cast<const config *>(c), worker_index(w));
        });
    }

    static void worker_destroy(void *, void *state) noexcept { delete static_cast<P *>(state); }

    static void set_endpoints(void *state, const atlas_lb_endpoint_t *eps, size_t count) noexcept {
        if (!state) return;
        P *p = static_cast<P *>(state);
        try {
            p->set_endpoints(copy_endpoints(eps, count));
            return;
        } catch (...) {
        }
        // Stale indices would pick the wrong servers: better pick none until the next update.
        p->clear();
        module_ctx.log(ATLAS_LOG_ERROR, "set_endpoints failed (out of memory): no endpoint until the next update");
    }

    static int32_t pick(void *state, const atlas_lb_context_t *ctx) noexcept {
        if (!state) return -1;
        return static_cast<P *>(state)->pick(read_context(ctx));
    }

    static void on_take(void *state, uint32_t index) noexcept {
        if constexpr (requires(P &p) { p.take(0u); })
            if (state) static_cast<P *>(state)->take(index);
    }

    static void on_release(void *state, uint32_t index) noexcept {
        if constexpr (requires(P &p) { p.release(0u); })
            if (state) static_cast<P *>(state)->release(index);
    }

    static constexpr bool counts = requires(P &p) { p.take(0u); };

    static constexpr atlas_lb_policy_t table = {
        sizeof(atlas_lb_policy_t),
        config_create,
        config_destroy,
        worker_init,
        worker_destroy,
        set_endpoints,
        pick,
        counts ? on_take : nullptr,  // only counting policies want to hear about requests
        counts ? on_release : nullptr,
    };
};

// The descriptor and the one exported entry of a policy module built from class P
// (a name in atlas::lb's anonymous namespace): ATLAS_LB_MODULE(round_robin, "...").
#define ATLAS_LB_MODULE(P, description)                                                           \
    namespace atlas::lb {                                                                         \
    namespace {                                                                                   \
    const atlas_module_t descriptor = {ATLAS_MODULE_HEAD, P::name,  "0.1.0",  description, nullptr, \
                                       nullptr,           nullptr,  nullptr,  &adapter<P>::table};  \
    }                                                                                             \
    }                                                                                             \
    ATLAS_MODULE_ENTRY(atlas::lb::module_ctx, atlas::lb::descriptor)

// The endpoints of a load-aware policy with the in-flight counts it keeps itself (this
// worker's requests, from on_take/on_release), used when the host gives no ctx->inflight.
// Counts follow their endpoint by address across membership changes.
class counted_endpoints {
public:
    std::vector<endpoint> eps;

    void set(std::vector<endpoint> &&next) {
        std::vector<uint32_t> counts = remap_counts(eps, counts_, next);
        eps = std::move(next);
        counts_ = std::move(counts);
    }
    void clear() noexcept {
        eps.clear();
        counts_.clear();
    }
    void take(uint32_t i) noexcept {
        if (i < counts_.size()) ++counts_[i];
    }
    void release(uint32_t i) noexcept {
        if (i < counts_.size() && counts_[i]) --counts_[i];
    }
    // In-flight requests per endpoint: all workers' when the host counts, else ours.
    const uint32_t *load(const pick_context &ctx) const noexcept { return ctx.inflight ? ctx.inflight : counts_.data(); }

private:
    std::vector<uint32_t> counts_;
};

}  // namespace atlas::lb
