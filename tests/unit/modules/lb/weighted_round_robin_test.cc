#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "harness.hh"

using namespace lbtest;

namespace {
std::string sequence(policy &p, size_t n, const uint8_t *tried_bits = nullptr) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        int32_t k = p.pick(tried_bits);
        s += k < 0 ? '-' : char('a' + k);
    }
    return s;
}
}  // namespace

TEST_CASE("smooth weighted round robin: 3:2:1 gives exactly 3/2/1 in every window of 6, no bursts") {
    policy p(lb_weighted_round_robin);
    p.set(endpoints({3, 2, 1}));
    std::string s = sequence(p, 600);
    CHECK(s.substr(0, 6) == "abacba");
    for (size_t start = 0; start + 6 <= s.size(); ++start) {  // every window, not just aligned ones
        std::string w = s.substr(start, 6);
        CAPTURE(start);
        CAPTURE(w);
        CHECK(std::count(w.begin(), w.end(), 'a') == 3);
        CHECK(std::count(w.begin(), w.end(), 'b') == 2);
        CHECK(std::count(w.begin(), w.end(), 'c') == 1);
    }
    for (size_t i = 0; i + 3 <= s.size(); ++i) {
        CAPTURE(i);
        CHECK_FALSE((s[i] == s[i + 1] && s[i + 1] == s[i + 2]));
    }
}

TEST_CASE("smooth weighted round robin: the nginx sequence for 5:1:1") {
    policy p(lb_weighted_round_robin);
    p.set(endpoints({5, 1, 1}));
    CHECK(sequence(p, 14) == "aabacaaaabacaa");
}

TEST_CASE("smooth weighted round robin: unusable endpoints are skipped and the rest keep their ratio") {
    policy p(lb_weighted_round_robin);
    auto eps = endpoints({3, 2, 1});
    eps[1].usable = false;
    p.set(eps);
    std::string s = sequence(p, 400);
    CHECK(s.find('b') == std::string::npos);
    for (size_t start = 0; start + 4 <= s.size(); ++start) {
        std::string w = s.substr(start, 4);
        CAPTURE(w);
        CHECK(std::count(w.begin(), w.end(), 'a') == 3);
        CHECK(std::count(w.begin(), w.end(), 'c') == 1);
    }
}

TEST_CASE("smooth weighted round robin: a tried endpoint is skipped for that pick") {
    policy p(lb_weighted_round_robin);
    p.set(endpoints({3, 2, 1}));
    auto ta = tried({0});
    auto tb = tried({1});
    CHECK(sequence(p, 1) == "a");
    CHECK(sequence(p, 1, ta.data()) == "b");
    CHECK(sequence(p, 1, tb.data()) == "c");  // a: 0, c: 3
    std::map<char, int> counts;
    for (char c : sequence(p, 6000)) ++counts[c];
    // Retries disturb a cycle, but the long-run shares stay at the weights.
    CHECK(std::abs(counts['a'] - 3000) <= 3);
    CHECK(std::abs(counts['b'] - 2000) <= 3);
    CHECK(std::abs(counts['c'] - 1000) <= 3);
}

TEST_CASE("smooth weighted round robin: a changed set starts a fresh cycle") {
    policy p(lb_weighted_round_robin);
    p.set(endpoints({3, 2, 1}));
    CHECK(sequence(p, 2) == "ab");
    p.set(endpoints({3, 2, 1}));  // identical: the cycle goes on
    CHECK(sequence(p, 4) == "acba");
    CHECK(sequence(p, 2) == "ab");
    p.set(endpoints({1, 2, 3}));  // weights changed: fresh start
    CHECK(sequence(p, 6) == "cbacbc");
    p.set(endpoints({2, 1}));  // fewer endpoints: still sane
    CHECK(sequence(p, 6) == "abaaba");
    p.set(endpoints({1, 1, 1, 1}));  // more
    CHECK(sequence(p, 8) == "abcdabcd");
}
