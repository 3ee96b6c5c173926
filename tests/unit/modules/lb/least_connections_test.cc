#include <cstdlib>
#include <vector>

#include "harness.hh"

using namespace lbtest;

TEST_CASE("least connections: the lowest inflight/weight wins (host counts)") {
    policy p(lb_least_connections);
    p.set(endpoints({1, 2}));
    uint32_t equal[] = {1, 1};
    CHECK(p.pick(nullptr, equal) == 1);  // 1/2 < 1/1
    uint32_t heavier[] = {1, 3};
    CHECK(p.pick(nullptr, heavier) == 0);  // 1/1 < 3/2
    uint32_t big[] = {1000000, 1999999};
    CHECK(p.pick(nullptr, big) == 1);  // exact integer comparison, no rounding
    p.set(endpoints({1, 1, 1}));
    uint32_t three[] = {3, 0, 2};
    for (int i = 0; i < 10; ++i) CHECK(p.pick(nullptr, three) == 1);
    auto t1 = tried({1});
    CHECK(p.pick(t1.data(), three) == 2);  // the least loaded untried one
    auto eps = endpoints({1, 1, 1});
    eps[1].usable = false;
    p.set(eps);
    CHECK(p.pick(nullptr, three) == 2);
}

TEST_CASE("least connections: ties go round robin so equal servers share the load") {
    policy p(lb_least_connections);
    p.set(endpoints({1, 1, 1}));
    uint32_t zero[] = {0, 0, 0};
    std::vector<int32_t> got;
    for (int i = 0; i < 6; ++i) got.push_back(p.pick(nullptr, zero));
    CHECK(got == std::vector<int32_t>{0, 1, 2, 0, 1, 2});
    uint32_t two_tied[] = {5, 1, 1};
    got.clear();
    for (int i = 0; i < 4; ++i) got.push_back(p.pick(nullptr, two_tied));
    CHECK(got == std::vector<int32_t>{1, 2, 1, 2});
}

TEST_CASE("least connections: without host counts it keeps its own through on_take/on_release") {
    policy p(lb_least_connections);
    p.set(endpoints({1, 1, 1}));
    for (uint32_t want : {0u, 1u, 2u}) {
        int32_t k = p.pick();
        CHECK(k == int32_t(want));
        p.take(uint32_t(k));
    }
    p.release(1);
    CHECK(p.pick() == 1);
    p.take(1);
    p.take(1);
    p.take(0);  // counts 2, 2, 1
    CHECK(p.pick() == 2);
    // A membership change keeps the counts by address: in reversed order 10.0.0.3
    // (count 1) is index 0 and still the least loaded.
    p.set({{"10.0.0.3:80", 1, true}, {"10.0.0.2:80", 1, true}, {"10.0.0.1:80", 1, true}});
    CHECK(p.pick() == 0);
    p.release(0);  // 10.0.0.3 -> 0
    p.release(0);  // saturates at 0, no wrap-around to 4 billion
    p.take(0);
    CHECK(p.pick() == 0);  // 1 vs 2 vs 2
    p.release(99);          // out of range: ignored
}

TEST_CASE("least connections: a slow backend gets fewer requests") {
    for (bool host_counts : {true, false}) {
        CAPTURE(host_counts);
        policy p(lb_least_connections);
        p.set(endpoints({1, 1, 1}));
        // Endpoint 2 holds each request ten times longer than the others.
        auto picks = simulate(p, {2, 2, 20}, 3000, host_counts);
        MESSAGE("picks ", picks[0], "/", picks[1], "/", picks[2]);
        CHECK(picks[2] < 3000 * 15 / 100);
        CHECK(picks[0] > 3000 * 40 / 100);
        CHECK(picks[1] > 3000 * 40 / 100);
        // The fast ones share evenly.
        CHECK(std::abs(int64_t(picks[0]) - int64_t(picks[1])) < 3000 * 5 / 100);
    }
}

TEST_CASE("least connections: with equal latency the shares follow the weights") {
    policy p(lb_least_connections);
    p.set(endpoints({3, 1}));
    auto picks = simulate(p, {8, 8}, 8000, true);
    MESSAGE("picks ", picks[0], "/", picks[1]);
    CHECK(picks[0] > 8000 * 72 / 100);
    CHECK(picks[0] < 8000 * 78 / 100);
}
