#include "config.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <atlas/module.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace atlas::static_files {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string &key, const std::string &why) { throw std::runtime_error(key + ": " + why); }

// "64k", "1m", "512" or an integer; binary multiples.
uint64_t size_value(const json &v, const std::string &key) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer()) bad(key, "must not be negative");
    if (!v.is_string()) bad(key, "must be a size like \"256k\" or an integer");
    std::string s = v.get<std::string>();
    size_t i = 0;
    uint64_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (n > (UINT64_MAX - 9) / 10) bad(key, "too large");
        n = n * 10 + uint64_t(s[i++] - '0');
    }
    if (i == 0) bad(key, "bad size \"" + s + "\" (use e.g. \"256k\" or \"64m\")");
    std::string unit = s.substr(i);
    for (char &c : unit) c = char(std::tolower(static_cast<unsigned char>(c)));
    uint64_t mul = 1;
    if (unit.empty() || unit == "b") mul = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib") mul = 1ull << 10;
    else if (unit == "m" || unit == "mb" || unit == "mib") mul = 1ull << 20;
    else if (unit == "g" || unit == "gb" || unit == "gib") mul = 1ull << 30;
    else bad(key, "bad size \"" + s + "\" (use e.g. \"256k\" or \"64m\")");
    if (n > UINT64_MAX / mul) bad(key, "too large");
    return n * mul;
}

// "1s", "500ms", "2m" or an integer number of seconds.
uint64_t duration_ms(const json &v, const std::string &key) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() * 1000;
    uint64_t ms = 0;
    if (!v.is_string() || !atlas::module::parse_duration_ms(v.get<std::string>(), ms))
        bad(key, v.is_string() ? "bad duration \"" + v.get<std::string>() + "\" (use e.g. \"1s\" or \"500ms\")"
                               : std::string("must be a duration like \"1s\" or \"500ms\""));
    return ms;
}

bool boolean(const json &v, const std::string &key) {
    if (!v.is_boolean()) bad(key, "must be true or false");
    return v.get<bool>();
}

}  // namespace

config::~config() {
    if (root_fd >= 0) close(root_fd);
}

config *parse_config(std::string_view text, std::string_view base_dir) {
    json j = json::parse(text);
    if (!j.is_object()) bad("handler", "must be a table");
    auto c = std::make_unique<config>();
    for (auto &[k, v] : j.items()) {
        if (k == "root") {
            if (!v.is_string() || v.get<std::string>().empty()) bad("root", "must be a directory path");
            c->root = v.get<std::string>();
        } else if (k == "index") {
            if (!v.is_array()) bad("index", "must be an array of file names");
            c->index.clear();
            for (auto &f : v) {
                if (!f.is_string() || f.get<std::string>().empty() ||
                    f.get<std::string>().find('/') != std::string::npos)
                    bad("index", "entries must be plain file names");
                c->index.push_back(f.get<std::string>());
            }
        } else if (k == "cache") {
            if (!v.is_object()) bad("cache", "must be a table { entries, max_file_size, total, valid }");
            for (auto &[ck, cv] : v.items()) {
                std::string key = "cache." + ck;
                if (ck == "entries") {
                    if (!cv.is_number_unsigned() || cv.get<uint64_t>() > 10000000)
                        bad(key, "must be an integer from 0 to 10000000");
                    c->cache.entries = uint32_t(cv.get<uint64_t>());
                } else if (ck == "max_file_size") {
                    c->cache.max_file_size = size_value(cv, key);
                } else if (ck == "total") {
                    c->cache.total_bytes = size_value(cv, key);
                } else if (ck == "valid") {
                    c->cache.valid_ms = duration_ms(cv, key);
                } else {
                    bad(key, "unknown key (cache takes entries, max_file_size, total, valid)");
                }
            }
        } else if (k == "mime") {
            if (!v.is_object()) bad("mime", "must be a table of extension = \"type\"");
            for (auto &[ext, type] : v.items()) {
                std::string key = "mime." + ext;
                if (!type.is_string() || type.get<std::string>().empty()) bad(key, "must be a media type string");
                std::string t = type.get<std::string>();
                for (unsigned char ch : t)
                    if (ch < 0x20 || ch == 0x7f) bad(key, "control character in the media type");
                std::string e = ext;
                if (!e.empty() && e[0] == '.') e.erase(0, 1);
                for (char &ch : e) ch = char(std::tolower(static_cast<unsigned char>(ch)));
                c->mime[e] = t;
            }
        } else if (k == "etag") {
            c->etag = boolean(v, "etag");
        } else if (k == "precompressed") {
            c->precompressed = boolean(v, "precompressed");
        } else {
            bad(k, "unknown key (mod_static takes root, index, cache, mime, etag, precompressed)");
        }
    }
    if (c->root.empty()) bad("root", "required");
    if (c->root[0] != '/') c->root = std::string(base_dir) + "/" + c->root;
    c->root_fd = open(c->root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->root_fd < 0) bad("root", "cannot open directory " + c->root + ": " + std::strerror(errno));
    return c.release();
}

}  // namespace atlas::static_files
