// Shared by the config tests: temporary config directories and error matching.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/loader.hh"

namespace atlas::config::test {

// A directory under $TMPDIR removed (with its contents) when the test ends.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "atlas-config-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir &) = delete;
    temp_dir &operator=(const temp_dir &) = delete;

    const std::filesystem::path &path() const { return path_; }
    std::string str() const { return path_.string(); }

    // Writes `text` to `rel` (creating parent directories).
    void write(const std::string &rel, const std::string &text) const {
        auto p = path_ / rel;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }

private:
    std::filesystem::path path_;
};

// New-format text as atlas.toml in /etc/atlas.
inline load_result parse(const std::string &text) { return load_text(text, "atlas.toml", "/etc/atlas"); }

// All messages, one per line, for failure output.
inline std::string errors_of(const load_result &r) {
    std::string out;
    for (const auto &e : r.errors) out += e.message + "\n";
    return out;
}

// Is there an error whose message contains `needle`?
inline bool has_error(const load_result &r, std::string_view needle) {
    for (const auto &e : r.errors)
        if (e.message.find(needle) != std::string::npos) return true;
    return false;
}

// The smallest valid listener, to wrap pieces under test.
inline const char *minimal_listener = R"(
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
  [[listener.route]]
  handler = { module = "static", root = "/srv" }
)";

inline nlohmann::json json_of(const std::string &text) { return nlohmann::json::parse(text); }

}  // namespace atlas::config::test
