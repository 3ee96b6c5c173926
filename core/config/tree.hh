// Internal: the parsed TOML as an ordered tree that remembers, for every value,
// the file and line it came from. toml11's tables are unordered and its values
// know nothing about merging, so the loader works on this instead.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/loader.hh"

namespace atlas::config::detail {

// A file that was read: its name in messages and the directory relative paths resolve against.
struct source {
    std::string name;  // "atlas.toml", "conf.d/10-api.toml", or the path given
    std::string dir;   // absolute
};

struct member;

struct node {
    enum class kind { table, array, string, integer, floating, boolean, datetime };

    kind type = kind::table;
    std::shared_ptr<const source> src;
    uint32_t line = 0;             // 0 = unknown
    std::string text;              // string value, or a datetime in its TOML form
    int64_t integer = 0;
    double floating = 0;
    bool boolean = false;
    std::vector<member> members;   // table: in declaration order
    std::vector<node> items;       // array

    bool is(kind k) const { return type == k; }
    const node *find(std::string_view key) const;
    node *find(std::string_view key);
    std::string where() const;     // "file:line", or "file" when the line is unknown
};

struct member {
    std::string key;
    node value;
};

// "a table", "an integer", ... for messages.
const char *kind_name(node::kind k);

// Parses one file's text. On a syntax error appends ONE line naming file and line.
std::optional<node> parse_toml(const std::string &text, std::shared_ptr<const source> src,
                               std::vector<diagnostic> &errors);

// Merges `from` into `into` (DESIGN §3): tables merge recursively, arrays append,
// anything else set twice is an error naming both places.
void merge(node &into, node &&from, std::vector<diagnostic> &errors);

// The tree as JSON. nlohmann::json gives canonical (sorted) objects for module
// configs; nlohmann::ordered_json keeps declaration order for the effective config.
template <class Json>
Json to_json(const node &n) {
    switch (n.type) {
    case node::kind::table: {
        Json j = Json::object();
        for (const auto &m : n.members) j[m.key] = to_json<Json>(m.value);
        return j;
    }
    case node::kind::array: {
        Json j = Json::array();
        for (const auto &i : n.items) j.push_back(to_json<Json>(i));
        return j;
    }
    case node::kind::string:
    case node::kind::datetime: return Json(n.text);
    case node::kind::integer: return Json(n.integer);
    case node::kind::floating: return Json(n.floating);
    case node::kind::boolean: return Json(n.boolean);
    }
    return Json();
}

}  // namespace atlas::config::detail
