// Directory loading: atlas.toml + conf.d/*.toml in name order, merge rules, file errors.
#include <doctest/doctest.h>

#include "helpers.hh"

using namespace atlas::config;
using atlas::config::test::errors_of;
using atlas::config::test::has_error;
using atlas::config::test::temp_dir;

namespace {

const char *base = R"([server]
workers = 2

[upstream.api]
servers = ["127.0.0.1:3001"]

[[listener]]
name = "web"
listen = "127.0.0.1:8080"
  [[listener.route]]
  handler = { module = "proxy", upstream = "api" }
)";

}  // namespace

TEST_CASE("directory: atlas.toml alone, no conf.d") {
    temp_dir d;
    d.write("atlas.toml", base);
    auto r = load(d.str());
    INFO(errors_of(r));
    REQUIRE(r.ok());
    CHECK(r.snap.server.workers == 2);
    REQUIRE(r.snap.files.size() == 1);
    CHECK(r.snap.files[0] == (d.path() / "atlas.toml").string());
}

TEST_CASE("directory: tables merge, arrays append, conf.d in name order") {
    temp_dir d;
    d.write("atlas.toml", base);
    // 20 sorts after 10 even though it is written first.
    d.write("conf.d/20-more.toml", R"([[listener]]
name = "second"
listen = "127.0.0.1:8082"
  [[listener.route]]
  handler = { module = "static", root = "/srv" }
)");
    d.write("conf.d/10-api.toml", R"([server]
drain_timeout = "5s"

[upstream.api]
servers = ["127.0.0.1:3002"]
lb = "random"

[upstream.other]
servers = ["127.0.0.1:4000"]

[[listener]]
name = "first"
listen = "127.0.0.1:8081"
  [[listener.route]]
  handler = { module = "static", root = "/srv" }
)");
    d.write("conf.d/notes.txt", "this is not toml = = =");     // ignored: not *.toml
    d.write("conf.d/.#30-x.toml", "broken = = =");             // ignored: hidden / editor lock
    d.write("conf.d/sub.toml/ignored.toml", "x = 1");          // a directory named *.toml is skipped
    auto r = load(d.str());
    INFO(errors_of(r));
    REQUIRE(r.ok());
    const auto &s = r.snap;
    CHECK(s.server.workers == 2);                           // from atlas.toml
    CHECK(s.server.drain_timeout == duration(5000));        // merged in from conf.d
    REQUIRE(s.listeners.size() == 3);
    CHECK(s.listeners[0].name == "web");
    CHECK(s.listeners[1].name == "first");
    CHECK(s.listeners[2].name == "second");
    REQUIRE(s.upstreams.size() == 2);
    CHECK(s.upstreams[0].name == "api");
    REQUIRE(s.upstreams[0].servers.size() == 2);            // arrays append
    CHECK(s.upstreams[0].servers[1].address == "127.0.0.1:3002");
    CHECK(s.upstreams[0].lb.name == "lb_random");
    CHECK(s.upstreams[1].name == "other");
    REQUIRE(s.files.size() == 3);
    CHECK(s.files[1] == (d.path() / "conf.d/10-api.toml").string());
    CHECK(s.files[2] == (d.path() / "conf.d/20-more.toml").string());
    // Module refs remember the file that declared them.
    CHECK(s.listeners[1].routes[0].handler.file == "conf.d/10-api.toml");
    CHECK(s.listeners[0].routes[0].handler.file == "atlas.toml");
    CHECK(s.listeners[0].routes[0].handler.line == 11);
    // The effective config is the merged document.
    auto j = nlohmann::json::parse(s.effective_json);
    CHECK(j["listener"].size() == 3);
    CHECK(j["upstream"]["api"]["servers"].size() == 2);
    CHECK(j["server"]["drain_timeout"] == "5s");
}

TEST_CASE("directory: a scalar set in two files names both") {
    temp_dir d;
    d.write("atlas.toml", base);
    d.write("conf.d/x.toml", "[server]\nworkers = 4\n");
    auto r = load(d.str());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message == "conf.d/x.toml:2: server.workers: set in atlas.toml:2 and again in conf.d/x.toml:2");
    CHECK(r.errors[0].file == "conf.d/x.toml");
    CHECK(r.errors[0].line == 2);
    CHECK(r.snap.server.workers == 2);  // the first definition is kept
}

