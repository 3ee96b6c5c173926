// Internal: TOML text -> ordered, located tree; toml11's multi-line errors -> one line.
#include "config/tree.hh"

#include <algorithm>
#include <cstdio>
#include <string_view>
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

// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or npos.
size_t invalid_utf8_at(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c == 0xe0) len = 3, lo = 0xa0;
        else if (c == 0xed) len = 3, hi = 0x9f;
        else if (c >= 0xe1 && c <= 0xef) len = 3;
        else if (c == 0xf0) len = 4, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3) len = 4;
        else if (c == 0xf4) len = 4, hi = 0x8f;
        else return i;
        if (i + len > s.size()) return i;
        for (size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return i;
        }
        i += len;
    }
    return std::string_view::npos;
}

// Tables, arrays and inline tables nested deeper than this are refused before parsing:
// toml11 and convert() recurse once per level, and 50,000 levels overflow the stack (a
// crash at `atlasd -t` or at a reload). Real configs nest a handful.
constexpr int max_nesting = 64;

// Offset of the bracket or key dot that goes past max_nesting levels, or npos. Counted
// outside strings and comments: open arrays and inline tables, and the dots of one key
// ("a.b.c = 1", "[a.b.c]": dotted keys nest too); dots in values (1.5) are not keys.
size_t too_deep_at(std::string_view s) {
    std::string open;     // the unclosed '[' and '{', innermost last
    bool in_key = true;   // where a key may be: a line start, a header, after '{' or ',' in an inline table
    int key_dots = 0;
    size_t i = 0;
    auto starts = [&](std::string_view what) { return s.substr(i, what.size()) == what; };
    while (i < s.size()) {
        const char c = s[i];
        if (c == '#') {
            while (i < s.size() && s[i] != '\n') ++i;
        } else if (starts("\"\"\"") || starts("'''")) {
            const std::string_view quote = s.substr(i, 3);
            i += 3;
            while (i < s.size() && !starts(quote)) i += (quote[0] == '"' && s[i] == '\\') ? 2 : 1;
            i += 3;
        } else if (c == '"' || c == '\'') {
            ++i;
            while (i < s.size() && s[i] != c && s[i] != '\n') i += (c == '"' && s[i] == '\\') ? 2 : 1;
            ++i;
        } else {
            if (c == '[' || c == '{') {
                if (open.size() >= size_t(max_nesting)) return i;
                const bool header = c == '[' && open.empty() && in_key;  // [table] or [[array]]
                open.push_back(c);
                if (!header) in_key = c == '{';
                if (c == '{') key_dots = 0;
            } else if (c == ']' || c == '}') {
                if (!open.empty()) open.pop_back();
            } else if (c == ',' && !open.empty() && open.back() == '{') {
                in_key = true;
                key_dots = 0;
            } else if (c == '=') {
                in_key = false;
            } else if (c == '\n' && open.empty()) {
                in_key = true;
                key_dots = 0;
            } else if (c == '.' && in_key && ++key_dots > max_nesting) {
                return i;
            }
            ++i;
        }
    }
    return std::string_view::npos;
}

uint32_t line_at(const std::string &text, size_t at) {
    return static_cast<uint32_t>(std::count(text.begin(), text.begin() + long(at), '\n') + 1);
}

}  // namespace

std::optional<node> parse_toml(const std::string &text, std::shared_ptr<const source> src,
                               std::vector<diagnostic> &errors) {
    // A TOML document is UTF-8 (TOML 1.0). Checked here, before toml11 sees it: toml11
    // 3.7 reads outside its buffers while reporting bad UTF-8 in a literal string
    // (found by tests/fuzz config_loader), which could take a reload down.
    if (size_t at = invalid_utf8_at(text); at != std::string_view::npos) {
        const uint32_t line = line_at(text, at);
        char byte[8];
        std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[at]));
        errors.push_back({src->name + ":" + std::to_string(line) + ": not UTF-8 (byte " + byte +
                              "): a TOML file must be UTF-8",
                          src->name, line});
        return std::nullopt;
    }
    if (size_t at = too_deep_at(text); at != std::string_view::npos) {
        const uint32_t line = line_at(text, at);
        errors.push_back({src->name + ":" + std::to_string(line) + ": tables, arrays or inline tables nested deeper than " +
                              std::to_string(max_nesting) + " levels",
                          src->name, line});
        return std::nullopt;
    }
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
