#include <functional>
#include <vector>

#include "harness.hh"

using namespace lbtest;

namespace {

std::vector<uint64_t> sample(policy &p, size_t n, size_t count) {
    std::vector<uint64_t> c(n, 0);
    for (size_t i = 0; i < count; ++i) {
        int32_t k = p.pick();
        REQUIRE(k >= 0);
        REQUIRE(size_t(k) < n);
        ++c[size_t(k)];
    }
    return c;
}

}  // namespace

namespace lbtest {

// Shares of 60,000 picks against the weights, chi-square at p = 0.001. The PRNG is
// seeded from the clock, so a correct policy fails one sample 0.1% of the time: a second,
// independent sample must fail too (chance 1e-6) before the test does. A real bias of a
// percent or more fails both.
void check_shares(const char *module, const std::vector<uint32_t> &weights) {
    double chi2 = 0;
    for (int attempt = 0; attempt < 2; ++attempt) {
        policy p(module, "{}", uint32_t(attempt));
        p.set(endpoints(weights));
        auto counts = sample(p, weights.size(), 60000);
        chi2 = chi_square(counts, weights);
        MESSAGE(std::string(module), " attempt ", attempt, ": counts ", counts[0], "/", counts[1], "/", counts[2], " chi2 ", chi2);
        if (chi2 < chi2_df2_p001) break;
    }
    CHECK(chi2 < chi2_df2_p001);
}

}  // namespace lbtest

TEST_CASE("random: shares follow the weights (1:1:1 and 3:2:1, chi-square)") {
    check_shares(lb_random, {1, 1, 1});
    check_shares(lb_random, {3, 2, 1});
}

TEST_CASE("random: unusable and tried endpoints are never chosen") {
    policy p(lb_random);
    auto eps = endpoints({1, 1, 1, 1});
    eps[1].usable = false;
    p.set(eps);
    auto t0 = tried({0});
    std::vector<uint64_t> c(4, 0);
    for (int i = 0; i < 3000; ++i) ++c[size_t(p.pick(t0.data()))];
    CHECK(c[0] == 0);
    CHECK(c[1] == 0);
    CHECK(c[2] > 1300);
    CHECK(c[3] > 1300);
    auto t03 = tried({0, 3});
    for (int i = 0; i < 100; ++i) CHECK(p.pick(t03.data()) == 2);
}

TEST_CASE("random: workers draw different sequences") {
    policy a(lb_random, "{}", 0), b(lb_random, "{}", 1);
    a.set(endpoints({1, 1, 1, 1}));
    b.set(endpoints({1, 1, 1, 1}));
    std::vector<int32_t> sa, sb;
    for (int i = 0; i < 64; ++i) {
        sa.push_back(a.pick());
        sb.push_back(b.pick());
    }
    CHECK(sa != sb);  // equal by chance with probability 4^-64
}
