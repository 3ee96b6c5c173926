/*
 * atlas/module.h — the one public interface between atlasd and its modules.
 *
 * ABI RULES (read before changing anything in this file)
 *
 *  1. Pure C11: only <stdint.h>, <stddef.h> and <stdbool.h>. No C++ types, no
 *     liburing, no TLS library types. A module built against this header alone
 *     (pkg-config atlas-module) must load into any atlasd of the same ABI major.
 *  2. A module exports exactly one symbol:
 *         const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host);
 *     Build everything else with -fvisibility=hidden. The returned descriptor is
 *     static and lives for the whole process: modules are never unloaded.
 *     Return NULL (after host->log) to refuse loading.
 *  3. Versioning: ATLAS_ABI_MAGIC identifies an Atlas module at all.
 *     ATLAS_ABI_MAJOR must match the host exactly; it changes only when a layout
 *     or a meaning breaks. ATLAS_ABI_MINOR counts additions; the host accepts a
 *     module whose minor is <= its own. The ABI version is not the release version.
 *  4. Every struct that crosses the boundary starts with `uint32_t struct_size`
 *     (set it to sizeof). Fields are only ever appended. A reader uses a field
 *     only when ATLAS_HAS_FIELD(struct, ptr, field) holds. A NULL hook means
 *     "not provided".
 *  5. Handles (atlas_exchange_t, atlas_worker_t, atlas_timer_t, ...) are opaque.
 *     Slices handed to a module are owned by the host and valid only for the
 *     duration of the callback they were passed to (or the host call that
 *     returned them): copy what you need to keep.
 *  6. Threads: config_create/config_destroy run on the main thread. Every other
 *     hook runs on the worker thread that owns the connection, and host calls
 *     taking an exchange, connection or timer must be made on that thread.
 *     host->log and host->post are safe from any thread.
 *  7. Hooks must not throw (C++ modules: see atlas/module.hpp), must not block
 *     the worker and must not make socket syscalls: all I/O goes through the
 *     host so that the core owns every submission to the kernel.
 *  8. Errors a user can cause are reported by writing one line into the
 *     host-provided atlas_error_t (naming the config key), never by allocating
 *     memory the host would have to free.
 */
#ifndef ATLAS_MODULE_H
#define ATLAS_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATLAS_ABI_MAGIC 0x41544C4Du /* "ATLM" */
#define ATLAS_ABI_MAJOR 1u
#define ATLAS_ABI_MINOR 4u

/* Compile-time feature test for modules: ATLAS_ABI_AT_LEAST(1, 2). */
#define ATLAS_ABI_AT_LEAST(major, minor)                                                          \
    (ATLAS_ABI_MAJOR == (major) && ATLAS_ABI_MINOR >= (minor))

