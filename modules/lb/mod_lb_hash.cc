// mod_lb_hash: sticky sessions by weighted rendezvous (highest random weight) hashing.
// Each endpoint scores w / -ln(u), u in (0,1) a hash of (key, endpoint address); the
// highest score wins. A key only moves when its winner leaves: removing one of N servers
// moves about 1/N of the keys (only that server's), adding it back restores the old
// mapping, and the mapping depends on addresses, not on indices or on the worker.
//
// Config: key = "client_ip" (default) | "header:<Name>" | "cookie:<name>". A missing or
// empty header/cookie (or no exchange, as for L4) falls back to the client address.
#include <cmath>
#include <memory>

#include "common.hh"

namespace atlas::lb {
namespace {

enum class key_source { client_ip, header, cookie };

struct hash_config {
    key_source source = key_source::client_ip;
    std::string name;  // header or cookie name
};

// RFC 9110 tchar: header and cookie names are tokens.
bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s) {
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  std::string_view("!#$%&'*+-.^_`|~").find(char(c)) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Value of cookie `name` in a Cookie header ("a=1; b=2"), quotes removed; empty if absent.
std::string_view cookie_value(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        size_t semi = header.find(';');
        std::string_view item = header.substr(0, semi);
        size_t eq = item.find('=');
        if (eq != std::string_view::npos && trim(item.substr(0, eq)) == name) {
            std::string_view v = trim(item.substr(eq + 1));
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
            return v;
        }
        if (semi == std::string_view::npos) break;
        header.remove_prefix(semi + 1);
    }
    return {};
}

// The IP of "ip", "ip:port" or "[ip6]:port", so a client keeps its server across
// connections whatever form the host passes.
std::string_view client_address(std::string_view a) {
    if (!a.empty() && a.front() == '[') {
        size_t end = a.find(']');
        return end == std::string_view::npos ? a : a.substr(1, end - 1);
    }
    size_t colon = a.find(':');
    if (colon != std::string_view::npos && a.find(':', colon + 1) == std::string_view::npos)
        return a.substr(0, colon);
    return a;  // bare IPv6 or no port
}

class hash_policy {
public:
    static constexpr const char *name = "lb_hash";
    using config = hash_config;

    static config *make_config(atlas_slice_t json, std::string &error) {
        std::vector<std::pair<std::string, std::string>> opts;
        if (!parse_options(json, name, {"key"}, opts, error)) return nullptr;
        auto c = std::make_unique<config>();
        for (auto &[key_name, value] : opts) {
            std::string_view v = value;
            bool ok = true;
            if (v == "client_ip") {
                c->source = key_source::client_ip;
            } else if (v.substr(0, 7) == "header:") {
                c->source = key_source::header;
                c->name = v.substr(7);
                ok = is_token(c->name);
            } else if (v.substr(0, 7) == "cookie:") {
                c->source = key_source::cookie;
                c->name = v.substr(7);
                ok = is_token(c->name);
            } else {
                ok = false;
            }
            if (!ok) {
                error = key_name +
                        ": expected \"client_ip\", \"header:<name>\" or \"cookie:<name>\", got \"" + value + "\"";
                return nullptr;
            }
        }
        return c.release();
    }

    explicit hash_policy(const config &c, uint32_t) : cfg_(c) {}

    void set_endpoints(std::vector<endpoint> &&eps) {
        std::vector<uint64_t> hashes(eps.size());
        bool equal = true;
        for (size_t i = 0; i < eps.size(); ++i) {
            hashes[i] = hash_bytes(eps[i].address);
            equal = equal && eps[i].weight == eps[0].weight;
        }
        eps_ = std::move(eps);
        address_hash_ = std::move(hashes);
        equal_weights_ = equal;
    }

    void clear() noexcept {
        eps_.clear();
        address_hash_.clear();
    }

    int32_t pick(const pick_context &ctx) noexcept {
        uint64_t key = hash_bytes(key_value(ctx));
        size_t best = SIZE_MAX;
        uint64_t best_raw = 0;
        double best_score = 0;
        for (size_t i = 0; i < eps_.size(); ++i) {
            if (!candidate(eps_[i], ctx, i)) continue;
            uint64_t raw = mix64(key ^ address_hash_[i]);
            if (equal_weights_) {
                // w / -ln(u) grows with u: with equal weights compare the hashes, no log.
                if (best == SIZE_MAX || raw > best_raw) best = i, best_raw = raw;
                continue;
            }
            double u = (double(raw >> 11) + 0.5) * 0x1p-53;  // in (0, 1), never 0 or 1
            double score = double(eps_[i].weight) / -std::log(u);
            if (best == SIZE_MAX || score > best_score) best = i, best_score = score;
        }
        return best == SIZE_MAX ? -1 : int32_t(best);
    }

private:
    std::string_view key_value(const pick_context &ctx) const noexcept {
        const atlas_host_api_t *h = module_ctx.host;
        if (cfg_.source != key_source::client_ip && ctx.exchange && h && h->header_get) {
            bool cookie = cfg_.source == key_source::cookie;
            std::string_view name = cookie ? std::string_view("Cookie") : std::string_view(cfg_.name);
            atlas_slice_t value{nullptr, 0};
            if (h->header_get(ctx.exchange, ATLAS_REQUEST, atlas::module::slice(name), &value) && value.ptr) {
                std::string_view v(value.ptr, value.len);
                if (cookie) v = cookie_value(v, cfg_.name);
                if (!v.empty()) return v;
            }
        }
        return client_address(ctx.hash_key);
    }

    const config &cfg_;  // lives until config_destroy, after every worker_destroy
    std::vector<endpoint> eps_;
    std::vector<uint64_t> address_hash_;
    bool equal_weights_ = true;
};

}  // namespace
}  // namespace atlas::lb

ATLAS_LB_MODULE(hash_policy, "sticky sessions by weighted rendezvous hashing")
