// Properties every policy shares: descriptor, config handling, -1 when nothing is
// usable, never an unusable or tried endpoint whatever the set does.
#include <random>
#include <string>

#include "harness.hh"

using namespace lbtest;

TEST_CASE("each module describes itself as an lb_policy named after its file") {
    const std::pair<const char *, const char *> names[] = {
        {lb_round_robin, "lb_round_robin"}, {lb_weighted_round_robin, "lb_weighted_round_robin"},
        {lb_random, "lb_random"},           {lb_least_connections, "lb_least_connections"},
        {lb_p2c, "lb_p2c"},                 {lb_hash, "lb_hash"}};
    for (auto [path, name] : names) {
        CAPTURE(path);
        const atlas_module_t *d = load(path);
        CHECK(d->magic == ATLAS_ABI_MAGIC);
        CHECK(d->abi_major == ATLAS_ABI_MAJOR);
        CHECK(d->struct_size == sizeof(atlas_module_t));
        CHECK(std::string(d->name) == name);
        CHECK(std::string(path).find(std::string("mod_") + name + ".so") != std::string::npos);
        CHECK(d->http_handler == nullptr);
        CHECK(d->http_filter == nullptr);
        CHECK(d->stream_handler == nullptr);
        CHECK(d->transport == nullptr);
        const atlas_lb_policy_t *lb = d->lb_policy;
        CHECK(lb->struct_size == sizeof(atlas_lb_policy_t));
        CHECK((lb->config_create != nullptr));
        CHECK((lb->config_destroy != nullptr));
        CHECK((lb->worker_init != nullptr));
        CHECK((lb->worker_destroy != nullptr));
        CHECK((lb->set_endpoints != nullptr));
        CHECK((lb->pick != nullptr));
        // Only the load-aware policies count requests.
        bool counting = path == lb_least_connections || path == lb_p2c;
        CHECK((lb->on_take != nullptr) == counting);
        CHECK((lb->on_release != nullptr) == counting);
    }
}

TEST_CASE("an empty table is accepted; unknown options, non-tables and bad JSON are refused naming the key") {
    for (const char *path : all_policies) {
        CAPTURE(path);
        CHECK(config_error(path, "{}") == "");
        CHECK(config_error(path, "") == "");
        CHECK(config_error(path, " {  } ") == "");
        std::string e = config_error(path, R"({"wieght": "3"})");
        CHECK(e.find("wieght: unknown option") == 0);  // relative: the host prefixes the place
        CHECK(e.find('\n') == std::string::npos);
        CHECK(config_error(path, "[1]") == "must be a table");
        CHECK(config_error(path, "{") == "the policy configuration is not valid JSON");
    }
    CHECK(config_error(lb_round_robin, R"({"key": "client_ip"})").find("(it takes none)") != std::string::npos);
    CHECK(config_error(lb_hash, R"({"seed": "1"})") == "seed: unknown option for lb_hash (expected key)");
}

TEST_CASE("every policy returns -1 when no endpoint is usable or all are tried") {
    for (const char *path : all_policies) {
        CAPTURE(path);
        policy p(path);
        CHECK(p.pick() == -1);  // before any set_endpoints
        p.set({});
        CHECK(p.pick() == -1);
        CHECK(p.lb->pick(p.state, nullptr) == -1);
        auto eps = endpoints({1, 2, 3});
        for (ep &e : eps) e.usable = false;
        p.set(eps);
        uint32_t inflight[3] = {0, 0, 0};
        for (int i = 0; i < 20; ++i) {
            CHECK(p.pick() == -1);
            CHECK(p.pick(nullptr, inflight, "10.1.1.1") == -1);
        }
        p.set(endpoints({1, 2, 3}));
        auto all = tried({0, 1, 2});
        for (int i = 0; i < 20; ++i) CHECK(p.pick(all.data(), inflight, "10.1.1.1") == -1);
        eps = endpoints({1, 2, 3});
        eps[1].usable = false;
        p.set(eps);
        auto rest = tried({0, 2});
        for (int i = 0; i < 20; ++i) CHECK(p.pick(rest.data()) == -1);
        CHECK(p.pick() >= 0);  // and back to normal without the tried set
    }
}

TEST_CASE("no policy ever returns an unusable, tried or out-of-range endpoint as the set changes") {
    std::mt19937_64 rng(12345);
    for (const char *path : all_policies) {
        CAPTURE(path);
        policy p(path, "{}", 3);
        for (int round = 0; round < 300; ++round) {
            size_t n = rng() % 12;  // the count changes at every set_endpoints, 0 included
            std::vector<ep> eps;
            for (size_t i = 0; i < n; ++i)
                eps.push_back({"192.168.0." + std::to_string(rng() % 16) + ":8080", uint32_t(1 + rng() % 5),
                               rng() % 4 != 0});
            p.set(eps);
            for (int k = 0; k < 30; ++k) {
                std::vector<uint8_t> bits(2, 0);
                bool use_tried = rng() % 2;
                for (size_t i = 0; i < n; ++i)
                    if (rng() % 3 == 0) bits[i / 8] |= uint8_t(1u << (i % 8));
                std::vector<uint32_t> inflight(n);
                for (uint32_t &c : inflight) c = uint32_t(rng() % 10);
                bool use_inflight = rng() % 2;
                bool any = false;
                for (size_t i = 0; i < n; ++i)
                    any = any || (eps[i].usable && !(use_tried && (bits[i / 8] >> (i % 8)) & 1));
                std::string key = "10.9.8." + std::to_string(rng() % 256);
                int32_t got = p.pick(use_tried ? bits.data() : nullptr, use_inflight ? inflight.data() : nullptr, key);
                // Counting policies also see takes and releases, some for stale indices.
                if (got >= 0) p.take(uint32_t(got));
                if (rng() % 3 == 0) p.release(uint32_t(rng() % 16));
                if (!any) {
                    CHECK(got == -1);
                    continue;
                }
                REQUIRE(got >= 0);
                REQUIRE(size_t(got) < n);
                CHECK(eps[size_t(got)].usable);
                if (use_tried) CHECK(((bits[size_t(got) / 8] >> (size_t(got) % 8)) & 1) == 0);
            }
        }
    }
}