/* True when the struct pointed to by p is large enough to contain `field`. */
#define ATLAS_HAS_FIELD(type, p, field)                                                           \
    ((p)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

#if defined(_WIN32)
#define ATLAS_EXPORT __declspec(dllexport)
#else
#define ATLAS_EXPORT __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- basics */

/* Bytes owned by someone else; not NUL-terminated. */
typedef struct atlas_slice {
    const char *ptr;
    size_t len;
} atlas_slice_t;

/* Fixed-size, host-allocated error report. Write a single line into message. */
#define ATLAS_ERROR_MESSAGE_MAX 512
typedef struct atlas_error {
    uint32_t struct_size;
    int32_t code;
    char message[ATLAS_ERROR_MESSAGE_MAX];
} atlas_error_t;

/* Status codes returned by fallible hooks and host calls. */
typedef enum atlas_status {
    ATLAS_OK = 0,
    ATLAS_CONTINUE = 0, /* filters: go on with the next filter / the handler */
    ATLAS_STOP = 1,     /* filters: paused; resume later with host->exchange_resume */
    ATLAS_DONE = 2,     /* filters: a response was produced; skip the rest of the chain */
    ATLAS_ERROR = -1,   /* generic failure */
    ATLAS_EINVAL = -2,  /* bad argument or call made in the wrong state */
    ATLAS_ENOMEM = -3,  /* out of memory or a configured limit reached */
    ATLAS_ECLOSED = -4  /* the peer or exchange is gone */
} atlas_status_t;

typedef enum atlas_log_level {
    ATLAS_LOG_ERROR = 0,
    ATLAS_LOG_WARN = 1,
    ATLAS_LOG_INFO = 2,
    ATLAS_LOG_DEBUG = 3
} atlas_log_level_t;

/* Opaque handles. */
typedef struct atlas_worker atlas_worker_t;     /* one worker thread */
typedef struct atlas_exchange atlas_exchange_t; /* one HTTP request and its response */
typedef struct atlas_conn atlas_conn_t;         /* one client connection (stream/transport) */
typedef struct atlas_timer atlas_timer_t;       /* a one-shot timer on a worker */
typedef struct atlas_upstream atlas_upstream_t; /* a named upstream group (ABI 1.1) */

/* A gather element for writes; the memory belongs to the caller. */
typedef struct atlas_iovec {
    const void *base;
    size_t len;
} atlas_iovec_t;

/* Completion of an asynchronous host operation: status is ATLAS_OK or negative. */
typedef void (*atlas_done_fn)(void *user, int32_t status);
typedef void (*atlas_task_fn)(void *user);

/* ------------------------------------------------------- HTTP exchange view */

typedef enum atlas_header_side {
    ATLAS_REQUEST = 0,
    ATLAS_RESPONSE = 1
} atlas_header_side_t;

/* Filled by host->exchange_request_info; host writes at most out->struct_size bytes. */
typedef struct atlas_request_info {
    uint32_t struct_size;
    uint32_t version_minor;  /* HTTP/1.x */
    atlas_slice_t method;    /* as received, e.g. "GET" */
    atlas_slice_t target;    /* request-target as received */
    atlas_slice_t path;      /* percent-decoded, dot segments removed, always starts with '/' */
    atlas_slice_t query;     /* after '?', without it; empty when absent */
    atlas_slice_t host;      /* Host header (or authority of an absolute-form target) */
    atlas_slice_t route_prefix; /* path_prefix of the matched route */
    atlas_slice_t peer;      /* client address, "ip:port" or "[ip6]:port" */
    int64_t content_length;  /* -1 when the body is chunked or absent */
    bool chunked;            /* request body uses chunked transfer coding */
    bool has_body;           /* a body follows (content_length > 0 or chunked) */
    bool keep_alive;         /* the connection stays open after this exchange */
    bool is_head;            /* method is HEAD: the host drops any body written */
} atlas_request_info_t;

/* Flags for response writes. */
#define ATLAS_WRITE_END 0x1u /* this is the last piece of the response body */
#define ATLAS_WRITE_REF 0x2u /* host keeps a reference instead of copying; the
                                memory must stay valid until `done` is called */

/* How host->proxy_forward sends a request upstream (ABI 1.1). */
#define ATLAS_PROXY_X_FORWARDED_FOR 0x01u   /* add the client (and keep a trusted list) */
#define ATLAS_PROXY_X_FORWARDED_PROTO 0x02u /* http or https, as the client came in */
#define ATLAS_PROXY_X_FORWARDED_HOST 0x04u  /* the Host the client asked for */
#define ATLAS_PROXY_FORWARDED 0x08u         /* RFC 7239 Forwarded: for=;proto=;host= */
#define ATLAS_PROXY_WEBSOCKET 0x10u         /* ABI 1.2: tunnel WebSocket upgrades (RFC 6455) */

typedef struct atlas_proxy_options {
    uint32_t struct_size;
    atlas_upstream_t *upstream; /* from host->upstream_find */
    uint32_t flags;             /* ATLAS_PROXY_* */
    atlas_slice_t strip_prefix; /* removed from the path at a segment boundary; empty = none */
    atlas_slice_t host;         /* Host sent upstream; empty = the client's */
    /* ABI 1.2: other Upgrade protocols to tunnel besides WebSocket, as a comma-separated
       list of protocol names ("foo, bar/2"; the version is ignored); empty = none. An
       upgrade goes upstream only when the client offers a protocol allowed here (or
       WebSocket with ATLAS_PROXY_WEBSOCKET), and is tunnelled only when the upstream's
       101 names one the client offered and is allowed. */
    atlas_slice_t upgrade;
} atlas_proxy_options_t;

/* How host->stream_forward relays a connection (ABI 1.4). */
#define ATLAS_STREAM_PROXY_V1 0x1u /* the server connection starts with a PROXY protocol v1 line */
#define ATLAS_STREAM_PROXY_V2 0x2u /* ... with a PROXY protocol v2 header (v1 and v2: EINVAL) */

typedef struct atlas_stream_options {
    uint32_t struct_size;
    atlas_upstream_t *upstream; /* from host->upstream_find */
    uint32_t flags;             /* ATLAS_STREAM_* */
    /* Both connections close after this long without a byte moving either way;
       0 = 10 minutes. */
    uint64_t idle_timeout_ms;
} atlas_stream_options_t;

/* What a transport's handshake settled (ABI 1.3), for access logs and handlers. Empty
   slices for what does not apply. The host copies it. */
typedef struct atlas_transport_info {
    uint32_t struct_size;
    atlas_slice_t protocol;    /* e.g. "TLSv1.3" */
    atlas_slice_t cipher;      /* e.g. "TLS13-CHACHA20-POLY1305-SHA256" */
    atlas_slice_t server_name; /* SNI the client sent */
    atlas_slice_t alpn;        /* the application protocol agreed, e.g. "http/1.1" */
    bool resumed;              /* an earlier session was resumed (no full handshake) */
} atlas_transport_info_t;

/* ------------------------------------------------------------- host API */

struct atlas_module; /* the descriptor, defined below */

/* Services atlasd offers to modules. Passed to atlas_module_entry; keep the pointer. */
typedef struct atlas_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    atlas_slice_t host_version; /* release version of atlasd, for logs only */

    /* Logging, safe from any thread. The module name is prefixed by the host. */
    void (*log)(const struct atlas_module *self, atlas_log_level_t level, atlas_slice_t message);

    /* Worker identity, valid on a worker thread. */
    atlas_worker_t *(*current_worker)(void);
    uint32_t (*worker_index)(const atlas_worker_t *worker);
    uint32_t (*worker_count)(void);

    /* Run fn(user) on `worker` soon (any thread may call). ATLAS_ECLOSED if it is stopping. */
    int32_t (*post)(atlas_worker_t *worker, atlas_task_fn fn, void *user);

    /* One-shot timers on the calling worker. A cancelled timer never fires. The handle
       is invalid once the timer has fired or been cancelled: cancel only live timers. */
    atlas_timer_t *(*timer_start)(uint64_t delay_ms, atlas_task_fn fn, void *user);
    void (*timer_cancel)(atlas_timer_t *timer);

    /* Monotonic milliseconds and the cached IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT")
       of the current second, both refreshed once per event-loop turn. */
    uint64_t (*now_ms)(void);
    atlas_slice_t (*http_date)(void);

    /* --- HTTP exchange: request side --- */
    int32_t (*exchange_request_info)(atlas_exchange_t *ex, atlas_request_info_t *out);
    /* Headers of either side, in order, names as received (compare case-insensitively). */
    size_t (*header_count)(atlas_exchange_t *ex, atlas_header_side_t side);
    bool (*header_at)(atlas_exchange_t *ex, atlas_header_side_t side, size_t index,
                      atlas_slice_t *name, atlas_slice_t *value);
    /* First value of `name` (case-insensitive). false when absent. */
    bool (*header_get)(atlas_exchange_t *ex, atlas_header_side_t side, atlas_slice_t name,
                       atlas_slice_t *value);
    /* Add, replace all, or remove all of `name`. Names that are not tokens and values
       with CR, LF or NUL are refused (ATLAS_EINVAL). Response headers can change until
       the response head is sent; the framing headers Content-Length, Transfer-Encoding
       and Connection belong to the host and are refused on the response side. */
    int32_t (*header_add)(atlas_exchange_t *ex, atlas_header_side_t side, atlas_slice_t name,
                          atlas_slice_t value);
    int32_t (*header_set)(atlas_exchange_t *ex, atlas_header_side_t side, atlas_slice_t name,
                          atlas_slice_t value);
    size_t (*header_remove)(atlas_exchange_t *ex, atlas_header_side_t side, atlas_slice_t name);

    /* Request body flow control: while paused, on_request_body is not called. */
    void (*request_body_pause)(atlas_exchange_t *ex, bool paused);

    /* --- HTTP exchange: response side ---
       Either send a complete simple response with `respond`, or start a response with
       `response_start` (status + the response headers set so far, plus Date/Server and
       framing added by the host) and then stream the body with `response_write` /
       `response_sendfile`, the last call carrying ATLAS_WRITE_END.
       content_length >= 0 fixes the length; -1 lets the host choose chunked coding
       (or close-delimited for HTTP/1.0). Writes complete in order; `done` (may be
       NULL for copied writes) fires once the bytes are handed to the kernel or the
       exchange is aborted (status ATLAS_ECLOSED). */
    /* `content_type` (when not empty) replaces a Content-Type set earlier. */
    int32_t (*respond)(atlas_exchange_t *ex, uint32_t status, atlas_slice_t content_type,
                       atlas_slice_t body);
    int32_t (*response_start)(atlas_exchange_t *ex, uint32_t status, int64_t content_length);
    int32_t (*response_write)(atlas_exchange_t *ex, const atlas_iovec_t *iov, size_t iovcnt,
                              uint32_t flags, atlas_done_fn done, void *user);
    /* Send `length` bytes of regular file `fd` from `offset`. The fd stays owned by the
       module and must stay open until `done`. */
    int32_t (*response_sendfile)(atlas_exchange_t *ex, int fd, uint64_t offset, uint64_t length,
                                 uint32_t flags, atlas_done_fn done, void *user);
    /* Send a complete, ready-made HTTP/1.1 response (status line, head and body) with no
       further processing: the fast path for cached responses. Only allowed before
       response_start, when no response filter is active on the route
       (ATLAS_EINVAL otherwise: fall back to response_start). `head_only_len` is the
       length of the head part, sent alone for HEAD requests. Always ATLAS_WRITE_REF
       semantics: the memory must stay valid until `done`. */
    int32_t (*response_raw)(atlas_exchange_t *ex, const void *bytes, size_t len,
                            size_t head_only_len, atlas_done_fn done, void *user);

    /* Filters that returned ATLAS_STOP call this (on the worker) to go on. */
    void (*exchange_resume)(atlas_exchange_t *ex, int32_t status);

    /* Write a one-line message into err (printf-style formatting is the caller's). */
    void (*error_set)(atlas_error_t *err, atlas_slice_t message);

    /* --- connections (stream handlers and transports) --- */
    int32_t (*conn_send)(atlas_conn_t *conn, const atlas_iovec_t *iov, size_t iovcnt,
                         uint32_t flags, atlas_done_fn done, void *user);
    void (*conn_shutdown_write)(atlas_conn_t *conn);
    void (*conn_close)(atlas_conn_t *conn);
    void (*conn_pause_read)(atlas_conn_t *conn, bool paused);
    atlas_slice_t (*conn_peer)(atlas_conn_t *conn);
    /* Transports only: hand decrypted bytes up the chain / encrypted bytes to the socket. */
    int32_t (*transport_deliver)(atlas_conn_t *conn, atlas_slice_t plain);
    int32_t (*transport_emit)(atlas_conn_t *conn, atlas_slice_t wire);

    /* During config_create only: the directory of the config file that declared the
       module's table, so relative paths in it resolve like the operator expects. */
    atlas_slice_t (*config_dir)(void);

    /* --- ABI 1.1: reverse proxying --- */
    /* During config_create only: the upstream group `name` ([upstream.NAME]) of the
       config being loaded, NULL when it has none. Valid as long as the module config. */
    atlas_upstream_t *(*upstream_find)(atlas_slice_t name);
    /* From on_request: hand the exchange to the host's HTTP/1.1 proxy. It picks a server
       through the upstream's LB policy, reuses a pooled keep-alive connection or
       connects, sends the request re-serialised from the parsed one (hop-by-hop fields
       removed, framing restated, forwarding headers per opt->flags), streams the request
       body (the handler's on_request_body is not called for this exchange), parses the
       response and streams it back as this exchange's response, response filters
       included. Failures answer 502 (no usable server, refused, reset, bad response)
       or 504 (timeout) while nothing was sent, else abort the exchange. on_abort and
       request_destroy are still called. ATLAS_EINVAL when the exchange already
       responded or opt is malformed. From ABI 1.2, an allowed Upgrade answered with 101
       turns the connection into a two-way byte tunnel with the upstream connection
       until either side closes (half-closes are passed on). */
    int32_t (*proxy_forward)(atlas_exchange_t *ex, const atlas_proxy_options_t *opt);

    /* --- ABI 1.3: transports --- */
    /* The peer ended its plain stream (TLS close_notify): the chain sees what a half-close
       of the socket would show it. Later deliveries are ignored. */
    void (*transport_eof)(atlas_conn_t *conn);
    /* Record what the handshake settled (see atlas_transport_info_t). */
    void (*transport_set_info)(atlas_conn_t *conn, const atlas_transport_info_t *info);

    /* --- ABI 1.4: L4 proxying --- */
    /* From a stream handler's conn_open (or a later hook, before anything was sent on the
       connection): hand the client connection to the host's L4 proxy. It picks a server
       through the upstream's LB policy (the hash key is the client address, the one a
       PROXY protocol header named when the listener accepts those), connects within the
       upstream's connect timeout (a refused, failed or timed-out connect goes to another
       server within the upstream's retries and budget; the client's bytes wait), sends
       the PROXY header opt->flags asks for, and relays bytes both ways with bounded
       buffers until both sides have ended their streams (a half-close is passed on once
       the other side has everything), either side fails, or opt->idle_timeout_ms passes
       with no byte either way. An upstream `tls` table makes the server side TLS. The
       handler's on_data and on_eof are not called for this connection any more; its
       conn_close still is. When no server can be reached the client connection closes.
       ATLAS_EINVAL for bad options, a connection that is not a stream handler's, or
       one forwarded already; ATLAS_ECLOSED when it is closing. */
    int32_t (*stream_forward)(atlas_conn_t *conn, const atlas_stream_options_t *opt);
} atlas_host_api_t;

