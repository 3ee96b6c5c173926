#include <cstdlib>
#include <vector>

#include "harness.hh"

using namespace lbtest;

namespace lbtest {
void check_shares(const char *module, const std::vector<uint32_t> &weights);  // random_test.cc
}

TEST_CASE("p2c: at equal load the shares follow the weights (1:1:1 and 3:2:1, chi-square)") {
    check_shares(lb_p2c, {1, 1, 1});
    check_shares(lb_p2c, {3, 2, 1});
}

TEST_CASE("p2c: of the two choices the lower inflight/weight wins") {
    policy p(lb_p2c);
    p.set(endpoints({1, 1}));
    uint32_t loaded0[] = {5, 0};
    for (int i = 0; i < 500; ++i) CHECK(p.pick(nullptr, loaded0) == 1);  // two candidates: both are drawn
    p.set(endpoints({1, 4}));
    uint32_t a[] = {1, 2};  // 1/1 vs 2/4
    for (int i = 0; i < 500; ++i) CHECK(p.pick(nullptr, a) == 1);
    uint32_t b[] = {1, 5};  // 1/1 vs 5/4
    for (int i = 0; i < 500; ++i) CHECK(p.pick(nullptr, b) == 0);
}

TEST_CASE("p2c: the most loaded of three is never chosen, the others share") {
    policy p(lb_p2c);
    p.set(endpoints({1, 1, 1}));
    uint32_t load[] = {100, 0, 0};
    std::vector<uint64_t> c(3, 0);
    for (int i = 0; i < 3000; ++i) ++c[size_t(p.pick(nullptr, load))];
    CHECK(c[0] == 0);
    CHECK(c[1] > 1300);
    CHECK(c[2] > 1300);
}

TEST_CASE("p2c: a single candidate is returned whatever its load") {
    policy p(lb_p2c);
    p.set(endpoints({1, 1, 1}));
    uint32_t load[] = {0, 0, 1000};
    auto t01 = tried({0, 1});
    for (int i = 0; i < 50; ++i) CHECK(p.pick(t01.data(), load) == 2);
    auto eps = endpoints({1, 1, 1});
    eps[0].usable = eps[1].usable = false;
    p.set(eps);
    for (int i = 0; i < 50; ++i) CHECK(p.pick(nullptr, load) == 2);
}

TEST_CASE("p2c: without host counts it keeps its own through on_take/on_release") {
    policy p(lb_p2c);
    p.set(endpoints({1, 1}));
    for (int i = 0; i < 10; ++i) p.take(0);
    for (int i = 0; i < 200; ++i) CHECK(p.pick() == 1);
    for (int i = 0; i < 10; ++i) p.release(0);
    p.take(1);
    for (int i = 0; i < 200; ++i) CHECK(p.pick() == 0);
}

TEST_CASE("p2c: a slow backend gets fewer requests") {
    for (bool host_counts : {true, false}) {
        CAPTURE(host_counts);
        policy p(lb_p2c);
        p.set(endpoints({1, 1, 1}));
        auto picks = simulate(p, {2, 2, 20}, 3000, host_counts);
        MESSAGE("picks ", picks[0], "/", picks[1], "/", picks[2]);
        CHECK(picks[2] < 3000 * 20 / 100);
        CHECK(std::abs(int64_t(picks[0]) - int64_t(picks[1])) < 3000 * 8 / 100);
    }
}
