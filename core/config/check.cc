// Internal: typed access to the tree with one-line diagnostics.
#include "config/check.hh"

#include <filesystem>

namespace atlas::config::detail {

namespace fs = std::filesystem;

std::string join_key(const std::string &path, std::string_view name) {
    return path.empty() ? std::string(name) : path + "." + std::string(name);
}

std::string index_key(const std::string &path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
}

bool valid_module_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

std::string absolute_path(const std::string &dir) {
    std::error_code ec;
    fs::path p = fs::absolute(dir.empty() ? fs::path(".") : fs::path(dir), ec);
    if (ec) p = dir;
    std::string s = p.lexically_normal().string();
    if (s.size() > 1 && s.ends_with('/')) s.pop_back();
    return s;
}

void checker::fail(const node &at, const std::string &key, const std::string &reason) {
    out_.push_back({at.where() + ": " + key + ": " + reason, at.src ? at.src->name : std::string(), at.line});
}

void checker::allow_only(const node &table, const std::string &path,
                         std::initializer_list<std::string_view> allowed) {
    for (const auto &m : table.members) {
        bool known = false;
        for (auto a : allowed) known = known || m.key == a;
        if (!known) fail(m.value, join_key(path, m.key), "unknown key");
    }
}

bool checker::expect(const node &v, const std::string &key, node::kind k) {
    if (v.is(k)) return true;
    fail(v, key, std::string("expected ") + kind_name(k) + ", got " + kind_name(v.type));
    return false;
}

const node *checker::table(const node &v, const std::string &key) {
    return expect(v, key, node::kind::table) ? &v : nullptr;
}

const node *checker::array(const node &v, const std::string &key) {
    return expect(v, key, node::kind::array) ? &v : nullptr;
}

std::optional<std::string> checker::string(const node &v, const std::string &key, bool allow_empty) {
    if (!expect(v, key, node::kind::string)) return std::nullopt;
    if (!allow_empty && v.text.empty()) {
        fail(v, key, "must not be empty");
        return std::nullopt;
    }
    return v.text;
}

std::optional<bool> checker::boolean(const node &v, const std::string &key) {
    if (!v.is(node::kind::boolean)) {
        fail(v, key, std::string("must be true or false (got ") + kind_name(v.type) + ")");
        return std::nullopt;
    }
    return v.boolean;
}

std::optional<int64_t> checker::integer(const node &v, const std::string &key, int64_t min, int64_t max) {
    // Bounds at the uint32 limit or above are an implementation limit, not advice.
    bool open_ended = max >= static_cast<int64_t>(std::numeric_limits<uint32_t>::max());
    std::string want = open_ended ? "must be an integer >= " + std::to_string(min)
                                  : "must be an integer between " + std::to_string(min) + " and " +
                                        std::to_string(max);
    if (!v.is(node::kind::integer)) {
        fail(v, key, want + " (got " + kind_name(v.type) + ")");
        return std::nullopt;
    }
    if (v.integer < min) {
        fail(v, key, want);
        return std::nullopt;
    }
    if (v.integer > max) {
        fail(v, key, open_ended ? "must be at most " + std::to_string(max) : want);
        return std::nullopt;
    }
    return v.integer;
}

std::optional<duration> checker::dur(const node &v, const std::string &key) {
    static const std::string hint = " (use e.g. \"5s\" or \"250ms\")";
    if (v.is(node::kind::integer)) {  // a bare integer is seconds, as in strings
        if (auto d = parse_duration(std::to_string(v.integer)); d && v.integer >= 0) return d;
        fail(v, key, "bad duration " + std::to_string(v.integer) + hint);
        return std::nullopt;
    }
    if (!v.is(node::kind::string)) {
        fail(v, key, std::string("expected a duration string, got ") + kind_name(v.type) + hint);
        return std::nullopt;
    }
    if (auto d = parse_duration(v.text)) return d;
    fail(v, key, "bad duration \"" + v.text + "\"" + hint);
    return std::nullopt;
}

std::optional<uint64_t> checker::size(const node &v, const std::string &key, uint64_t min, uint64_t max) {
    static const std::string hint = " (use e.g. \"16k\", \"1MiB\" or a number of bytes)";
    std::optional<uint64_t> n;
    if (v.is(node::kind::integer)) {
        if (v.integer < 0) {
            fail(v, key, "bad size " + std::to_string(v.integer) + hint);
            return std::nullopt;
        }
        n = static_cast<uint64_t>(v.integer);
    } else if (v.is(node::kind::string)) {
        n = parse_size(v.text);
        if (!n) {
            fail(v, key, "bad size \"" + v.text + "\"" + hint);
            return std::nullopt;
        }
    } else {
        fail(v, key, std::string("expected a size, got ") + kind_name(v.type) + hint);
        return std::nullopt;
    }
    if (*n < min) {
        fail(v, key, "must be at least " + std::to_string(min) + " bytes");
        return std::nullopt;
    }
    if (*n > max) {
        fail(v, key, "must be at most " + std::to_string(max) + " bytes");
        return std::nullopt;
    }
    return n;
}

std::optional<std::string> checker::path(const node &v, const std::string &key) {
    auto s = string(v, key);
    if (!s) return std::nullopt;
    fs::path p(*s);
    if (p.is_relative()) p = fs::path(v.src ? v.src->dir : std::string(".")) / p;
    return absolute_path(p.string());
}

std::optional<module_ref> checker::module(const node &v, const std::string &key) {
    if (!v.is(node::kind::table)) {
        fail(v, key, std::string("expected a module table like { module = \"name\", ... }, got ") +
                         kind_name(v.type));
        return std::nullopt;
    }
    const node *name = v.find("module");
    if (!name) {
        fail(v, key, "missing `module` (e.g. { module = \"proxy\", ... })");
        return std::nullopt;
    }
    auto text = string(*name, join_key(key, "module"));
    if (!text) return std::nullopt;
    if (!valid_module_name(*text)) {
        fail(*name, join_key(key, "module"), "bad module name \"" + *text + "\" (use [a-z0-9_]+)");
        return std::nullopt;
    }
    node rest = v;
    std::erase_if(rest.members, [](const member &m) { return m.key == "module"; });
    module_ref ref;
    ref.name = *text;
    ref.config_json = to_json<nlohmann::json>(rest).dump();
    ref.key = key;
    ref.file = v.src ? v.src->name : std::string();
    ref.line = v.line;
    ref.base_dir = v.src ? v.src->dir : std::string();
    return ref;
}

std::optional<std::string> scope::string(std::string_view name, bool allow_empty) {
    const node *v = get(name);
    return v ? ck_.string(*v, key(name), allow_empty) : std::nullopt;
}

std::optional<bool> scope::boolean(std::string_view name) {
    const node *v = get(name);
    return v ? ck_.boolean(*v, key(name)) : std::nullopt;
}

std::optional<int64_t> scope::integer(std::string_view name, int64_t min, int64_t max) {
    const node *v = get(name);
    return v ? ck_.integer(*v, key(name), min, max) : std::nullopt;
}

std::optional<duration> scope::dur(std::string_view name) {
    const node *v = get(name);
    return v ? ck_.dur(*v, key(name)) : std::nullopt;
}

std::optional<duration> scope::positive_dur(std::string_view name) {
    const node *v = get(name);
    if (!v) return std::nullopt;
    // Tested one step at a time: gcc may otherwise compare the payload of an empty optional
    // before its flag, which is harmless but what valgrind's memcheck reports.
    const std::optional<duration> d = ck_.dur(*v, key(name));
    if (!d.has_value()) return std::nullopt;
    const duration value = *d;
    if (value.count() > 0) return value;
    fail(name, "must be more than 0 (a zero timeout would close every connection at once)");
    return std::nullopt;
}

std::optional<uint64_t> scope::size(std::string_view name, uint64_t min, uint64_t max) {
    const node *v = get(name);
    return v ? ck_.size(*v, key(name), min, max) : std::nullopt;
}

std::optional<std::string> scope::path(std::string_view name) {
    const node *v = get(name);
    return v ? ck_.path(*v, key(name)) : std::nullopt;
}

std::optional<module_ref> scope::module(std::string_view name) {
    const node *v = get(name);
    return v ? ck_.module(*v, key(name)) : std::nullopt;
}

const node *scope::table(std::string_view name) {
    const node *v = get(name);
    return v ? ck_.table(*v, key(name)) : nullptr;
}

const node *scope::array(std::string_view name) {
    const node *v = get(name);
    return v ? ck_.array(*v, key(name)) : nullptr;
}

}  // namespace atlas::config::detail
