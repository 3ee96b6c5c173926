#include "harness.hh"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>

namespace lbtest {

namespace {

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

void h_log(const atlas_module_t *, atlas_log_level_t, atlas_slice_t message) {
    logged().emplace_back(message.ptr, message.len);
}

void h_error_set(atlas_error_t *err, atlas_slice_t message) {
    if (!err) return;
    size_t n = std::min(message.len, sizeof err->message - 1);
    std::memcpy(err->message, message.ptr, n);
    err->message[n] = 0;
    err->code = ATLAS_ERROR;
}

uint32_t h_worker_index(const atlas_worker_t *w) { return uint32_t(reinterpret_cast<uintptr_t>(w) - 1); }

bool h_header_get(atlas_exchange_t *ex, atlas_header_side_t side, atlas_slice_t name, atlas_slice_t *value) {
    if (side != ATLAS_REQUEST) return false;
    auto *fx = reinterpret_cast<fake_exchange *>(ex);
    for (auto &[n, v] : fx->headers)
        if (iequal(n, {name.ptr, name.len})) {
            *value = {v.data(), v.size()};
            return true;
        }
    return false;
}

const atlas_host_api_t *test_host() {
    static atlas_host_api_t host = [] {
        atlas_host_api_t h{};
        h.struct_size = sizeof h;
        h.abi_major = ATLAS_ABI_MAJOR;
        h.abi_minor = ATLAS_ABI_MINOR;
        h.host_version = {"test", 4};
        h.log = h_log;
        h.worker_index = h_worker_index;
        h.header_get = h_header_get;
        h.error_set = h_error_set;
        return h;
    }();
    return &host;
}

}  // namespace

std::vector<std::string> &logged() {
    static std::vector<std::string> v;
    return v;
}

const atlas_module_t *load(const char *path) {
    static std::map<std::string, const atlas_module_t *> loaded;
    if (auto it = loaded.find(path); it != loaded.end()) return it->second;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    INFO("dlopen ", path, ": ", (h ? "" : dlerror()));
    REQUIRE(h);
    auto entry = reinterpret_cast<atlas_module_entry_fn>(dlsym(h, ATLAS_MODULE_ENTRY_SYMBOL));
    REQUIRE((entry != nullptr));
    const atlas_module_t *d = entry(test_host());
    REQUIRE(d);
    REQUIRE(d->lb_policy);
    loaded[path] = d;
    return d;
}

std::vector<ep> endpoints(std::vector<uint32_t> weights) {
    std::vector<ep> v;
    for (size_t i = 0; i < weights.size(); ++i) v.push_back({"10.0.0." + std::to_string(i + 1) + ":80", weights[i], true});
    return v;
}

std::vector<uint8_t> tried(std::initializer_list<size_t> indices, size_t count) {
    std::vector<uint8_t> bits((count + 7) / 8, 0);
    for (size_t i : indices) bits[i / 8] |= uint8_t(1u << (i % 8));
    return bits;
}

policy::policy(const char *module, const std::string &json, uint32_t worker_index) {
    desc = load(module);
    lb = desc->lb_policy;
    atlas_error_t err{};
    err.struct_size = sizeof err;
    std::string key = "upstream.test.lb";
    config = lb->config_create({json.data(), json.size()}, {key.data(), key.size()}, &err);
    INFO("config_create(", json, "): ", err.message);
    REQUIRE(config);
    state = lb->worker_init(config, worker(worker_index));
    REQUIRE(state);
}

policy::~policy() {
    lb->worker_destroy(config, state);
    lb->config_destroy(config);
}

void policy::set(const std::vector<ep> &eps) {
    std::vector<std::string> addresses;
    for (const ep &e : eps) addresses.push_back(e.address);
    std::vector<atlas_lb_endpoint_t> arr;
    for (size_t i = 0; i < eps.size(); ++i)
        arr.push_back({sizeof(atlas_lb_endpoint_t), {addresses[i].data(), addresses[i].size()}, eps[i].weight,
                       eps[i].usable});
    lb->set_endpoints(state, arr.data(), arr.size());
    for (std::string &a : addresses) std::fill(a.begin(), a.end(), '#');  // the slices are dead now
}

int32_t policy::pick(const uint8_t *tried_bits, const uint32_t *inflight, std::string_view hash_key,
                     atlas_exchange_t *ex) {
    atlas_lb_context_t ctx{};
    ctx.struct_size = sizeof ctx;
    ctx.hash_key = {hash_key.data(), hash_key.size()};
    ctx.tried = tried_bits;
    ctx.inflight = inflight;
    ctx.exchange = ex;
    return lb->pick(state, &ctx);
}

std::string config_error(const char *module, const std::string &json, const std::string &key) {
    const atlas_lb_policy_t *lb = load(module)->lb_policy;
    atlas_error_t err{};
    err.struct_size = sizeof err;
    void *c = lb->config_create({json.data(), json.size()}, {key.data(), key.size()}, &err);
    if (c) {
        lb->config_destroy(c);
        return "";
    }
    return err.message[0] ? err.message : "(refused without a message)";
}

double chi_square(const std::vector<uint64_t> &counts, const std::vector<uint32_t> &weights) {
    uint64_t n = 0, wsum = 0;
    for (uint64_t c : counts) n += c;
    for (uint32_t w : weights) wsum += w;
    double chi2 = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
        double expected = double(n) * weights[i] / double(wsum);
        double d = double(counts[i]) - expected;
        chi2 += d * d / expected;
    }
    return chi2;
}

}  // namespace lbtest

namespace lbtest {

std::vector<uint64_t> simulate(policy &p, const std::vector<uint32_t> &latency, size_t requests, bool host_counts) {
    size_t n = latency.size();
    uint32_t horizon = 1;
    for (uint32_t l : latency) horizon = std::max(horizon, l + 1);
    std::vector<std::vector<uint32_t>> finishing(horizon);  // ring of completions by tick
    std::vector<uint32_t> inflight(n, 0);
    std::vector<uint64_t> picks(n, 0);
    for (size_t t = 0; t < requests; ++t) {
        for (uint32_t i : finishing[t % horizon]) {
            --inflight[i];
            if (!host_counts) p.release(i);
        }
        finishing[t % horizon].clear();
        int32_t i = p.pick(nullptr, host_counts ? inflight.data() : nullptr);
        REQUIRE(i >= 0);
        REQUIRE(size_t(i) < n);
        ++picks[size_t(i)];
        ++inflight[size_t(i)];
        if (!host_counts) p.take(uint32_t(i));
        finishing[(t + latency[size_t(i)]) % horizon].push_back(uint32_t(i));
    }
    return picks;
}

}  // namespace lbtest
