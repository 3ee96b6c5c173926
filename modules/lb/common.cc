#include "common.hh"

#include <nlohmann/json.hpp>
#include <unordered_map>

namespace atlas::lb {

atlas::module::context module_ctx;

std::vector<endpoint> copy_endpoints(const atlas_lb_endpoint_t *endpoints, size_t count) {
    std::vector<endpoint> out;
    if (!endpoints || !count) return out;
    // A host newer than this module may hand bigger structs: step by its struct_size.
    size_t stride = endpoints[0].struct_size >= sizeof(atlas_lb_endpoint_t) ? endpoints[0].struct_size
                                                                             : sizeof(atlas_lb_endpoint_t);
    out.resize(count);
    const auto *base = reinterpret_cast<const unsigned char *>(endpoints);
    for (size_t i = 0; i < count; ++i) {
        const auto *e = reinterpret_cast<const atlas_lb_endpoint_t *>(base + i * stride);
        if (e->address.ptr) out[i].address.assign(e->address.ptr, e->address.len);
        out[i].weight = e->weight ? e->weight : 1;  // the ABI promises >= 1; never divide the load by 0
        out[i].usable = e->usable;
    }
    return out;
}

bool same_members(const std::vector<endpoint> &a, const std::vector<endpoint> &b) noexcept {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].address != b[i].address) return false;
    return true;
}

std::vector<uint32_t> remap_counts(const std::vector<endpoint> &old_eps, const std::vector<uint32_t> &old_counts,
                                   const std::vector<endpoint> &new_eps) {
    std::vector<uint32_t> out(new_eps.size(), 0);
    if (same_members(old_eps, new_eps) && old_counts.size() == new_eps.size()) return old_counts;
    std::unordered_map<std::string_view, uint32_t> by_address;
    for (size_t i = 0; i < old_eps.size() && i < old_counts.size(); ++i) by_address[old_eps[i].address] += old_counts[i];
    for (size_t i = 0; i < new_eps.size(); ++i) {
        auto it = by_address.find(new_eps[i].address);
        if (it != by_address.end()) {
            out[i] = it->second;
            by_address.erase(it);  // a duplicated address inherits the count once
        }
    }
    return out;
}

void report_error(atlas_error_t *err, std::string_view message) noexcept {
    const atlas_host_api_t *h = module_ctx.host;
    if (h && h->error_set) h->error_set(err, atlas::module::slice(message));
    else atlas::module::set_error(err, message);
}

bool parse_options(atlas_slice_t json, std::string_view module_name,
                   std::initializer_list<std::string_view> allowed,
                   std::vector<std::pair<std::string, std::string>> &out, std::string &error) {
    std::string_view text = atlas::module::view(json);
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        error = "the policy configuration is not valid JSON";
        return false;
    }
    if (!j.is_object()) {
        error = "must be a table";
        return false;
    }
    for (auto &[name, value] : j.items()) {
        bool known = false;
        for (std::string_view a : allowed) known = known || a == name;
        if (!known) {
            error = name + ": unknown option for " + std::string(module_name);
            if (allowed.size() == 0) {
                error += " (it takes none)";
            } else {
                error += " (expected";
                const char *sep = " ";
                for (std::string_view a : allowed) {
                    error += sep;
                    error += a;
                    sep = ", ";
                }
                error += ")";
            }
            return false;
        }
        if (!value.is_string()) {
            error = name + ": must be a string";
            return false;
        }
        out.emplace_back(name, value.get<std::string>());
    }
    return true;
}

}  // namespace atlas::lb
