// Internal: typed, error-collecting access to the tree. Every getter reports a
// wrong type or range as one diagnostic naming file, line and key path, and
// returns nullopt so the caller keeps the model's default and carries on.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/model.hh"
#include "config/tree.hh"

namespace atlas::config::detail {

// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string join_key(const std::string &path, std::string_view name);
// "a.b" + 3 -> "a.b[3]".
std::string index_key(const std::string &path, std::size_t i);

class checker {
public:
    explicit checker(std::vector<diagnostic> &out) : out_(out) {}

    // "<file>:<line>: <key>: <reason>"
    void fail(const node &at, const std::string &key, const std::string &reason);

    // Reports every key of `table` not in `allowed` as "unknown key".
    void allow_only(const node &table, const std::string &path,
                    std::initializer_list<std::string_view> allowed);

    // Value checks: `v` is the value itself, `key` its full path.
    bool expect(const node &v, const std::string &key, node::kind k);
    std::optional<std::string> string(const node &v, const std::string &key, bool allow_empty = false);
    std::optional<bool> boolean(const node &v, const std::string &key);
    std::optional<int64_t> integer(const node &v, const std::string &key, int64_t min,
                                   int64_t max = std::numeric_limits<int64_t>::max());
    std::optional<duration> dur(const node &v, const std::string &key);
    std::optional<uint64_t> size(const node &v, const std::string &key, uint64_t min = 0,
                                 uint64_t max = std::numeric_limits<uint64_t>::max());
    // A path string made absolute against the directory of the file that set it.
    std::optional<std::string> path(const node &v, const std::string &key);

    // A module table `{ module = "name", ... }`: the other keys become config_json.
    std::optional<module_ref> module(const node &v, const std::string &key);

    // A table / an array, or nullptr after reporting the wrong type.
    const node *table(const node &v, const std::string &key);
    const node *array(const node &v, const std::string &key);

    // Diagnostics so far: compare before and after reading a part to tell whether it is sound.
    std::size_t count() const { return out_.size(); }

private:
    std::vector<diagnostic> &out_;
};

// The keys of one table, read by name: absent keys give nullopt/nullptr silently,
// present ones go through the checker under "<path>.<name>".
class scope {
public:
    scope(checker &ck, const node &table, std::string path)
        : ck_(ck), table_(table), path_(std::move(path)) {}

    const node &self() const { return table_; }
    const std::string &path() const { return path_; }
    const node *get(std::string_view name) const { return table_.find(name); }
    std::string key(std::string_view name) const { return join_key(path_, name); }
    void allow_only(std::initializer_list<std::string_view> allowed) {
        ck_.allow_only(table_, path_, allowed);
    }
    // Reports a problem with key `name`, at its value (or at this table when absent).
    void fail(std::string_view name, const std::string &reason) {
        const node *v = get(name);
        ck_.fail(v ? *v : table_, key(name), reason);
    }

    std::optional<std::string> string(std::string_view name, bool allow_empty = false);
    std::optional<bool> boolean(std::string_view name);
    std::optional<int64_t> integer(std::string_view name, int64_t min,
                                   int64_t max = std::numeric_limits<int64_t>::max());
    std::optional<duration> dur(std::string_view name);
    // A duration that must be more than zero (a timeout of 0 would end everything at once).
    std::optional<duration> positive_dur(std::string_view name);
    std::optional<uint64_t> size(std::string_view name, uint64_t min = 0,
                                 uint64_t max = std::numeric_limits<uint64_t>::max());
    std::optional<std::string> path(std::string_view name);
    std::optional<module_ref> module(std::string_view name);
    const node *table(std::string_view name);
    const node *array(std::string_view name);

private:
    checker &ck_;
    const node &table_;
    std::string path_;
};

// A valid module name: [a-z0-9_]+.
bool valid_module_name(std::string_view name);

// `path` made absolute (against the working directory) and lexically normal.
std::string absolute_path(const std::string &dir);

}  // namespace atlas::config::detail
