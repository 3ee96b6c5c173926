#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "harness.hh"

using namespace lbtest;

namespace {

std::string key_of(int i) { return "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256); }

// Address each of `keys` client keys maps to.
std::vector<std::string> mapping(policy &p, const std::vector<ep> &eps, int keys) {
    std::vector<std::string> out;
    for (int i = 0; i < keys; ++i) {
        int32_t k = p.pick(nullptr, nullptr, key_of(i));
        REQUIRE(k >= 0);
        out.push_back(eps[size_t(k)].address);
    }
    return out;
}

double share(const std::vector<std::string> &m, const std::string &address) {
    return double(std::count(m.begin(), m.end(), address)) / double(m.size());
}

}  // namespace

TEST_CASE("hash: the same key always reaches the same endpoint, on every worker") {
    policy w0(lb_hash), w7(lb_hash, "{}", 7);
    auto eps = endpoints({1, 1, 1, 1, 1});
    w0.set(eps);
    w7.set(eps);
    for (int i = 0; i < 200; ++i) {
        int32_t first = w0.pick(nullptr, nullptr, key_of(i));
        for (int r = 0; r < 5; ++r) CHECK(w0.pick(nullptr, nullptr, key_of(i)) == first);
        CHECK(w7.pick(nullptr, nullptr, key_of(i)) == first);
    }
}

TEST_CASE("hash: the client port is ignored, IPv6 in brackets too") {
    policy p(lb_hash);
    p.set(endpoints({1, 1, 1, 1, 1, 1, 1, 1}));
    for (int i = 0; i < 100; ++i) {
        std::string ip = key_of(i);
        int32_t want = p.pick(nullptr, nullptr, ip);
        CHECK(p.pick(nullptr, nullptr, ip + ":1234") == want);
        CHECK(p.pick(nullptr, nullptr, ip + ":65000") == want);
        std::string v6 = "2001:db8::" + std::to_string(i);
        CHECK(p.pick(nullptr, nullptr, "[" + v6 + "]:443") == p.pick(nullptr, nullptr, v6));
    }
}

TEST_CASE("hash: removing one of 5 servers moves only its keys (~20%); adding it back restores the mapping") {
    const int keys = 10000;
    policy p(lb_hash);
    auto eps = endpoints({1, 1, 1, 1, 1});
    p.set(eps);
    auto before = mapping(p, eps, keys);
    for (const ep &e : eps) {
        CAPTURE(e.address);
        CHECK(std::abs(share(before, e.address) - 0.2) < 0.03);
    }
    const std::string gone = eps[2].address;

    SUBCASE("marked unusable") {
        auto down = eps;
        down[2].usable = false;
        p.set(down);
    }
    SUBCASE("left out of set_endpoints (indices shift)") {
        auto fewer = eps;
        fewer.erase(fewer.begin() + 2);
        p.set(fewer);
        eps = fewer;
    }
    auto after = mapping(p, eps, keys);
    int moved = 0;
    for (int i = 0; i < keys; ++i) {
        CHECK(after[size_t(i)] != gone);
        if (before[size_t(i)] != gone) {
            CHECK(after[size_t(i)] == before[size_t(i)]);  // only the removed server's keys move
        } else {
            ++moved;
        }
    }
    MESSAGE("moved ", moved, " of ", keys);
    CHECK(std::abs(double(moved) / keys - 0.20) < 0.05);

    auto all = endpoints({1, 1, 1, 1, 1});
    p.set(all);
    CHECK(mapping(p, all, keys) == before);
}

TEST_CASE("hash: adding a sixth server takes ~1/6 of the keys, each from its previous owner") {
    const int keys = 10000;
    policy p(lb_hash);
    auto five = endpoints({1, 1, 1, 1, 1});
    p.set(five);
    auto before = mapping(p, five, keys);
    auto six = endpoints({1, 1, 1, 1, 1, 1});
    p.set(six);
    auto after = mapping(p, six, keys);
    int moved = 0;
    for (int i = 0; i < keys; ++i) {
        if (after[size_t(i)] == before[size_t(i)]) continue;
        CHECK(after[size_t(i)] == six[5].address);  // a key only ever moves to the newcomer
        ++moved;
    }
    CHECK(std::abs(double(moved) / keys - 1.0 / 6) < 0.03);
}

TEST_CASE("hash: weights skew the shares") {
    const int keys = 20000;
    policy p(lb_hash);
    auto eps = endpoints({1, 1, 1, 1, 4});
    p.set(eps);
    auto m = mapping(p, eps, keys);
    CHECK(std::abs(share(m, eps[4].address) - 0.5) < 0.03);
    for (int i = 0; i < 4; ++i) CHECK(std::abs(share(m, eps[size_t(i)].address) - 0.125) < 0.02);
    // Still minimal movement with weights: dropping a weight-1 server moves only its keys.
    auto down = eps;
    down[0].usable = false;
    p.set(down);
    auto after = mapping(p, eps, keys);
    for (int i = 0; i < keys; ++i)
        if (m[size_t(i)] != eps[0].address) CHECK(after[size_t(i)] == m[size_t(i)]);
}

TEST_CASE("hash: a tried endpoint sends the key to its next choice, the one it gets when that server is down") {
    policy p(lb_hash);
    auto eps = endpoints({1, 2, 1, 3, 1});
    p.set(eps);
    for (int i = 0; i < 300; ++i) {
        std::string k = key_of(i);
        int32_t first = p.pick(nullptr, nullptr, k);
        auto t = tried({size_t(first)});
        int32_t second = p.pick(t.data(), nullptr, k);
        CHECK(second != first);
        auto down = eps;
        down[size_t(first)].usable = false;
        p.set(down);
        CHECK(p.pick(nullptr, nullptr, k) == second);
        p.set(eps);
    }
}

TEST_CASE("hash: header key, falling back to the client address") {
    policy h(lb_hash, R"({"key": "header:X-User"})");
    policy ip(lb_hash, R"({"key": "client_ip"})");
    auto eps = endpoints({1, 1, 1, 1, 1, 1, 1, 1});
    h.set(eps);
    ip.set(eps);
    fake_exchange ex;
    ex.headers = {{"Host", "a"}, {"x-user", "alice"}};  // name matched case-insensitively by the host
    int32_t alice = h.pick(nullptr, nullptr, "10.0.0.1", ex.handle());
    for (int i = 0; i < 50; ++i) CHECK(h.pick(nullptr, nullptr, key_of(i), ex.handle()) == alice);
    // The header value is the key: same as the client_ip policy fed "alice".
    CHECK(alice == ip.pick(nullptr, nullptr, "alice"));
    fake_exchange none;
    none.headers = {{"Host", "a"}};
    fake_exchange empty;
    empty.headers = {{"X-User", ""}};
    for (int i = 0; i < 50; ++i) {
        int32_t want = ip.pick(nullptr, nullptr, key_of(i));
        CHECK(h.pick(nullptr, nullptr, key_of(i), none.handle()) == want);
        CHECK(h.pick(nullptr, nullptr, key_of(i), empty.handle()) == want);
        CHECK(h.pick(nullptr, nullptr, key_of(i), nullptr) == want);  // L4: no exchange
    }
}

TEST_CASE("hash: cookie key parsed from the Cookie header") {
    policy c(lb_hash, R"({"key": "cookie:sid"})");
    policy ip(lb_hash);
    auto eps = endpoints({1, 1, 1, 1, 1, 1, 1, 1});
    c.set(eps);
    ip.set(eps);
    for (int i = 0; i < 50; ++i) {
        std::string sid = "s" + std::to_string(i * 7919);
        int32_t want = ip.pick(nullptr, nullptr, sid);
        for (std::string cookie : {"sid=" + sid, "a=1; sid=" + sid + "; b=2", "xsid=nope; sid=" + sid,
                                   "a=1;sid=\"" + sid + "\"", "  sid = " + sid + " ;b=2"}) {
            CAPTURE(cookie);
            fake_exchange ex;
            ex.headers = {{"cookie", cookie}};
            CHECK(c.pick(nullptr, nullptr, "10.0.0.1", ex.handle()) == want);
        }
        // Absent or empty: the client address decides.
        int32_t by_ip = ip.pick(nullptr, nullptr, key_of(i));
        for (std::string cookie : {std::string("other=1"), std::string("sid="), "sidx=" + sid, std::string()}) {
            CAPTURE(cookie);
            fake_exchange ex;
            ex.headers = {{"Cookie", cookie}};
            CHECK(c.pick(nullptr, nullptr, key_of(i), ex.handle()) == by_ip);
        }
        fake_exchange no_cookie;
        CHECK(c.pick(nullptr, nullptr, key_of(i), no_cookie.handle()) == by_ip);
    }
}

TEST_CASE("hash: config errors name the key") {
    CHECK(config_error(lb_hash, R"({"key": "client_ip"})") == "");
    CHECK(config_error(lb_hash, R"({"key": "header:X-Session-Id"})") == "");
    CHECK(config_error(lb_hash, R"({"key": "cookie:sid"})") == "");
    const std::string expected = R"(key: expected "client_ip", "header:<name>" or "cookie:<name>", got )";
    CHECK(config_error(lb_hash, R"({"key": "x"})") == expected + "\"x\"");
    CHECK(config_error(lb_hash, R"({"key": "header:"})") == expected + "\"header:\"");
    CHECK(config_error(lb_hash, R"({"key": "cookie:"})") == expected + "\"cookie:\"");
    CHECK(config_error(lb_hash, R"({"key": "header:bad name"})") == expected + "\"header:bad name\"");
    CHECK(config_error(lb_hash, R"({"key": "Client_IP"})") == expected + "\"Client_IP\"");
    CHECK(config_error(lb_hash, R"({"key": 1})") == "key: must be a string");
    // Relative to the policy's table whatever its place: the host puts the place in front.
    CHECK(config_error(lb_hash, R"({"key": "x"})", "upstream.web.lb") == expected + "\"x\"");
}
