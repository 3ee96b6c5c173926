// Finding and reading the config files, then parse -> merge -> build (one of two formats).
#include "config/loader.hh"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/build.hh"
#include "config/check.hh"
#include "config/tree.hh"

namespace atlas::config {

namespace fs = std::filesystem;
using detail::node;

namespace {

struct input {
    std::string text;
    std::shared_ptr<const detail::source> src;
};

std::string strip_dot_slash(std::string p) {
    while (p.starts_with("./") && p.size() > 2) p.erase(0, 2);
    return p;
}

bool read_file(const fs::path &path, std::string &out, std::string &why) {
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        why = errno ? std::strerror(errno) : "cannot open";
        return false;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
        why = "read error";
        return false;
    }
    out = buf.str();
    return true;
}

load_result build(std::vector<input> inputs, std::vector<std::string> files, std::vector<diagnostic> errors) {
    load_result result;
    result.snap.files = std::move(files);
    std::optional<node> root;
    bool parsed = true;
    for (auto &in : inputs) {
        auto tree = detail::parse_toml(in.text, in.src, errors);
        if (!tree) {
            parsed = false;  // keep going: report every file's syntax errors at once
            continue;
        }
        if (!root)
            root = std::move(*tree);
        else
            detail::merge(*root, std::move(*tree), errors);
    }
    if (!parsed || !root) {
        result.errors = std::move(errors);
        return result;
    }
    root->line = 0;  // problems with the whole document name the file only

    detail::checker ck(errors);
    const node *listen = root->find("listen");
    if (listen && listen->is(node::kind::table))
        detail::build_flat(*root, ck, result.snap);
    else
        detail::build_new(*root, ck, result.snap);
    result.snap.effective_json = detail::to_json<nlohmann::ordered_json>(*root).dump(2);

    // Report in file order then line order, like a compiler, whatever the stage that found it.
    auto rank = [&](const diagnostic &d) {
        for (std::size_t i = 0; i < inputs.size(); ++i)
            if (inputs[i].src->name == d.file) return std::pair(i, d.line);
        return std::pair(std::size_t(0), uint32_t(0));
    };
    std::stable_sort(errors.begin(), errors.end(),
                     [&](const diagnostic &a, const diagnostic &b) { return rank(a) < rank(b); });
    result.errors = std::move(errors);
    return result;
}

std::string absolute_file(const fs::path &p) { return detail::absolute_path(p.string()); }

}  // namespace

load_result load_text(const std::string &text, const std::string &name, const std::string &base_dir) {
    auto src = std::make_shared<detail::source>(detail::source{name, detail::absolute_path(base_dir)});
    return build({{text, src}}, {name}, {});
}

load_result load(const std::string &path) {
    std::vector<input> inputs;
    std::vector<std::string> files;
    std::vector<diagnostic> errors;
    auto fail = [&](const std::string &msg) {
        errors.push_back({msg});
        load_result r;
        r.errors = std::move(errors);
        return r;
    };

    std::error_code ec;
    fs::path p(path);
    auto st = fs::status(p, ec);
    if (ec || !fs::exists(st)) return fail(path + ": cannot read: " + (ec ? ec.message() : "No such file or directory"));

    if (fs::is_directory(st)) {
        std::string dir = detail::absolute_path(path);
        fs::path main = p / "atlas.toml";
        std::string text, why;
        if (!fs::exists(main, ec)) return fail(main.string() + ": missing (a config directory needs atlas.toml)");
        if (!read_file(main, text, why)) return fail(main.string() + ": cannot read: " + why);
        inputs.push_back({std::move(text), std::make_shared<detail::source>(detail::source{"atlas.toml", dir})});
        files.push_back(absolute_file(main));

        fs::path confd = p / "conf.d";
        if (fs::exists(confd, ec)) {
            if (!fs::is_directory(confd, ec)) return fail(confd.string() + ": not a directory");
            std::vector<std::string> names;
            for (const auto &e : fs::directory_iterator(confd, ec)) {
                std::string name = e.path().filename().string();
                // Editor droppings (".#x.toml" locks, hidden swap files) are never config.
                if (name.starts_with('.') || !name.ends_with(".toml")) continue;
                if (!fs::is_regular_file(e.path(), ec)) continue;
                names.push_back(name);
            }
            if (ec) return fail(confd.string() + ": cannot list: " + ec.message());
            std::sort(names.begin(), names.end());
            std::string confd_dir = detail::absolute_path(confd.string());
            for (const auto &name : names) {
                fs::path f = confd / name;
                std::string body;
                if (!read_file(f, body, why)) {
                    errors.push_back({"conf.d/" + name + ": cannot read: " + why});
                    continue;
                }
                inputs.push_back({std::move(body), std::make_shared<detail::source>(detail::source{"conf.d/" + name, confd_dir})});
                files.push_back(absolute_file(f));
            }
        }
    } else {
        std::string text, why;
        if (!read_file(p, text, why)) return fail(path + ": cannot read: " + why);
        fs::path parent = p.parent_path();
        std::string dir = detail::absolute_path(parent.empty() ? "." : parent.string());
        inputs.push_back({std::move(text), std::make_shared<detail::source>(detail::source{strip_dot_slash(path), dir})});
        files.push_back(absolute_file(p));
    }
    return build(std::move(inputs), std::move(files), std::move(errors));
}

}  // namespace atlas::config
