// Internal: combining atlas.toml and conf.d/*.toml into one tree (DESIGN §3).
#include "config/tree.hh"

namespace atlas::config::detail {

namespace {

void merge_at(node &into, node &&from, const std::string &path, std::vector<diagnostic> &errors) {
    for (auto &m : from.members) {
        std::string key = path.empty() ? m.key : path + "." + m.key;
        node *have = into.find(m.key);
        if (!have) {
            into.members.push_back(std::move(m));
        } else if (have->is(node::kind::table) && m.value.is(node::kind::table)) {
            merge_at(*have, std::move(m.value), key, errors);
        } else if (have->is(node::kind::array) && m.value.is(node::kind::array)) {
            // [[listener]] in conf.d adds listeners; `servers` adds servers.
            for (auto &item : m.value.items) have->items.push_back(std::move(item));
        } else {
            // First definition wins so later checks still see one consistent value.
            errors.push_back({m.value.where() + ": " + key + ": set in " + have->where() + " and again in " +
                                  m.value.where(),
                              m.value.src ? m.value.src->name : std::string(), m.value.line});
        }
    }
}

}  // namespace

void merge(node &into, node &&from, std::vector<diagnostic> &errors) {
    merge_at(into, std::move(from), "", errors);
}

}  // namespace atlas::config::detail
