// Loads module .so files through the one C ABI entry point and validates what
// they return. Modules are loaded once per path and never unloaded.
#pragma once

#include <sys/types.h>

#include <atlas/module.h>

#include <map>
#include <memory>
#include <string>

namespace atlas::module {

struct loaded_module {
    std::string name;  // "static"
    std::string path;  // "/usr/lib/.../mod_static.so"
    const atlas_module_t *desc = nullptr;
};

class loader {
public:
    explicit loader(const atlas_host_api_t *host) : host_(host) {}

    // Finds mod_<name>.so in dir, loads and validates it. On failure returns nullptr
    // and sets `err` to one line naming the file and the reason.
    const loaded_module *load(const std::string &name, const std::string &dir, std::string &err);

    const std::map<std::string, std::unique_ptr<loaded_module>> &modules() const { return by_path_; }

private:
    const atlas_host_api_t *host_;
    std::map<std::string, std::unique_ptr<loaded_module>> by_path_;
    std::map<std::string, std::string> failed_;  // path -> reason, so it is reported once per use
};

// Checks a descriptor as returned by an entry point; empty string = acceptable.
std::string validate_descriptor(const atlas_module_t *desc);

// Refuses a module file that someone other than root or `euid` could change: group- or
// world-writable, owned by another uid, or in a directory that is. "" = acceptable,
// else one line naming the path and the reason.
std::string check_ownership(const std::string &path, uid_t euid);

// The kinds a module offers, e.g. "http_handler, http_filter".
std::string describe_kinds(const atlas_module_t *desc);

}  // namespace atlas::module
