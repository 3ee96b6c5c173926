// Internal: merged tree -> snapshot, one function per format and shared section readers.
#pragma once

#include <string>

#include "config/check.hh"
#include "config/model.hh"
#include "config/tree.hh"

namespace atlas::config::detail {

// The new format: [server] [admin] [upstream.NAME] [[listener]].
void build_new(const node &root, checker &ck, snapshot &snap);

// The seed's flat format: [listen] [listen.tls] [[upstreams]] [routing] [static_files].
void build_flat(const node &root, checker &ck, snapshot &snap);

// Sections both formats accept.
void read_server(scope s, server_settings &out);
void read_admin(scope s, admin_settings &out);

// A module the config names without a { module = ... } table (the seed's [listen.tls],
// an upstream's `tls`): `config` becomes its table, `at` its place for messages.
module_ref implied(const std::string &name, const nlohmann::json &config, const node &at, const std::string &key);

// An LB policy short name ("round_robin", seed aliases "weighted", "ip_hash") as the
// module_ref of mod_lb_<policy>; `extra` is the rest of its table (a JSON object).
module_ref lb_module(const std::string &policy, nlohmann::json extra, const node &at,
                     const std::string &key);

// Is `policy` one of the seed's strategy names?
bool is_seed_strategy(const std::string &policy);

}  // namespace atlas::config::detail
