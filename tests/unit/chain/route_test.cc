#include <doctest/doctest.h>

#include "chain/runtime.hh"

using namespace atlas::chain;

namespace {
route_rt route(std::string host, std::string prefix, std::vector<std::string> methods = {}) {
    route_rt r;
    if (host.size() > 1 && host[0] == '*') {
        r.host_wildcard = true;
        r.host = host.substr(1);
    } else {
        r.host = host;
    }
    r.path_prefix = prefix;
    r.methods = methods;
    return r;
}
// route_rt holds per-worker counters: moved in, never copied.
template <class... routes>
void set_routes(listener_rt &l, routes &&...r) {
    (l.routes.push_back(std::move(r)), ...);
}
int which(const listener_rt &l, const char *host, const char *path, const char *method = "GET") {
    const route_rt *r = match_route(l, host, path, method);
    return r ? int(r - l.routes.data()) : -1;
}
}  // namespace

TEST_CASE("longest prefix wins, then host specificity, then order") {
    listener_rt l;
    set_routes(l, route("", "/"), route("", "/api/"), route("api.example.com", "/api/"),
               route("*.example.com", "/api/"), route("", "/api/v2/"), route("", "/", {"POST"}));
    CHECK(which(l, "x.org", "/") == 0);
    CHECK(which(l, "x.org", "/api/a") == 1);
    CHECK(which(l, "api.example.com", "/api/a") == 2);
    CHECK(which(l, "www.example.com", "/api/a") == 3);
    CHECK(which(l, "example.com", "/api/a") == 1);  // the wildcard needs a label in front
    CHECK(which(l, "api.example.com", "/api/v2/x") == 4);
    CHECK(which(l, "x.org", "/apix") == 0);
}

TEST_CASE("methods restrict a route; nothing matching means 404") {
    listener_rt l;
    set_routes(l, route("", "/upload/", {"POST", "PUT"}), route("only.example", "/"));
    CHECK(which(l, "a", "/upload/x", "POST") == 0);
    CHECK(which(l, "a", "/upload/x", "GET") == -1);
    CHECK(which(l, "only.example", "/upload/x", "GET") == 1);
    CHECK(which(l, "other", "/", "GET") == -1);
}

TEST_CASE("header conditions: all must hold; more conditions rank higher at equal prefix and host") {
    using atlas::http::header_field;
    listener_rt l;
    set_routes(l, route("", "/"), route("", "/"), route("", "/"), route("", "/api/"));
    l.routes[1].headers = {{"X-Canary", "1"}};
    l.routes[2].headers = {{"x-canary", "1"}, {"X-Debug", "*"}};
    auto pick = [&](std::vector<header_field> hs, const char *path = "/") {
        const route_rt *r = match_route(l, "h", path, "GET", hs.data(), hs.size());
        return r ? int(r - l.routes.data()) : -1;
    };
    CHECK(pick({}) == 0);
    CHECK(pick({{"X-Canary", "1"}}) == 1);
    CHECK(pick({{"x-CANARY", "1"}}) == 1);             // names are case-insensitive
    CHECK(pick({{"X-Canary", "2"}}) == 0);             // values are exact
    CHECK(pick({{"X-Canary", "1 "}}) == 0);
    CHECK(pick({{"X-Canary", "1"}, {"X-Debug", ""}}) == 2);  // "*": present, any value
    CHECK(pick({{"X-Debug", "yes"}}) == 0);            // one condition of two is not enough
    CHECK(pick({{"X-Canary", "0"}, {"X-Canary", "1"}, {"X-Debug", "y"}}) == 2);  // any field of the name
    CHECK(pick({{"X-Canary", "1"}}, "/api/x") == 3);   // a longer prefix still wins
    CHECK(which(l, "h", "/") == 0);                    // no headers passed: conditions fail
}
