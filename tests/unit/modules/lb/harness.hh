// Loads the built mod_lb_*.so files (each exports its own atlas_module_entry, so they
// cannot share one executable) and drives them through their descriptor with a small
// test host: log, error_set, worker_index and header_get over a fake exchange.
#pragma once

#include <atlas/module.h>
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lbtest {

// Paths come from meson (-DMOD_LB_<NAME>="<build>/.../mod_lb_<name>.so").
inline const char *const lb_round_robin = MOD_LB_ROUND_ROBIN;
inline const char *const lb_weighted_round_robin = MOD_LB_WEIGHTED_ROUND_ROBIN;
inline const char *const lb_random = MOD_LB_RANDOM;
inline const char *const lb_least_connections = MOD_LB_LEAST_CONNECTIONS;
inline const char *const lb_p2c = MOD_LB_P2C;
inline const char *const lb_hash = MOD_LB_HASH;
inline const char *const all_policies[] = {
    lb_round_robin, lb_weighted_round_robin, lb_random, lb_least_connections, lb_p2c, lb_hash};

// Request headers of a fake exchange; the host's header_get reads them.
struct fake_exchange {
    std::vector<std::pair<std::string, std::string>> headers;
    atlas_exchange_t *handle() { return reinterpret_cast<atlas_exchange_t *>(this); }
};

// Messages the module logged through the test host.
std::vector<std::string> &logged();

// dlopens `path` once (never closed, like atlasd) and returns its descriptor.
const atlas_module_t *load(const char *path);

// Workers are fake handles; the test host's worker_index maps them back.
inline atlas_worker_t *worker(uint32_t index) { return reinterpret_cast<atlas_worker_t *>(uintptr_t(index) + 1); }

struct ep {
    std::string address;
    uint32_t weight = 1;
    bool usable = true;
};

// Endpoints "10.0.0.<i+1>:80" with the given weights.
std::vector<ep> endpoints(std::vector<uint32_t> weights);

// Bitmap with the given indices set, the way the host passes ctx->tried.
std::vector<uint8_t> tried(std::initializer_list<size_t> indices, size_t count = 64);

// One policy instance: config + worker state, destroyed in the right order.
class policy {
public:
    explicit policy(const char *module, const std::string &json = "{}", uint32_t worker_index = 0);
    ~policy();
    policy(const policy &) = delete;
    policy &operator=(const policy &) = delete;

    // Calls set_endpoints with slices that are overwritten right after the call, so a
    // module that kept them instead of copying would see garbage.
    void set(const std::vector<ep> &eps);

    int32_t pick(const uint8_t *tried_bits = nullptr, const uint32_t *inflight = nullptr,
                 std::string_view hash_key = {}, atlas_exchange_t *ex = nullptr);
    void take(uint32_t i) {
        if (lb->on_take) lb->on_take(state, i);
    }
    void release(uint32_t i) {
        if (lb->on_release) lb->on_release(state, i);
    }

    const atlas_module_t *desc;
    const atlas_lb_policy_t *lb;
    void *config = nullptr;
    void *state = nullptr;
};

// config_create on its own: returns the error message ("" when accepted).
std::string config_error(const char *module, const std::string &json, const std::string &key = "upstream.api.lb");

// Pearson chi-square statistic of counts against expected shares (weights).
double chi_square(const std::vector<uint64_t> &counts, const std::vector<uint32_t> &weights);

// Critical value of chi-square with 2 degrees of freedom at p = 0.001.
constexpr double chi2_df2_p001 = 13.816;

}  // namespace lbtest

namespace lbtest {

// Closed-loop load: one request arrives per tick and endpoint i holds it for
// latency[i] ticks. Load reaches the policy through ctx->inflight (host counts) or,
// when host_counts is false, through on_take/on_release. Returns picks per endpoint.
std::vector<uint64_t> simulate(policy &p, const std::vector<uint32_t> &latency, size_t requests, bool host_counts);

}  // namespace lbtest
