// A worker thread: one io_uring, its own SO_REUSEPORT listening sockets, its
// connections and the per-worker state of every module instance. Nothing here
// is shared with other workers except the read-only runtime.
#pragma once

#include <atlas/module.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <forward_list>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chain/access_log.hh"
#include "chain/out_queue.hh"
#include "chain/proxy.hh"
#include "chain/runtime.hh"
#include "chain/stream_proxy.hh"
#include "event/clock.hh"
#include "event/ring.hh"
#include "event/timers.hh"
#include "http/chunked_decoder.hh"
#include "http/request_parser.hh"
#include "net/proxy_protocol.hh"

namespace atlas::chain {

class worker;
struct conn;

// One HTTP request and its response. Pooled per worker and reused.
struct exchange {
    conn *c = nullptr;
    const route_rt *route = nullptr;

    // Request: the head is copied out of the receive buffers so that it outlives them.
    std::vector<char> head_buf;
    http::request_head head{};
    std::vector<http::header_field> req_headers;
    std::forward_list<std::string> req_strings;  // storage for headers added by filters (stable)
    std::string path;                     // normalised
    std::string host;                     // lowercase, without port

    uint64_t start_ms = 0;                // head complete (the access log's duration)
    uint64_t start_us = 0;                // the same in microseconds (latency histograms)

    enum class body_mode : uint8_t { none, length, chunked } body = body_mode::none;
    uint64_t body_left = 0;
    uint64_t body_received = 0;
    http::chunked_decoder chunked;
    bool body_done = true;
    bool body_paused = false;
    bool continue_sent = false;

    // Chain progress.
    std::vector<void *> filter_states;
    size_t filter_pos = 0;  // next filter to run
    bool handler_called = false;
    bool discard_first = false;  // read the body, then call a body-less handler
    bool resume_pending = false;
    int32_t resume_status = ATLAS_CONTINUE;
    bool in_filters = false;
    void *handler_state = nullptr;

    // Response.
    std::string resp_headers;  // "Name: value\r\n" lines set by modules
    uint32_t status = 0;
    bool head_sent = false;
    bool complete = false;   // the whole response is queued
    bool body_allowed = true;
    bool resp_chunked = false;
    int64_t resp_length = -1;
    uint64_t resp_written = 0;
    bool keep_alive = true;
    bool switching = false;  // the proxy may answer 101: its Upgrade was forwarded and accepted

    proxy::call *proxy = nullptr;   // set while host->proxy_forward serves this exchange

    uint32_t pending_segments = 0;  // queued output still referring to this exchange
    bool finished = false;          // done with on the connection; destroy when segments drain

    void reset();
    // The first request field named `lower_name` (lowercase), or nullptr.
    const http::header_field *find_header(std::string_view lower_name) const;
};

struct listen_socket;

// A connection accepted over its listener's limit, not served yet (admission.cc).
struct parked_conn {
    int fd;
    listen_socket *ls;
};

struct alignas(16) listen_socket {  // 16: user_data keeps an op in the low bits
    int fd = -1;
    std::string key;  // the address (listen_key), matched across reloads
    const listener_rt *listener = nullptr;
    bool armed = false;
    bool paused = false;  // its listener is full: not accepting (admission.cc)
    bool handed_off = false;  // closed here, listening on in the process that took over
    worker *owner = nullptr;
};

// The PROXY protocol header a load balancer in front sends first (a listener with
// proxy_protocol = true): its bytes while incomplete, then what it said.
struct proxy_header_state {
    std::string pending;
    net::proxy_protocol::header said;
    bool done = false;
};

// What a transport's handshake settled (host->transport_set_info), for the access log.
struct transport_info {
    std::string protocol, cipher, server_name, alpn;
    bool resumed = false;
};

struct alignas(16) conn {  // 16: user_data keeps an op in the low bits
    int fd = -1;
    int slot = -1;  // registered file slot in the worker's ring, -1 = plain fd
    worker *w = nullptr;
    const listener_rt *listener = nullptr;
    std::shared_ptr<runtime> rt;  // keeps the snapshot this connection started on alive

