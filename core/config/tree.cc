// Internal: TOML text -> ordered, located tree; toml11's multi-line errors -> one line.
#include "config/tree.hh"

#include <algorithm>
#include <sstream>

#include <toml.hpp>

namespace atlas::config::detail {

const node *node::find(std::string_view key) const {
    for (const auto &m : members)
        if (m.key == key) return &m.value;
    return nullptr;
}

node *node::find(std::string_view key) {
    for (auto &m : members)
        if (m.key == key) return &m.value;
    return nullptr;
}

std::string node::where() const {
    std::string w = src ? src->name : std::string("<config>");
    if (line != 0) w += ":" + std::to_string(line);
    return w;
}

const char *kind_name(node::kind k) {
    switch (k) {
    case node::kind::table: return "a table";
    case node::kind::array: return "an array";
    case node::kind::string: return "a string";
    case node::kind::integer: return "an integer";
    case node::kind::floating: return "a float";
    case node::kind::boolean: return "a boolean";
    case node::kind::datetime: return "a date/time";
    }
    return "a value";
}

namespace {

template <class T>
std::string stream_text(const T &v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

node convert(const toml::value &v, const std::shared_ptr<const source> &src) {
    node n;
    n.src = src;
    n.line = static_cast<uint32_t>(v.location().line());
    switch (v.type()) {
    case toml::value_t::table: {
        n.type = node::kind::table;
        // toml11 keeps tables unordered: restore declaration order from the positions.
        struct entry {
            std::size_t line, column;
            const std::string *key;
            const toml::value *value;
        };
        std::vector<entry> entries;
        for (const auto &[k, c] : v.as_table()) {
            auto loc = c.location();
            entries.push_back({loc.line(), loc.column(), &k, &c});
        }
        std::sort(entries.begin(), entries.end(), [](const entry &a, const entry &b) {
            if (a.line != b.line) return a.line < b.line;
            if (a.column != b.column) return a.column < b.column;
            return *a.key < *b.key;
        });
        for (const auto &e : entries) n.members.push_back({*e.key, convert(*e.value, src)});
        break;
    }
    case toml::value_t::array:
        n.type = node::kind::array;
        for (const auto &c : v.as_array()) n.items.push_back(convert(c, src));
        break;
    case toml::value_t::string:
        n.type = node::kind::string;
        n.text = v.as_string().str;
        break;
    case toml::value_t::integer:
        n.type = node::kind::integer;
        n.integer = v.as_integer();
        break;
    case toml::value_t::floating:
        n.type = node::kind::floating;
        n.floating = v.as_floating();
        break;
    case toml::value_t::boolean:
        n.type = node::kind::boolean;
        n.boolean = v.as_boolean();
        break;
    case toml::value_t::offset_datetime:
        n.type = node::kind::datetime;
        n.text = stream_text(v.as_offset_datetime());
        break;
    case toml::value_t::local_datetime:
        n.type = node::kind::datetime;
        n.text = stream_text(v.as_local_datetime());
        break;
    case toml::value_t::local_date:
        n.type = node::kind::datetime;
        n.text = stream_text(v.as_local_date());
        break;
    case toml::value_t::local_time:
        n.type = node::kind::datetime;
        n.text = stream_text(v.as_local_time());
        break;
    case toml::value_t::empty: n.type = node::kind::table; break;
    }
    return n;
}

std::string trim(std::string_view s) {
    auto b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return {};
    auto e = s.find_last_not_of(" \t\r");
    return std::string(s.substr(b, e - b + 1));
}

// toml11 explains an error over several lines:
//   [error] toml::parse_key_value_pair: missing key-value separator `=`
//    --> atlas.toml
//      |
//    2 | b c
//      |  ^--- should be `=`
// This keeps the message and the pointer notes ("line N: note" when the note is
// about another line), dropping the source excerpt and the generic "Hint:" lines.
std::string one_line(const std::string &what, std::size_t error_line) {
    std::istringstream in(what);
    std::string line, message;
    std::vector<std::string> notes;
    std::size_t current = 0;
    bool first = true;
    while (std::getline(in, line)) {
        if (first) {
            first = false;
            std::string_view m = line;
            if (m.starts_with("[error] ")) m.remove_prefix(8);
            if (m.starts_with("toml::")) {  // drop the function name
                auto colon = m.find(": ");
                m = colon == std::string_view::npos ? std::string_view() : m.substr(colon + 2);
            }
            message = trim(m);
            continue;
        }
        auto bar = line.find('|');
        if (bar == std::string::npos) continue;
        std::string left = trim(std::string_view(line).substr(0, bar));
        std::string_view right = std::string_view(line).substr(bar + 1);
        if (!left.empty()) {
            if (std::all_of(left.begin(), left.end(), [](char c) { return c >= '0' && c <= '9'; }))
                current = std::stoul(left);
            continue;
        }
        auto mark = right.find_first_of("^~");
        if (mark == std::string_view::npos) continue;
        auto rest = right.substr(mark);
        auto text_at = rest.find_first_not_of("^~-");
        if (text_at == std::string_view::npos) continue;
        std::string note = trim(rest.substr(text_at));
        if (note.empty() || note == "here") continue;
        if (current != 0 && current != error_line) note = "line " + std::to_string(current) + ": " + note;
        notes.push_back(note);
    }
    std::string out = message;
    if (out.ends_with('.')) out.pop_back();
    std::string joined;
    for (const auto &n : notes) joined += (joined.empty() ? "" : "; ") + n;
    if (out.empty()) return joined.empty() ? "invalid TOML" : joined;
    if (!joined.empty()) out += " (" + joined + ")";
    return out;
}

std::string flatten(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

}  // namespace

std::optional<node> parse_toml(const std::string &text, std::shared_ptr<const source> src,
                               std::vector<diagnostic> &errors) {
    try {
        std::istringstream in(text);
        auto root = toml::parse(in, src->name);
        return convert(root, src);
    } catch (const toml::syntax_error &e) {
        auto line = e.location().line();
        std::string where = src->name + (line ? ":" + std::to_string(line) : std::string());
        errors.push_back({where + ": TOML syntax error: " + one_line(e.what(), line), src->name,
                          static_cast<uint32_t>(line)});
    } catch (const std::exception &e) {
        errors.push_back({src->name + ": cannot parse: " + flatten(e.what()), src->name, 0});
    }
    return std::nullopt;
}

}  // namespace atlas::config::detail
