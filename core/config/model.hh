// The validated configuration model: what the TOML files say, after merging,
// defaults, seed-format translation and checking. Immutable once built.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace atlas::config {

using duration = std::chrono::milliseconds;

// A reference to a module plus its own config table (minus `module`), as JSON text.
struct module_ref {
    std::string name;         // "static" -> mod_static.so
    std::string config_json;  // the table's other keys, canonical JSON object text
    std::string key;          // config path for messages, e.g. "listener.web.route[0].handler"
    std::string file;         // the file that declared it
    uint32_t line = 0;        // where in `file` (0 = unknown), for one-line messages
    std::string base_dir;     // directory of `file`: relative paths in config_json resolve here
};

// Per-listener HTTP limits and timeouts (defaults follow nginx/HAProxy habits).
struct http_limits {
    uint32_t max_request_line = 8192;        // 414 above
    uint32_t max_header_bytes = 16384;       // whole head incl. request line; 431 above
    uint32_t max_headers = 100;              // 431 above
    uint64_t max_body_bytes = 1ull << 30;    // 413 above (1 GiB); 0 = unlimited
    duration header_timeout{10000};          // 408 when the head is not complete in time
    duration idle_timeout{60000};            // keep-alive idle time between requests
    duration body_timeout{60000};            // no body byte for this long: close
    duration send_timeout{60000};            // no send progress for this long: close
    uint32_t max_requests_per_conn = 0;      // 0 = unlimited
};

struct route {
    std::optional<std::string> host;         // exact "a.example" or "*.example"; none = any
    std::string path_prefix = "/";
    std::vector<std::string> methods;        // empty = any
    // Request header conditions, all required: name (case-insensitive) -> exact value,
    // or "*" for "present with any value".
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<module_ref> filters;
    module_ref handler;
    std::string key;                         // "listener.web.route[1]"
};

struct listener {
    std::string name;
    std::vector<std::string> addresses;      // "ip:port", "[ip6]:port"
    std::optional<module_ref> transport;     // e.g. tls
    bool is_http = true;                     // false: L4 chain ending in `stream`
    std::optional<module_ref> stream;        // the L4 terminal when !is_http
    std::vector<route> routes;               // http only, in declaration order
    http_limits limits;
    uint32_t max_connections = 0;            // open connections, all workers; 0 = unlimited
    // Every connection starts with a PROXY protocol header (v1 or v2) from a load
    // balancer in front: its source is the client for logs, hashing and X-Forwarded-For.
    bool proxy_protocol = false;
    // Peers whose forwarding header is believed (CIDR text, checked when the runtime is
    // built), and which header names the client: "x-forwarded-for" or "forwarded".
    std::vector<std::string> trusted_proxies;
    std::string client_address_from = "x-forwarded-for";
    // access_log = "off" (default) | "stderr" | "PATH" | { path = ..., format = "combined" | "json" }
    std::string access_log;                  // "" = off, "stderr", or an absolute file path
    bool access_log_json = false;
    std::string key;                         // "listener.web"
};

struct upstream_server {
    std::string address;                     // "host:port" as written
    uint32_t weight = 1;
};

// Active health checks of an upstream's servers, run from the main thread.
struct health_check {
    bool enabled = false;                    // a `health` table is present
    bool http = true;                        // false: a TCP connect is the whole check
    std::string path = "/";                  // http: the request target
    std::string host;                        // http: Host header; empty = the server's address
    uint32_t status_min = 200, status_max = 399;  // http: statuses that pass
    duration interval{5000};
    duration timeout{2000};
    uint32_t rise = 2;                       // consecutive passes that bring a server up
    uint32_t fall = 3;                       // consecutive failures that take it down
};

// Passive detection: failures seen by real traffic (refused, reset, timed out).
struct passive_check {
    uint32_t fails = 1;                      // consecutive failures that mark a server down; 0 = off
    duration cooldown{10000};                // down this long, then one probe request (no active check)
};

// Circuit breaker per server: opens on consecutive failures or 5xx responses.
struct circuit_breaker {
    uint32_t failures = 0;                   // 0 = off
    duration cooldown{30000};                // open this long, then half-open (one probe request)
};

// Retries to another server, bounded by a budget shared by the upstream's requests.
struct retry_policy {
    uint32_t retries = 1;                    // extra attempts on other servers
    uint32_t budget_percent = 20;            // retries may add this share of the requests...
    uint32_t budget_min_per_second = 10;     // ...or this many per second, whichever is more
    uint64_t replay_body_bytes = 64 * 1024;  // request bodies kept for a replay up to this size
};

struct upstream {
    std::string name;
    module_ref lb;                           // lb = "round_robin" -> mod_lb_round_robin.so
    std::vector<upstream_server> servers;
    uint32_t keepalive_idle_per_worker = 32;
    duration keepalive_idle_timeout{60000};
    duration connect_timeout{5000};
    duration read_timeout{30000};
    duration write_timeout{30000};
    duration tunnel_timeout{3600000};        // an upgraded (WebSocket) connection idle both ways
    // A response head (status line and fields) over this is refused: 502 (nginx's "upstream
    // sent too big header"). A body over max_response_body is refused (0 = unlimited): 502 when
    // its Content-Length says so, else the client connection is cut where it crossed.
    uint32_t max_response_head = 64 * 1024;
    uint64_t max_response_body = 0;
    health_check health;
    passive_check passive;
    circuit_breaker breaker;
    retry_policy retry;
    duration slow_start{0};                  // a server back up ramps its weight over this long
    std::optional<module_ref> tls;           // client-side transport to the servers (mod_tls)
    std::string key;                         // "upstream.api"
};

struct server_settings {
    uint32_t workers = 0;                    // 0 = one per CPU
    std::string module_dir;                  // empty = built-in default
    duration drain_timeout{30000};
    std::string pid_file;                    // empty = none
    bool watch_config = true;                // reload when a config file changes (inotify)
    // Longest a busy worker waits to gather completions into one turn (event::ring,
    // wait_batched), in microseconds; 0 = never. Shorter with few connections (worker).
    uint32_t batch_wait_us = 100;
    // Unprivileged identity to switch to once everything that needs root is open.
    // Resolved when the config is read (an unknown name is a config error).
    bool switch_user = false;                // `user` is set
    std::string user, group;                 // names; group defaults to the user's primary group
    uint32_t uid = 0, gid = 0;
};

struct admin_settings {
    std::string listen = "127.0.0.1:9901";
    bool enabled = false;                    // true when an [admin] table is present
    std::string token_file;                  // absolute path; empty = no token required
    std::string token;                       // the file's content (trimmed), read at load
    std::string key_file;                    // where [admin] was declared, for messages
};

struct snapshot {
    server_settings server;
    admin_settings admin;
    std::vector<listener> listeners;
    std::vector<upstream> upstreams;
    std::vector<std::string> files;          // every file read, in order
    std::string effective_json;              // the merged TOML as JSON (admin GET /config)
};

}  // namespace atlas::config