    // Input not yet consumed (partial heads, pipelined requests, paused bodies).
    std::vector<char> in;
    size_t in_start = 0, in_end = 0;
    uint32_t scan_from = 0;

    exchange *cur = nullptr;
    std::vector<exchange *> retiring;  // finished, waiting for their output to drain
    out_queue out;   // what the chain sends (plain bytes)
    std::unique_ptr<out_queue> wire_;  // with a transport: what it emitted for the socket

    // L4 chains and transports (see l4.hh).
    void *stream_state = nullptr;
    void *transport_state = nullptr;
    const module_instance *transport = nullptr;  // the listener's, or the upstream's `tls`
    bool has_transport = false;
    bool is_stream = false;
    bool shut_wr_after_flush = false;  // stream asked for a half-close once output drains
    bool shut_wr_done = false;
    bool transport_shutdown_sent = false;
    bool eof_told = false;  // the chain has heard that the peer's stream ended (socket or TLS)
    bool info_set = false;  // `info` describes this connection's handshake
    std::unique_ptr<transport_info> info;  // kept across reuse of the object

    // A connection to an upstream server (the proxy's state), not a client.
    void *upstream = nullptr;
    bool connecting = false;   // its connect is still in the kernel
    // A client connection upgraded through the proxy (101): no more HTTP, its bytes go to
    // the upstream connection of its exchange's proxy call and back (proxy.hh).
    bool tunnel = false;
    // L4 proxying (stream_proxy.hh): both connections of a forwarded one point to it.
    stream_proxy::relay *relay = nullptr;
    // Set while a PROXY protocol header is awaited, and kept with what it said.
    std::unique_ptr<proxy_header_state> proxy_header;
    // Plain bytes from the peer into the chain, and from the chain towards the peer
    // (into the socket, or into the transport): the L4 access log's counts.
    uint64_t bytes_in = 0, bytes_out = 0;
    uint64_t opened_ms = 0;  // accepted or connected (ms)

    bool recv_armed = false;
    uint16_t recv_group = 0; // the buffer group of the armed receive (worker::recv_op)
    bool bulk = false;       // a relayed side that moves whole buffers: it receives into bulk_group
    uint8_t short_receives = 0;  // in a row, while bulk
    bool read_paused = false;
    bool peer_eof = false;
    bool send_inflight = false;
    bool poll_inflight = false;
    bool watch_inflight = false;  // an error-only poll while reads are paused (l4::pause_read)
    bool closing = false;      // hard close under way
    bool close_after_flush = false;
    bool lingering = false;    // write side shut, draining input before close
    bool dirty = false;        // in the worker's end-of-turn list
    bool need_process = false; // buffered input waits for processing
    bool head_started = false;

    uint64_t idle_since = 0, head_start = 0, last_send = 0, last_body = 0, linger_start = 0;
    uint32_t requests = 0;

    char peer[64];
    uint8_t peer_len = 0;

    conn *prev = nullptr, *next = nullptr;  // worker's live list

    size_t buffered() const { return in_end - in_start; }
    // An operation on the socket is still in the kernel: the connection cannot be freed yet.
    bool in_kernel() const { return recv_armed || send_inflight || poll_inflight || watch_inflight || connecting; }
    // The queue the kernel reads from: the transport's output when there is one.
    out_queue &wire() { return *wire_; }
    out_queue &socket_queue() { return has_transport ? *wire_ : out; }
    bool output_pending() const { return !out.empty() || (wire_ && !wire_->empty()); }
    uint64_t output_bytes() const { return out.bytes() + (wire_ ? wire_->bytes() : 0); }
};

// A worker's view of one upstream group: the membership it picks from (taken over on
// this thread when the main thread publishes one), and its share of the retry budget.
struct upstream_view {
    std::shared_ptr<const upstream::membership> m;
    uint32_t free_retries = 0;  // left of this second's share of retry_budget.min_per_second
    uint64_t retry_milli = 0;   // retries earned by first attempts, in thousandths
};

// The msghdr + iovecs of one gathered send. The kernel copies them when it takes
// the submission (IORING_FEAT_SUBMIT_STABLE), so they live only until the next
// submit instead of inside every connection.
struct send_slot {
    msghdr msg;
    iovec iov[64];
};

// Members are public on purpose: the HTTP session code and the host API are
// this worker's own code split by job, not outside users.
class alignas(16) worker {  // 16: user_data keeps an op in the low bits
public:
    worker(uint32_t index, uint32_t count, std::shared_ptr<runtime> rt);
    ~worker();
    worker(const worker &) = delete;
    worker &operator=(const worker &) = delete;

