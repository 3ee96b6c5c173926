#include "config.hh"

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace atlas::headers {

namespace {

// Declaration order is kept (the host hands the TOML tables over in order).
using json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string &key, const std::string &why) {
    throw std::runtime_error(key.empty() ? why : key + ": " + why);
}

// A header name or value quoted for a one-line message: control bytes become \xNN.
std::string shown(std::string_view s) {
    std::string out = "\"";
    for (unsigned char ch : s) {
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", ch);
            out += b;
        } else {
            out += char(ch);
        }
    }
    return out + "\"";
}

enum class side { request, response };

void check_name(std::string_view name, const std::string &key, side sd, bool removing) {
    if (!is_token(name)) bad(key, shown(name) + " is not a valid header name (RFC 9110 token)");
    if (sd == side::request) {
        if (iequals(name, "Host") || iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding"))
            bad(key, shown(name) + " cannot be edited on the request side (framing and routing depend on it)");
    } else {
        if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") || iequals(name, "Connection"))
            bad(key, shown(name) + " belongs to atlasd (response framing) and cannot be edited");
        // Date is written by atlasd after the filters ran. Server is among the headers
        // the filters see, so it can be replaced (set) or removed, but an added one
        // would be a second Server field.
        if (iequals(name, "Date")) bad(key, shown(name) + " is written by atlasd and cannot be edited");
        (void)removing;
    }
}

void check_value(std::string_view name, std::string_view v, const std::string &key) {
    for (unsigned char ch : v) {
        if (ch == '\r' || ch == '\n') bad(key, "value of " + shown(name) + " contains CR or LF");
        if (ch == 0) bad(key, "value of " + shown(name) + " contains NUL");
    }
    for (unsigned char ch : v)
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) bad(key, "value of " + shown(name) + " contains a control character");
    if (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t'))
        bad(key, "value of " + shown(name) + " has leading or trailing whitespace");
}

const json &table(const json &v, const std::string &key, const char *what) {
    if (!v.is_object()) bad(key, std::string("must be a table ") + what);
    return v;
}

// One side's { add, set, remove }. Returns true when request.set held
// "X-Request-ID" = "auto" (the alias of request_id = "auto").
bool parse_edits(const json &j, const std::string &base, side sd, bool allow_alias, edits &out) {
    bool alias = false;
    for (auto &[k, v] : j.items()) {
        std::string key = base.empty() ? k : base + "." + k;
        if (k == "remove") {
            if (!v.is_array()) bad(key, "must be an array of header names");
            for (auto &n : v) {
                if (!n.is_string()) bad(key, "must be an array of header names");
                std::string name = n.get<std::string>();
                check_name(name, key, sd, true);
                out.remove.push_back(name);
            }
        } else if (k == "set") {
            table(v, key, "of \"Name\" = \"value\"");
            for (auto &[name, val] : v.items()) {
                check_name(name, key, sd, false);
                if (!val.is_string()) bad(key, "value of " + shown(name) + " must be a string");
                std::string s = val.get<std::string>();
                if (allow_alias && iequals(name, "X-Request-ID") && s == "auto") {
                    alias = true;
                    continue;
                }
                check_value(name, s, key);
                for (const field &f : out.set)
                    if (iequals(f.name, name))
                        bad(key, shown(name) + " is set twice (header names are case-insensitive)");
                out.set.push_back({name, s});
            }
        } else if (k == "add") {
            table(v, key, "of \"Name\" = \"value\" or [\"value\", ...]");
            for (auto &[name, val] : v.items()) {
                check_name(name, key, sd, false);
                if (sd == side::response && iequals(name, "Server"))
                    bad(key, shown(name) + " cannot be added (atlasd sends one): use set or remove");
                if (val.is_string()) {
                    std::string s = val.get<std::string>();
                    check_value(name, s, key);
                    out.add.push_back({name, s});
                } else if (val.is_array() && !val.empty()) {
                    for (auto &e : val) {
                        if (!e.is_string()) bad(key, "values of " + shown(name) + " must be strings");
                        std::string s = e.get<std::string>();
                        check_value(name, s, key);
                        out.add.push_back({name, s});
                    }
                } else {
                    bad(key, "value of " + shown(name) + " must be a string or a non-empty array of strings");
                }
            }
        } else {
            bad(key, "unknown key (takes add, set, remove)");
        }
    }
    return alias;
}

void refuse_request_id_edits(const edits &e, const std::string &base) {
    auto refuse = [&](std::string_view name, const char *what) {
        if (iequals(name, "X-Request-ID"))
            bad(base.empty() ? std::string(what) : base + "." + what, "\"X-Request-ID\" is managed by request_id = \"auto\" and cannot be edited too");
    };
    for (const std::string &n : e.remove) refuse(n, "remove");
    for (const field &f : e.set) refuse(f.name, "set");
    for (const field &f : e.add) refuse(f.name, "add");
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (x >= 'A' && x <= 'Z') x = x - 'A' + 'a';
        if (y >= 'A' && y <= 'Z') y = y - 'A' + 'a';
        if (x != y) return false;
    }
    return true;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char ch : s) {
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) continue;
        switch (ch) {
            case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
            case '-': case '.': case '^': case '_': case '`': case '|': case '~':
                continue;
            default:
                return false;
        }
    }
    return true;
}

bool acceptable_request_id(std::string_view s) {
    if (s.empty() || s.size() > 200) return false;
    for (unsigned char ch : s)
        if (ch < 0x21 || ch > 0x7e) return false;
    return true;
}

config *parse_config(std::string_view text) {
    // Keys in messages are relative to the module's table: the host prefixes its path.
    const std::string key;
    json j;
    try {
        j = json::parse(text);
    } catch (const std::exception &e) {
        bad(key, std::string("configuration is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) bad(key, "must be a table");
    auto c = std::make_unique<config>();
    bool alias = false;
    bool have_response = false;
    json shorthand = json::object();
    std::string first_shorthand;
    for (auto &[k, v] : j.items()) {
        std::string sub = k;
        if (k == "request") {
            alias = parse_edits(table(v, sub, "{ add, set, remove }"), sub, side::request, true, c->request);
        } else if (k == "response") {
            parse_edits(table(v, sub, "{ add, set, remove }"), sub, side::response, false, c->response);
            have_response = true;
        } else if (k == "add" || k == "set" || k == "remove") {
            shorthand[k] = v;
            if (first_shorthand.empty()) first_shorthand = k;
        } else if (k == "request_id") {
            if (!v.is_string() || (v.get<std::string>() != "auto" && v.get<std::string>() != "off"))
                bad(sub, "must be \"auto\" or \"off\"");
            c->request_id = v.get<std::string>() == "auto";
        } else {
            bad(sub, "unknown key (mod_headers takes request, response, request_id, and add, set, remove "
                     "as a shorthand for the response side)");
        }
    }
    if (!shorthand.empty()) {
        if (have_response)
            bad(first_shorthand,
                "the top-level add/set/remove shorthand (response side) cannot be combined with response = { ... }");
        parse_edits(shorthand, key, side::response, false, c->response);
    }
    if (alias) c->request_id = true;
    if (c->request_id) {
        refuse_request_id_edits(c->request, "request");
        refuse_request_id_edits(c->response, have_response ? "response" : "");
    }
    return c.release();
}

}  // namespace atlas::headers
