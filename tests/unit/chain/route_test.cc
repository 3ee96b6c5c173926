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
int which(const listener_rt &l, const char *host, const char *path, const char *method = "GET") {
    const route_rt *r = match_route(l, host, path, method);
    return r ? int(r - l.routes.data()) : -1;
}
}  // namespace

TEST_CASE("longest prefix wins, then host specificity, then order") {
    listener_rt l;
    l.routes = {route("", "/"), route("", "/api/"), route("api.example.com", "/api/"),
                route("*.example.com", "/api/"), route("", "/api/v2/"), route("", "/", {"POST"})};
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
    l.routes = {route("", "/upload/", {"POST", "PUT"}), route("only.example", "/")};
    CHECK(which(l, "a", "/upload/x", "POST") == 0);
    CHECK(which(l, "a", "/upload/x", "GET") == -1);
    CHECK(which(l, "only.example", "/upload/x", "GET") == 1);
    CHECK(which(l, "other", "/", "GET") == -1);
}
