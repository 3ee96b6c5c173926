#include <vector>

#include "harness.hh"

using namespace lbtest;

namespace {
std::vector<int32_t> picks(policy &p, size_t n) {
    std::vector<int32_t> v;
    for (size_t i = 0; i < n; ++i) v.push_back(p.pick());
    return v;
}
}  // namespace

TEST_CASE("round robin: plain rotation, weights ignored") {
    policy p(lb_round_robin);
    p.set(endpoints({5, 1, 1}));
    CHECK(picks(p, 7) == std::vector<int32_t>{0, 1, 2, 0, 1, 2, 0});
}

TEST_CASE("round robin: unusable endpoints are skipped") {
    policy p(lb_round_robin);
    auto eps = endpoints({1, 1, 1, 1});
    eps[2].usable = false;
    p.set(eps);
    CHECK(picks(p, 6) == std::vector<int32_t>{0, 1, 3, 0, 1, 3});
}

TEST_CASE("round robin: tried endpoints are skipped for that pick only") {
    policy p(lb_round_robin);
    p.set(endpoints({1, 1, 1, 1}));
    CHECK(p.pick() == 0);
    auto t1 = tried({1});
    CHECK(p.pick(t1.data()) == 2);  // 1 was tried: the next one
    CHECK(p.pick() == 3);
    auto t03 = tried({0, 3});
    CHECK(p.pick(t03.data()) == 1);  // wraps past 0 (tried) to 1
    CHECK(p.pick() == 2);
    auto t_all_but_2 = tried({0, 1, 3});
    CHECK(p.pick(t_all_but_2.data()) == 2);
    CHECK(p.pick() == 3);
}

TEST_CASE("round robin: a health change keeps the rotation, a new membership restarts it") {
    policy p(lb_round_robin);
    auto eps = endpoints({1, 1, 1});
    p.set(eps);
    CHECK(picks(p, 2) == std::vector<int32_t>{0, 1});
    eps[0].usable = false;
    p.set(eps);
    CHECK(picks(p, 4) == std::vector<int32_t>{2, 1, 2, 1});
    eps[0].usable = true;
    p.set(eps);
    CHECK(picks(p, 3) == std::vector<int32_t>{2, 0, 1});
    p.set(endpoints({1, 1}));  // 10.0.0.3 left
    CHECK(picks(p, 3) == std::vector<int32_t>{0, 1, 0});
    p.set(endpoints({1, 1, 1, 1, 1}));
    CHECK(picks(p, 6) == std::vector<int32_t>{0, 1, 2, 3, 4, 0});
}

TEST_CASE("round robin: workers start at different offsets") {
    policy w0(lb_round_robin, "{}", 0), w1(lb_round_robin, "{}", 1), w4(lb_round_robin, "{}", 4);
    for (policy *p : {&w0, &w1, &w4}) p->set(endpoints({1, 1, 1}));
    CHECK(picks(w0, 3) == std::vector<int32_t>{0, 1, 2});
    CHECK(picks(w1, 3) == std::vector<int32_t>{1, 2, 0});
    CHECK(picks(w4, 3) == std::vector<int32_t>{1, 2, 0});
}