    // Starts the thread with its listening sockets (opened by the main thread, one per
    // address; the worker owns them from here, also on failure); returns once its ring
    // is ready and they accept (false + err when they could not be set up).
    bool start(std::vector<new_listen_socket> sockets, std::string &err);
    void join();

    // Thread-safe controls used by the main thread and host->post.
    bool post(std::function<void()> fn);
    void drain();     // stop accepting, finish in-flight work, then exit
    // The same after a takeover: the listening sockets stay open (the new atlasd accepts
    // on them), and idle keep-alive connections get a moment to send one more request.
    void hand_off();
    void stop_now();  // close everything and exit

    static worker *current();

    // --- worker-thread only ---
    void mark_dirty(conn *c);
    exchange *alloc_exchange();
    void free_exchange(exchange *ex);
    const char *peer_of(conn *c);  // "ip:port", NUL-terminated (for logs), cached per connection
    std::string_view peer_address(conn *c) { return {peer_of(c), c->peer_len}; }
    void flush(conn *c);
    void begin_graceful_close(conn *c);
    void hard_close(conn *c);
    // A connection object for `fd` (registered, linked), for accepted and outgoing sockets,
    // using the runtime in use (or `rt`).
    conn *new_conn(int fd, const std::shared_ptr<runtime> &rt = nullptr);
    // Moves connection `c` to runtime `rt` (a pooled upstream connection taken by a
    // request of another config generation).
    void rebind(conn *c, const std::shared_ptr<runtime> &rt);
    // A reload: new connections use `next`; its new listening sockets come ready-made.
    // Connections on older runtimes finish on theirs.
    void adopt(std::shared_ptr<runtime> next, std::vector<new_listen_socket> sockets);
    // Cancels the connection's armed receive, if any (its completion still comes).
    void cancel_recv(conn *c);
    // While its reads are paused nothing would tell of a reset peer: an error-only
    // poll does, and closes the connection (a peer that only ended its stream does not).
    void watch_errors(conn *c, bool on);
    // Stops reading `c` (backpressure), watching for a reset meanwhile, or goes on.
    void pause_read(conn *c, bool paused);
    // A slot of a full listener may have been freed: serve the connections this worker
    // holds back, and accept again where none is left (admission.cc).
    void resume_parked();
    // This worker's view of group `g` (the runtime in use binds it).
    upstream_view &view(const upstream::group &g) { return views_[g.slot]; }
    // The main thread published a membership of group `slot`: take it over.
    void refresh_group(uint32_t slot);