TEST_CASE("directory: a key whose types differ across files") {
    temp_dir d;
    d.write("atlas.toml", base);
    d.write("conf.d/a.toml", "[upstream]\napi = \"x\"\n");           // table vs string
    d.write("conf.d/b.toml", "server = [1]\n");                       // table vs array
    auto r = load(d.str());
    INFO(errors_of(r));
    CHECK(has_error(r, "conf.d/a.toml:2: upstream.api: set in atlas.toml:4 and again in conf.d/a.toml:2"));
    CHECK(has_error(r, "conf.d/b.toml:1: server: set in atlas.toml:1 and again in conf.d/b.toml:1"));
}

TEST_CASE("directory: two conf.d files clash with each other") {
    temp_dir d;
    d.write("atlas.toml", base);
    d.write("conf.d/a.toml", "[admin]\nlisten = \"127.0.0.1:9901\"\n");
    d.write("conf.d/b.toml", "[admin]\nlisten = \"127.0.0.1:9902\"\n");
    auto r = load(d.str());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message ==
          "conf.d/b.toml:2: admin.listen: set in conf.d/a.toml:2 and again in conf.d/b.toml:2");
}

TEST_CASE("directory: missing atlas.toml is an error, a missing path too") {
    temp_dir d;
    d.write("conf.d/a.toml", "[server]\n");
    auto r = load(d.str());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message.find("atlas.toml: missing") != std::string::npos);

    auto none = load((d.path() / "nope").string());
    REQUIRE(none.errors.size() == 1);
    CHECK(none.errors[0].message.find("nope: cannot read") != std::string::npos);
}

TEST_CASE("directory: conf.d that is not a directory") {
    temp_dir d;
    d.write("atlas.toml", base);
    d.write("conf.d", "oops");
    auto r = load(d.str());
    CHECK(has_error(r, "conf.d: not a directory"));
}

TEST_CASE("single file: messages use the path as given, relative paths resolve next to it") {
    temp_dir d;
    d.write("site/main.toml", std::string("[server]\nmodule_dir = \"mods\"\nwrokers = 1\n") +
                                  R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
  [[listener.route]]
  handler = { module = "static", root = "/srv" }
)");
    d.write("site/conf.d/ignored.toml", "this = = is not read");
    auto path = (d.path() / "site/main.toml").string();
    auto r = load(path);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message == path + ":3: server.wrokers: unknown key");
    CHECK(r.snap.server.module_dir == (d.path() / "site/mods").string());
    CHECK(r.snap.files == std::vector<std::string>{path});
}

TEST_CASE("syntax errors: one line each, every file reported") {
    temp_dir d;
    d.write("atlas.toml", "[server]\nworkers = 2\nbad line\n");
    d.write("conf.d/a.toml", "x = \"unterminated\n");
    d.write("conf.d/b.toml", "a = 1\na = 2\n");
    auto r = load(d.str());
    INFO(errors_of(r));
    REQUIRE(r.errors.size() == 3);
    CHECK(r.errors[0].message.starts_with("atlas.toml:3: TOML syntax error: "));
    CHECK(r.errors[1].message.starts_with("conf.d/a.toml:1: TOML syntax error: "));
    CHECK(r.errors[2].message.starts_with("conf.d/b.toml:2: TOML syntax error: "));
    CHECK(r.errors[2].message.find("line 1") != std::string::npos);  // where it was first set
    for (const auto &e : r.errors) CHECK(e.message.find('\n') == std::string::npos);
}