/* ---------------------------------------------------------- module kinds */

/* Every kind begins with the same lifecycle:
     config_create  main thread, at load, at `atlasd -t` and at reload. `json` is the
                    module's config table (minus `module`) as JSON text, `key` the config
                    path of that table (e.g. "listener.web.route[0].handler") for messages.
                    Returns an immutable config shared by all workers, or NULL after
                    writing the reason into err.
     config_destroy main thread, when no worker uses the config any more.
     worker_init    per worker thread, returns per-worker state (may be NULL).
     worker_destroy per worker thread, when the worker stops. */
#define ATLAS_KIND_LIFECYCLE                                                                      \
    void *(*config_create)(atlas_slice_t json, atlas_slice_t key, atlas_error_t * err);          \
    void (*config_destroy)(void *config);                                                        \
    void *(*worker_init)(void *config, atlas_worker_t *worker);                                  \
    void (*worker_destroy)(void *config, void *worker_state);

/* Terminal HTTP handler (mod_static, mod_proxy): produces the response. */
typedef struct atlas_http_handler {
    uint32_t struct_size;
    ATLAS_KIND_LIFECYCLE
    /* A request head arrived and routed here. Respond now or later through the host.
       *request_state may be set; it is passed to the other hooks. Return ATLAS_OK, or
       ATLAS_ERROR to make the host answer 500 (if nothing was sent yet). */
    int32_t (*on_request)(void *config, void *worker_state, atlas_exchange_t *ex,
                          void **request_state);
    /* A piece of the request body (decoded from chunked if needed); last=true at its end.
       When NULL the host discards request bodies for this handler. */
    void (*on_request_body)(void *request_state, atlas_exchange_t *ex, atlas_slice_t data,
                            bool last);
    /* The client went away or the exchange failed before the response completed.
       ex is valid during the call only; pending `done` callbacks have already fired. */
    void (*on_abort)(void *request_state, atlas_exchange_t *ex);
    /* The exchange is finished (after completion or abort, and after every `done` of its
       writes has fired): free request_state. Called once for each on_request. */
    void (*request_destroy)(void *request_state);
} atlas_http_handler_t;

