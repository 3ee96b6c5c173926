// Reads Atlas's TOML configuration (new format or the seed's flat format) and
// turns it into the validated snapshot of model.hh. All problems are collected
// so `atlasd -t` can print one line per problem instead of stopping at the first.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hh"

namespace atlas::config {

// One line: "<file>:<line>: <key>: <reason>" (line omitted when unknown).
struct diagnostic {
    std::string message;
    std::string file = {};  // as in the message ("" when not about one file), for sorting and tools
    uint32_t line = 0;      // 0 = unknown
};

struct load_result {
    snapshot snap;
    std::vector<diagnostic> errors;  // empty = valid

    bool ok() const { return errors.empty(); }
};

// path: a directory (reads DIR/atlas.toml then DIR/conf.d/*.toml in name order)
// or a single file.
load_result load(const std::string &path);

// Same, from in-memory text (for tests): `name` is the file name used in messages,
// `base_dir` resolves relative paths.
load_result load_text(const std::string &text, const std::string &name,
                      const std::string &base_dir);

// "250ms" "5s" "2m" "1h" "1m30s" "1.5s"; a bare integer is seconds. Units go from
// large to small, each at most once; the result must be whole milliseconds.
std::optional<duration> parse_duration(std::string_view text);

// "512" "16k" "16KiB" "1m" "1MiB" "1g": binary multiples, case-insensitive.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace atlas::config