TEST_CASE("a file that is not UTF-8 is one error naming the line, before the TOML parser sees it") {
    // The literal-string case crashed toml11 3.7 (tests/fuzz/corpus/config_loader/crash-*).
    const std::string bad_literal = "[server]\nworkers = 1\n[admin]\nlisten = '0;\x8cw'\n";
    for (const std::string &text : {bad_literal, std::string("a = \"\xc0\xaf\"\n"),  // overlong '/'
                                     std::string("# \xed\xa0\x80 surrogate\n"), std::string("x = \"\xf4\x90\x80\x80\"\n"),
                                     std::string("\n\n\xe2\x82")}) {  // cut short at the end
        auto r = atlas::config::test::parse(text);
        INFO(errors_of(r));
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message.find(": not UTF-8 (byte 0x") != std::string::npos);
        CHECK(r.errors[0].message.starts_with("atlas.toml:"));
    }
    CHECK(atlas::config::test::parse(bad_literal).errors[0].message == "atlas.toml:4: not UTF-8 (byte 0x8c): a TOML file must be UTF-8");
    // Well-formed multi-byte text passes on to the parser (and into values).
    auto ok = atlas::config::test::parse("# caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n" + std::string(atlas::config::test::minimal_listener));
    INFO(errors_of(ok));
    CHECK(ok.ok());
}

TEST_CASE("tables, arrays and inline tables nested too deep are one error, not a stack overflow") {
    using atlas::config::test::parse;
    for (const char *open : {"[", "{b="}) {
        std::string text = "# [[[[ { a comment does not count\ns = \"[[[[[[\"\nt = '{{{{'\na = ";
        for (int i = 0; i < 100000; ++i) text += open;
        auto r = parse(text);
        INFO(errors_of(r));
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message == "atlas.toml:4: tables, arrays or inline tables nested deeper than 64 levels");
    }
    std::string dotted;
    for (int i = 0; i < 50000; ++i) dotted += "a.";
    for (const std::string &text : {"x = 1.5\n[" + dotted + "a]\n", "x = [1.5, 2.5]\n" + dotted + "a = 1\n",
                                    "x = 1.5\ny = { " + dotted + "a = 1 }\n"}) {
        auto r = parse(text);
        INFO(errors_of(r));
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message == "atlas.toml:2: tables, arrays or inline tables nested deeper than 64 levels");
    }
    // Dots in values are not keys: 100 floats on one line are fine.
    std::string floats = "[server]\nx = [";
    for (int i = 0; i < 100; ++i) floats += "1.5, ";
    auto f = parse(floats + "2.5]\n");
    for (const auto &e : f.errors) CHECK(e.message.find("nested deeper") == std::string::npos);
    // 64 levels are still a TOML question (a type error here, not a nesting one).
    std::string ok = "[server]\nworkers = ";
    for (int i = 0; i < 64; ++i) ok += "[";
    for (int i = 0; i < 64; ++i) ok += "]";
    auto r = parse(ok + "\n");
    INFO(errors_of(r));
    CHECK(r.errors.size() >= 1);
    CHECK(r.errors[0].message.find("nested deeper") == std::string::npos);
}

TEST_CASE("load_text: name and base_dir") {
    auto r = load_text("[server]\npid_file = \"run/atlas.pid\"\nmodule_dir = \"/abs/mods/\"\n" +
                           std::string(atlas::config::test::minimal_listener),
                       "inline.toml", "/etc/atlas");
    INFO(errors_of(r));
    REQUIRE(r.ok());
    CHECK(r.snap.server.pid_file == "/etc/atlas/run/atlas.pid");
    CHECK(r.snap.server.module_dir == "/abs/mods");
    CHECK(r.snap.files == std::vector<std::string>{"inline.toml"});

    auto bad = load_text("[server]\nx = 1\n", "inline.toml", "/etc/atlas");
    CHECK(has_error(bad, "inline.toml:2: server.x: unknown key"));
}

TEST_CASE("errors come out in file and line order") {
    temp_dir d;
    d.write("atlas.toml", std::string(base) + "\n[admin]\nlisten = \"nowhere\"\n");
    d.write("conf.d/a.toml", "[server]\nfoo = 1\nworkers = 3\n");
    auto r = load(d.str());
    INFO(errors_of(r));
    REQUIRE(r.errors.size() == 3);
    CHECK(r.errors[0].file == "atlas.toml");
    CHECK(r.errors[1].message.starts_with("conf.d/a.toml:2: server.foo"));
    CHECK(r.errors[2].message.starts_with("conf.d/a.toml:3: server.workers: set in"));
}