/* HTTP filter (e.g. headers): runs before the handler on the request head and, in
   reverse order, on the response head. */
typedef struct atlas_http_filter {
    uint32_t struct_size;
    ATLAS_KIND_LIFECYCLE
    /* Returns ATLAS_CONTINUE, ATLAS_STOP (then host->exchange_resume), ATLAS_DONE (the
       filter responded itself) or ATLAS_ERROR (host answers 500). */
    int32_t (*on_request_head)(void *config, void *worker_state, atlas_exchange_t *ex,
                               void **filter_state);
    /* Called just before the response head is serialised; may edit response headers. */
    int32_t (*on_response_head)(void *config, void *filter_state, atlas_exchange_t *ex,
                                uint32_t *status);
    void (*filter_destroy)(void *filter_state);
} atlas_http_filter_t;

/* Terminal L4 handler (mod_tcp): owns a whole client connection. */
typedef struct atlas_stream_handler {
    uint32_t struct_size;
    ATLAS_KIND_LIFECYCLE
    void *(*conn_open)(void *config, void *worker_state, atlas_conn_t *conn);
    /* Bytes from the client (after the transport, if any). */
    void (*on_data)(void *conn_state, atlas_conn_t *conn, atlas_slice_t data);
    /* The client shut down its sending side. */
    void (*on_eof)(void *conn_state, atlas_conn_t *conn);
    /* The connection is gone; free conn_state. */
    void (*conn_close)(void *conn_state);
} atlas_stream_handler_t;