    uint32_t index_;
    uint32_t count_;
    std::shared_ptr<runtime> rt_;
    event::ring ring_;
    event::timer_heap timers_;
    event::date_cache dates_;
    // The loop turn's time, read once per turn: what latencies and timeouts count in.
    uint64_t now_us_ = 0;
    uint64_t now_ms_ = 0;
    uint64_t next_sweep_ = 0;
    std::vector<std::unique_ptr<listen_socket>> listens_;
    std::vector<upstream_view> views_;  // by upstream group slot
    // Every runtime this worker has connections on (and the one in use), with how many:
    // module states of a runtime are destroyed once it is neither in use nor has any.
    struct runtime_use {
        std::shared_ptr<runtime> rt;
        size_t conns = 0;
    };
    std::vector<runtime_use> live_;
    std::vector<conn *> dirty_;
    std::vector<conn *> later_;  // continue sending next turn (fairness)
    std::vector<parked_conn> parked_;
    conn *conns_ = nullptr;
    size_t conn_count_ = 0;
    std::vector<conn *> conn_pool_;
    std::vector<std::vector<out_segment>> ring_pool_;  // segment storage of idle queues
    std::vector<exchange *> exchange_pool_;
    std::vector<std::unique_ptr<send_slot>> send_slots_;
    size_t send_slots_used_ = 0;  // handed out since the last submit
    std::vector<http::header_field> scratch_headers_;
    out_arena_pool arena_pool_;
    proxy::pools pools_;
    // Receive buffers a relay holds until they are sent on (stream_proxy), per group: 0
    // (4 KiB, every other connection's), bulk_group (64 KiB, relayed bulk streams) and
    // relay_group (4 KiB, relayed small messages).
    static constexpr uint16_t bulk_group = 1;
    static constexpr uint16_t relay_group = 2;
    unsigned held_[3] = {0, 0, 0};
    access_log::buffers log_buffers_;
    bool draining_ = false;
    uint64_t drain_started_ = 0;
    uint64_t idle_grace_until_ = 0;  // draining after a takeover: requests on kept-alive connections still served
    bool in_idle_grace() const { return now_ms_ < idle_grace_until_; }
    bool exit_ = false;
    std::atomic<bool> finished_{false};  // the thread is done (read by the main thread)

private:
    void run();
    bool setup(std::string &err);
    void teardown();
    unsigned batch_wait_us() const;  // what this turn's wait may hold on for (worker.cc)
    // The loop turn's clock: read once per turn, and again after a wait that slept.
    void tick_clock();
    static void on_woke(void *ctx);
    static void on_completion(void *ctx, const event::completion &c);
    void handle(const event::completion &c);
    void on_accept(listen_socket *ls, const event::completion &c);
    // A connection the kernel accepted on `ls`, counted against its listener: its chain
    // starts (or its PROXY header is awaited first).
    void serve_accepted(listen_socket *ls, int fd);
    // Admission (admission.cc): an accepted connection over its listener's limit waits,
    // unserved, while the listening socket stops accepting.
    void park(listen_socket *ls, int fd);
    void release_slot(conn *c);
    void drop_parked(const listen_socket *ls);  // nullptr: all
    static void rearm_accept(void *listen_socket);
    void on_recv(conn *c, const event::completion &cq, uint16_t group);
    void pick_buffers(conn *c, uint16_t group, unsigned got);
    static event::op recv_op(uint16_t group);
    void on_send(conn *c, int32_t res);
    void on_poll_out(conn *c, int32_t res);
    void on_watch(conn *c, int32_t res);
    void on_wake(int32_t res);
    void arm_wake();
    void run_mailbox();
    void end_of_turn();
    void sweep();
    void start_drain(bool handing_off = false);
    void close_idle_clients();
    static void end_idle_grace(void *self);
    bool accept_armed() const;  // an accept is still in the kernel (its cancel not yet seen)
    void close_listeners(bool stop_listening = true);
    void close_listener(listen_socket &ls, bool stop_listening = true);
    void add_listener(int fd, const listener_rt &l, std::string key);
    void init_states(runtime &rt);
    void destroy_states(runtime &rt);
    runtime_use *use_of(const runtime *rt);
    void maybe_retire(const runtime *rt);
    void refill_retry_budget();
    void arm_recv(conn *c);
    void send_file_segment(conn *c);
    void complete_bytes(conn *c, uint64_t n);
    void fail_output(conn *c);
    void maybe_free(conn *c);
    void free_conn(conn *c);
    void link(conn *c);
    void unlink(conn *c);

    int wake_fd_ = -1;
    uint64_t wake_buf_ = 0;
    std::mutex mailbox_mu_;
    std::vector<std::function<void()>> mailbox_;
    bool mailbox_open_ = true;

    std::thread thread_;
    std::vector<new_listen_socket> initial_sockets_;  // handed to setup()
    std::mutex start_mu_;
    std::condition_variable start_cv_;
    bool start_done_ = false;
    std::string start_err_;
};

}  // namespace atlas::chain
