// Every config shipped under configs/examples loads, and the seed examples translate
// as the seed documents describe. Runs from the project root (meson workdir).
#include <doctest/doctest.h>

#include <filesystem>

#include "helpers.hh"

using namespace atlas::config;
using atlas::config::test::errors_of;
using atlas::config::test::json_of;

namespace fs = std::filesystem;

namespace {

const fs::path examples = "configs/examples";

load_result load_example(const std::string &name) {
    auto r = load((examples / name / "atlas.toml").string());
    INFO(name << ":\n" << errors_of(r));
    REQUIRE(r.ok());
    return r;
}

std::string abs(const std::string &rel) { return fs::absolute(examples / rel).lexically_normal().string(); }

}  // namespace

TEST_CASE("every example loads, as a file and as a directory") {
    REQUIRE(fs::is_directory(examples));
    int count = 0;
    for (const auto &e : fs::directory_iterator(examples)) {
        if (!e.is_directory()) continue;
        CAPTURE(e.path().string());
        auto as_dir = load(e.path().string());
        CHECK_MESSAGE(as_dir.ok(), errors_of(as_dir));
        auto as_file = load((e.path() / "atlas.toml").string());
        CHECK_MESSAGE(as_file.ok(), errors_of(as_file));
        CHECK(as_dir.snap.effective_json == as_file.snap.effective_json);
        ++count;
    }
    CHECK(count >= 5);
}

TEST_CASE("example: reverse-proxy") {
    auto r = load_example("reverse-proxy");
    const auto &s = r.snap;
    CHECK(s.server.workers == 4);
    REQUIRE(s.listeners.size() == 1);
    CHECK(s.listeners[0].addresses == std::vector<std::string>{"127.0.0.1:8080"});
    CHECK(s.listeners[0].is_http);
    CHECK_FALSE(s.listeners[0].transport.has_value());
    REQUIRE(s.listeners[0].routes.size() == 1);
    CHECK(s.listeners[0].routes[0].handler.name == "proxy");
    CHECK(s.listeners[0].routes[0].handler.config_json == R"({"upstream":"default"})");
    REQUIRE(s.upstreams.size() == 1);
    CHECK(s.upstreams[0].lb.name == "lb_round_robin");
    REQUIRE(s.upstreams[0].servers.size() == 1);
    CHECK(s.upstreams[0].servers[0].address == "127.0.0.1:3000");
    CHECK(s.files == std::vector<std::string>{abs("reverse-proxy/atlas.toml")});
}

TEST_CASE("example: load-balancing") {
    auto r = load_example("load-balancing");
    const auto &up = r.snap.upstreams.at(0);
    CHECK(up.lb.name == "lb_weighted_round_robin");
    REQUIRE(up.servers.size() == 3);
    CHECK(up.servers[0].address == "127.0.0.1:3001");
    CHECK(up.servers[0].weight == 3);
    CHECK(up.servers[1].address == "127.0.0.1:3002");
    CHECK(up.servers[1].weight == 2);
    CHECK(up.servers[2].address == "127.0.0.1:3003");
    CHECK(up.servers[2].weight == 1);
    CHECK(r.snap.server.workers == 0);
}

TEST_CASE("example: static-files") {
    auto r = load_example("static-files");
    const auto &l = r.snap.listeners.at(0);
    CHECK(l.is_http);
    REQUIRE(l.routes.size() == 1);
    CHECK(l.routes[0].handler.name == "static");
    auto root = json_of(l.routes[0].handler.config_json)["root"].get<std::string>();
    CHECK(root == abs("static-files/public"));
    CHECK(fs::is_regular_file(fs::path(root) / "index.html"));
    CHECK(r.snap.upstreams.empty());
}

TEST_CASE("example: tls-termination") {
    auto r = load_example("tls-termination");
    const auto &l = r.snap.listeners.at(0);
    CHECK(l.addresses == std::vector<std::string>{"127.0.0.1:8443"});
    REQUIRE(l.transport.has_value());
    CHECK(l.transport->name == "tls");
    // The certificate files need not exist yet: mod_tls reads them at module load.
    CHECK(json_of(l.transport->config_json) ==
          nlohmann::json{{"cert", abs("tls-termination/certs/server.pem")}, {"key", abs("tls-termination/certs/server.key")}});
    CHECK(l.routes.at(0).handler.name == "proxy");
}

TEST_CASE("example: tcp-proxy") {
    auto r = load_example("tcp-proxy");
    const auto &l = r.snap.listeners.at(0);
    CHECK_FALSE(l.is_http);
    REQUIRE(l.stream.has_value());
    CHECK(l.stream->name == "tcp");
    CHECK(l.stream->config_json == R"({"upstream":"default"})");
    CHECK(l.routes.empty());
    CHECK(r.snap.upstreams.at(0).servers.at(0).address == "127.0.0.1:3000");
}

TEST_CASE("the shipped default configs/ directory loads") {
    auto r = load("configs");
    INFO(errors_of(r));
    REQUIRE(r.ok());
    REQUIRE(r.snap.listeners.size() >= 1);
    CHECK(r.snap.files.at(0) == fs::absolute("configs/atlas.toml").lexically_normal().string());
}