/* Transport (mod_tls): sits between the socket and the chain. It never touches the fd:
   wire bytes arrive through on_wire, plain bytes to send through on_plain; it answers
   with host->transport_deliver (plain, up) and host->transport_emit (wire, down). */
typedef struct atlas_transport {
    uint32_t struct_size;
    ATLAS_KIND_LIFECYCLE
    void *(*conn_open)(void *config, void *worker_state, atlas_conn_t *conn);
    int32_t (*on_wire)(void *conn_state, atlas_conn_t *conn, atlas_slice_t wire);
    int32_t (*on_plain)(void *conn_state, atlas_conn_t *conn, const atlas_iovec_t *iov,
                        size_t iovcnt);
    /* The chain is closing the connection: emit close_notify or similar. */
    void (*on_shutdown)(void *conn_state, atlas_conn_t *conn);
    void (*conn_close)(void *conn_state);
    /* ABI 1.3, optional: the client side, for connections atlasd opens to upstream
       servers (an upstream's `tls` table). client_config_create parses that table
       (config_destroy, worker_init and worker_destroy then serve its config as for any
       other); client_open is called once the socket is connected and starts the
       handshake (emitting its first flight through host->transport_emit). The other
       hooks then work as on the server side; plain bytes the chain queues before the
       handshake completes are held by the transport. It calls host->transport_set_info
       once the handshake completes: a connection that closes before that counts as a
       failed handshake, which the proxy retries on another server like a failed connect. */
    void *(*client_config_create)(atlas_slice_t json, atlas_slice_t key, atlas_error_t *err);
    void *(*client_open)(void *config, void *worker_state, atlas_conn_t *conn);
} atlas_transport_t;

