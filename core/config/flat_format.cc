// The seed's flat format ([listen] mode = "http" | "tcp" | "static") translated into
// the same model as the new format, so the seed's example configs run unchanged.
#include "config/address.hh"
#include "config/build.hh"

namespace atlas::config::detail {

namespace {

// A module the flat format implies (tls, proxy, static, tcp), located at the flat
// key that asked for it so module errors point somewhere the user wrote.

std::vector<upstream_server> read_servers(checker &ck, const node &arr) {
    std::vector<upstream_server> out;
    for (std::size_t i = 0; i < arr.items.size(); ++i) {
        const node &t = arr.items[i];
        std::string key = index_key("upstreams", i);
        if (!ck.table(t, key)) continue;
        scope s(ck, t, key);
        s.allow_only({"name", "address", "port", "weight"});
        (void)s.string("name");  // informational in the seed; checked for type only
        auto address = s.string("address");
        auto port = s.integer("port", 1, 65535);
        auto weight = s.integer("weight", 1, UINT32_MAX);
        if (!s.get("address")) s.fail("address", "required (e.g. address = \"127.0.0.1\")");
        if (!s.get("port")) s.fail("port", "required (e.g. port = 3000)");
        if (!address || !port) continue;
        upstream_server srv;
        srv.address = join_host_port(*address, static_cast<uint32_t>(*port));
        if (!valid_server_address(srv.address)) {
            s.fail("address", "bad address \"" + *address + "\" (a host name or an IP address, without the port)");
            continue;
        }
        if (weight) srv.weight = static_cast<uint32_t>(*weight);
        out.push_back(std::move(srv));
    }
    return out;
}

}  // namespace

void build_flat(const node &root, checker &ck, snapshot &snap) {
    scope top(ck, root, "");
    top.allow_only({"listen", "upstreams", "routing", "static_files", "server", "admin", "listener"});
    if (const node *l = top.get("listener"))
        ck.fail(*l, "listener", "[[listener]] cannot be mixed with the seed's flat [listen] table (at " +
                                    root.find("listen")->where() + "); use one format");
    const node *server = top.table("server");
    if (server) read_server(scope(ck, *server, "server"), snap.server);
    if (const node *t = top.table("admin")) read_admin(scope(ck, *t, "admin"), snap.admin);

    const node &lt = *root.find("listen");
    scope ls(ck, lt, "listen");
    ls.allow_only({"address", "port", "mode", "workers", "tls"});

    listener l;
    l.name = "default";
    l.key = "listen";

    std::string address = "0.0.0.0";
    bool address_ok = true;
    if (auto a = ls.string("address")) {
        std::string_view bare = *a;
        if (bare.starts_with('[') && bare.ends_with(']')) bare = bare.substr(1, bare.size() - 2);
        address_ok = is_ipv4(bare) || is_ipv6(bare);
        if (address_ok)
            address = std::string(bare);
        else
            ls.fail("address", "bad address \"" + *a + "\" (a literal IP such as \"0.0.0.0\" or \"::\")");
    }
    auto port = ls.integer("port", 0, 65535);
    if (!ls.get("port")) ls.fail("port", "required (e.g. port = 8080)");
    if (address_ok && port) l.addresses.push_back(join_host_port(address, static_cast<uint32_t>(*port)));

    std::string mode = ls.string("mode").value_or("http");
    const node &mode_at = ls.get("mode") ? *ls.get("mode") : lt;
    if (mode != "http" && mode != "tcp" && mode != "static") {
        ls.fail("mode", "must be \"http\", \"tcp\" or \"static\" (got \"" + mode + "\")");
        mode.clear();
    }

    if (auto w = ls.integer("workers", 0, 4096)) {
        if (const node *sw = server ? server->find("workers") : nullptr)
            ls.fail("workers", "conflicts with server.workers at " + sw->where());
        else
            snap.server.workers = static_cast<uint32_t>(*w);
    }

    if (const node *tls = ls.table("tls")) {
        scope ts(ck, *tls, "listen.tls");
        ts.allow_only({"cert", "key"});
        auto cert = ts.path("cert");
        auto key = ts.path("key");
        if (!ts.get("cert")) ts.fail("cert", "required (PEM certificate chain)");
        if (!ts.get("key")) ts.fail("key", "required (PEM private key)");
        if (cert && key) l.transport = implied("tls", {{"cert", *cert}, {"key", *key}}, *tls, "listen.tls");
    }

    std::string strategy = "round_robin";
    const node *strategy_at = nullptr;
    if (const node *routing = top.table("routing")) {
        scope rs(ck, *routing, "routing");
        rs.allow_only({"strategy"});
        strategy_at = rs.get("strategy") ? rs.get("strategy") : routing;
        if (auto st = rs.string("strategy")) {
            if (is_seed_strategy(*st))
                strategy = *st;
            else
                rs.fail("strategy", "unknown strategy \"" + *st +
                                        "\" (use round_robin, weighted_round_robin, weighted, random, "
                                        "least_connections or ip_hash)");
        }
    }

    std::vector<upstream_server> servers;
    bool servers_ok = !top.get("upstreams");  // don't add "at least one" to another error
    if (const node *ups = top.array("upstreams")) {
        servers = read_servers(ck, *ups);
        servers_ok = servers.size() == ups->items.size();
    }

    std::optional<std::string> root_dir;
    const node *static_at = nullptr;
    if (const node *sf = top.table("static_files")) {
        scope ss(ck, *sf, "static_files");
        ss.allow_only({"root"});
        root_dir = ss.path("root");
        static_at = sf;
        if (!ss.get("root")) static_at = nullptr;
    }

    if (mode == "http" || mode == "tcp") {
        if (servers.empty() && servers_ok)
            ck.fail(mode_at, "upstreams", "at least one [[upstreams]] entry is required when listen.mode = \"" + mode + "\"");
        upstream up;
        up.name = "default";
        up.key = "upstreams";
        up.lb = lb_module(strategy, nlohmann::json::object(), strategy_at ? *strategy_at : lt, "routing.strategy");
        up.servers = std::move(servers);
        snap.upstreams.push_back(std::move(up));
        const nlohmann::json cfg = {{"upstream", "default"}};
        if (mode == "tcp") {
            l.is_http = false;
            l.stream = implied("tcp", cfg, mode_at, "listen");
        } else {
            route r;
            r.key = "listen";
            r.handler = implied("proxy", cfg, mode_at, "listen");
            l.routes.push_back(std::move(r));
        }
    } else if (mode == "static") {
        if (!static_at) {
            ck.fail(mode_at, "static_files.root", "required when listen.mode = \"static\"");
        } else if (root_dir) {
            route r;
            r.key = "static_files";
            r.handler = implied("static", {{"root", *root_dir}}, *static_at, "static_files");
            l.routes.push_back(std::move(r));
        }
    }
    // Only a sound listener reaches the snapshot (see schema.cc).
    const bool sound = !mode.empty() && !l.addresses.empty() && (!ls.get("tls") || l.transport) &&
                       (l.is_http ? !l.routes.empty() : l.stream.has_value());
    if (sound) snap.listeners.push_back(std::move(l));
}

}  // namespace atlas::config::detail