/* One upstream server as a load-balancing policy sees it. */
typedef struct atlas_lb_endpoint {
    uint32_t struct_size;
    atlas_slice_t address; /* "ip:port" */
    uint32_t weight;       /* >= 1 */
    bool usable;           /* healthy and not draining */
} atlas_lb_endpoint_t;

/* What a pick may use. tried marks endpoints already attempted for this request. */
typedef struct atlas_lb_context {
    uint32_t struct_size;
    atlas_slice_t hash_key;   /* the client address as the core resolved it (mod_lb_hash reads
                                 header/cookie keys itself through `exchange`, ignores a :port) */
    const uint8_t *tried;     /* bitmap over endpoint indices, may be NULL */
    const uint32_t *inflight; /* in-flight requests per endpoint (all workers), may be NULL */
    atlas_exchange_t *exchange; /* NULL for L4 connections */
} atlas_lb_context_t;

/* Load-balancing policy (mod_lb_*): a service used by handlers, not a chain member.
   The per-worker instance is what worker_init returns; endpoints arrive through
   set_endpoints (first call before any pick, then on every membership or health
   change). */
typedef struct atlas_lb_policy {
    uint32_t struct_size;
    ATLAS_KIND_LIFECYCLE
    void (*set_endpoints)(void *worker_state, const atlas_lb_endpoint_t *endpoints, size_t count);
    /* Index of the chosen endpoint, or -1 when none is usable. */
    int32_t (*pick)(void *worker_state, const atlas_lb_context_t *ctx);
    /* Optional: a request to endpoint `index` started / finished. */
    void (*on_take)(void *worker_state, uint32_t index);
    void (*on_release)(void *worker_state, uint32_t index);
} atlas_lb_policy_t;

/* ------------------------------------------------------ module descriptor */

typedef struct atlas_module {
    uint32_t struct_size;
    uint32_t magic;     /* ATLAS_ABI_MAGIC */
    uint32_t abi_major; /* ATLAS_ABI_MAJOR */
    uint32_t abi_minor; /* ATLAS_ABI_MINOR the module was built with */
    const char *name;   /* short name, e.g. "static" for mod_static.so */
    const char *version;     /* the module's own release version */
    const char *description; /* one line */
    /* The kinds this module offers; NULL = not offered. At least one is required. */
    const atlas_http_handler_t *http_handler;
    const atlas_http_filter_t *http_filter;
    const atlas_stream_handler_t *stream_handler;
    const atlas_transport_t *transport;
    const atlas_lb_policy_t *lb_policy;
} atlas_module_t;

/* Initialiser for the descriptor's fixed head. */
#define ATLAS_MODULE_HEAD                                                                         \
    sizeof(atlas_module_t), ATLAS_ABI_MAGIC, ATLAS_ABI_MAJOR, ATLAS_ABI_MINOR

/* The one exported symbol. */
#define ATLAS_MODULE_ENTRY_SYMBOL "atlas_module_entry"
typedef const atlas_module_t *(*atlas_module_entry_fn)(const atlas_host_api_t *host);
ATLAS_EXPORT const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ATLAS_MODULE_H */
