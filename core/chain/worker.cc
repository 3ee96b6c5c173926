#include "chain/worker.hh"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "chain/l4.hh"
#include "chain/log.hh"
#include "chain/session.hh"
#include "http/chars.hh"

namespace atlas::chain {

namespace {
thread_local worker *tl_worker = nullptr;

constexpr unsigned ring_entries = 1024;
constexpr unsigned recv_buffers = 1024;
constexpr unsigned recv_buffer_size = 4096;
// A relayed stream (stream_proxy) that fills a 4 KiB buffer moves to big buffers: one
// receive per 64 KiB of a bulk stream instead of sixteen. Few of them, so the ones in
// use stay in the CPU's cache: 4 bulk streams through one worker moved ~35% more bytes
// per CPU-second with 32 buffers than with 128 (8 MiB cycled through), and 32 KiB
// buffers did worse than 64 KiB. Small messages stay in 4 KiB buffers: a ring of their
// own, smaller than the one every other connection uses and so hotter in the cache
// (keep-alive HTTP through the relay at 100 connections: ~7% more requests per CPU-second
// with 256 buffers than with the shared 1024; the same at 500 connections).
constexpr unsigned bulk_buffers = 32;
constexpr unsigned relay_buffers = 256;
constexpr unsigned bulk_buffer_size = 64 * 1024;
// A bulk stream goes back to 4 KiB buffers after this many short receives in a row.
constexpr uint8_t short_receives_to_leave_bulk = 4;
constexpr uint64_t sweep_interval_ms = 1000;
constexpr uint64_t file_bytes_per_turn = 4u << 20;  // fairness between connections
constexpr uint64_t handoff_idle_grace_ms = 1000;
}  // namespace

void exchange::reset() {
    c = nullptr;
    route = nullptr;
    head_buf.clear();
    head = http::request_head{};
    req_headers.clear();
    req_strings.clear();
    path.clear();
    host.clear();
    body = body_mode::none;
    body_left = body_received = 0;
    chunked.reset();
    body_done = true;
    body_paused = continue_sent = false;
    filter_states.clear();
    filter_pos = 0;
    handler_called = resume_pending = in_filters = discard_first = false;
    resume_status = ATLAS_CONTINUE;
    handler_state = nullptr;
    proxy = nullptr;
    resp_headers.clear();
    status = 0;
    head_sent = complete = resp_chunked = false;
    body_allowed = true;
    resp_length = -1;
    resp_written = 0;
    keep_alive = true;
    switching = false;
    pending_segments = 0;
    finished = false;
}

const http::header_field *exchange::find_header(std::string_view lower_name) const {
    for (const http::header_field &h : req_headers)
        if (http::chars::iequals(h.name, lower_name)) return &h;
    return nullptr;
}

worker::worker(uint32_t index, uint32_t count, std::shared_ptr<runtime> rt)
    : index_(index), count_(count), rt_(std::move(rt)) {}

worker::~worker() {
    join();
    for (conn *c : conn_pool_) delete c;
    for (exchange *e : exchange_pool_) delete e;
    if (wake_fd_ >= 0) close(wake_fd_);
}

worker *worker::current() { return tl_worker; }

bool worker::start(std::vector<new_listen_socket> sockets, std::string &err) {
    initial_sockets_ = std::move(sockets);
    wake_fd_ = eventfd(0, EFD_CLOEXEC);
    if (wake_fd_ < 0) {
        for (const new_listen_socket &n : initial_sockets_) close(n.fd);
        initial_sockets_.clear();
        err = std::string("eventfd: ") + std::strerror(errno);
        return false;
    }
    thread_ = std::thread([this] { run(); });
    std::unique_lock lk(start_mu_);
    start_cv_.wait(lk, [this] { return start_done_; });
    if (!start_err_.empty()) {
        err = start_err_;
        lk.unlock();
        join();
        return false;
    }
    return true;
}

void worker::join() {
    if (thread_.joinable()) thread_.join();
}

bool worker::post(std::function<void()> fn) {
    {
        std::lock_guard lk(mailbox_mu_);
        if (!mailbox_open_) return false;
        mailbox_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    ssize_t r = write(wake_fd_, &one, sizeof one);
    (void)r;
    return true;
}

void worker::drain() {
    post([this] { start_drain(); });
}

void worker::hand_off() {
    post([this] { start_drain(true); });
}

void worker::stop_now() {
    post([this] {
        start_drain();
        for (conn *c = conns_; c;) {
            conn *n = c->next;
            hard_close(c);
            c = n;
        }
    });
}

bool worker::setup(std::string &err) {
    std::vector<new_listen_socket> sockets = std::move(initial_sockets_);
    auto fail = [&] {
        for (const new_listen_socket &n : sockets) close(n.fd);
        return false;
    };
    if (!ring_.init(ring_entries, recv_buffers, recv_buffer_size, err)) return fail();
    if (!ring_.add_buffer_group(bulk_group, bulk_buffers, bulk_buffer_size, err)) return fail();
    if (!ring_.add_buffer_group(relay_group, relay_buffers, recv_buffer_size, err)) return fail();
    // Registered slots for client sockets, as many as the fd limit allows.
    rlimit nofile{};
    getrlimit(RLIMIT_NOFILE, &nofile);
    ring_.enable_fixed_files(unsigned(std::min<rlim_t>(nofile.rlim_cur, 65536)));
    // Pin to one CPU of those the process may use (so `taskset -c 1 atlasd` keeps its
    // workers on CPU 1): the worker's caches, ring and connections stay together.
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0) {
        std::vector<int> cpus;
        for (int i = 0; i < CPU_SETSIZE; ++i)
            if (CPU_ISSET(i, &allowed)) cpus.push_back(i);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[index_ % cpus.size()], &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    for (const new_listen_socket &n : sockets) add_listener(n.fd, rt_->listeners[n.listener], n.key);
    live_.push_back({rt_, 0});
    init_states(*rt_);
    for (const upstream_rt &u : rt_->upstreams) refresh_group(u.group->slot);
    refill_retry_budget();
    arm_wake();
    return true;
}

void worker::add_listener(int fd, const listener_rt &l, std::string key) {
    auto ls = std::make_unique<listen_socket>();
    ls->fd = fd;
    ls->key = std::move(key);
    ls->listener = &l;
    ls->owner = this;
    ring_.multishot_accept(ls->fd, event::make_user_data(ls.get(), event::op::accept));
    ls->armed = true;
    listens_.push_back(std::move(ls));
}

void worker::init_states(runtime &rt) {
    std::vector<void *> &states = rt.worker_states[index_];
    states.assign(rt.instances.size(), nullptr);
    for (auto &inst : rt.instances)
        if (inst->life.worker_init)
            states[inst->slot] = inst->life.worker_init(inst->config, reinterpret_cast<atlas_worker_t *>(this));
    uint32_t max_headers = uint32_t(scratch_headers_.empty() ? 0 : scratch_headers_.size() - 1);
    for (const listener_rt &l : rt.listeners) max_headers = std::max(max_headers, l.cfg->limits.max_headers);
    scratch_headers_.resize(max_headers + 1);
}

void worker::destroy_states(runtime &rt) {
    const std::vector<void *> &states = rt.worker_states[index_];
    for (auto &inst : rt.instances)
        if (inst->life.worker_destroy)
            inst->life.worker_destroy(inst->config, states.empty() ? nullptr : states[inst->slot]);
}

void worker::teardown() {
    access_log::flush(*this);
    for (runtime_use &u : live_) destroy_states(*u.rt);
    close_listeners();
}

worker::runtime_use *worker::use_of(const runtime *rt) {
    for (runtime_use &u : live_)
        if (u.rt.get() == rt) return &u;
    return nullptr;
}

// A runtime that is no longer in use and has no connection left on this worker: its
// module states go, and the main thread hears that this worker is done with it.
void worker::maybe_retire(const runtime *rt) {
    runtime_use *u = use_of(rt);
    if (!u || u->conns || u->rt == rt_) return;
    access_log::flush(*this);  // lines for its log files go out before the files close
    std::shared_ptr<runtime> gone = std::move(u->rt);
    live_.erase(live_.begin() + (u - live_.data()));
    destroy_states(*gone);
    // Our reference goes before the main thread hears of it: the runtime must be freed
    // there (module configs are destroyed on the main thread), which holds it until then.
    std::atomic<uint32_t> &done = gone->workers_done;
    gone.reset();
    done.fetch_add(1, std::memory_order_release);
}

void worker::rebind(conn *c, const std::shared_ptr<runtime> &rt) {
    if (c->rt == rt) return;
    const runtime *old = c->rt.get();
    if (runtime_use *u = use_of(old)) --u->conns;
    c->rt = rt;
    if (runtime_use *u = use_of(rt.get())) ++u->conns;
    maybe_retire(old);
}

void worker::adopt(std::shared_ptr<runtime> next, std::vector<new_listen_socket> sockets) {
    if (draining_) {  // no new connections are coming: nothing to switch to
        for (const new_listen_socket &n : sockets) close(n.fd);
        next->workers_done.fetch_add(1, std::memory_order_release);
        return;
    }
    init_states(*next);
    // Listening sockets on an address the new config keeps go on accepting for it; the
    // others close. New addresses come with their sockets.
    for (auto &ls : listens_) {
        if (ls->fd < 0) continue;
        if (const listener_rt *target = listener_on(*next, ls->key)) ls->listener = target;
        else close_listener(*ls);
    }
    for (const new_listen_socket &n : sockets) add_listener(n.fd, next->listeners[n.listener], n.key);
    std::shared_ptr<runtime> old = rt_;
    rt_ = next;
    live_.push_back({next, 0});
    // The new policy instances start empty: each gets the membership this worker uses
    // (which may already be the newest, if its refresh came before this).
    for (const upstream_rt &u : next->upstreams) {
        refresh_group(u.group->slot);
        const upstream_view &v = view(*u.group);
        if (u.lb && u.lb->lb->set_endpoints)
            u.lb->lb->set_endpoints(next->state(index_, u.lb->slot), v.m->endpoints.data(), v.m->endpoints.size());
    }
    refill_retry_budget();
    maybe_retire(old.get());
}

void worker::run() {
    tl_worker = this;
    std::string err;
    bool ok = setup(err);
    {
        std::lock_guard lk(start_mu_);
        start_err_ = ok ? std::string() : (err.empty() ? "worker setup failed" : err);
        start_done_ = true;
    }
    start_cv_.notify_all();
    if (!ok) {
        close_listeners();
        ring_.close();
        finished_ = true;
        return;
    }
    tick_clock();
    next_sweep_ = now_ms_ + sweep_interval_ms;
    while (!exit_) {
        int64_t wait = timers_.wait_ms(now_ms_, int64_t(next_sweep_ > now_ms_ ? next_sweep_ - now_ms_ : 0));
        bool slept = dirty_.empty() && later_.empty();
        ring_.set_batch_wait(batch_wait_us());
        ring_.run_once(slept ? wait : 0, &worker::on_completion, this, &worker::on_woke);
        send_slots_used_ = 0;  // submitted: the kernel has its own copy of every msghdr
        if (!slept) tick_clock();  // else on_woke did, before the completions
        timers_.expire(now_ms_);
        if (now_ms_ >= next_sweep_) {
            sweep();
            next_sweep_ = now_ms_ + sweep_interval_ms;
        }
        end_of_turn();
        if (draining_ && conn_count_ == 0 && (!accept_armed() || now_ms_ >= drain_started_ + 2000)) exit_ = true;
    }
    {
        std::lock_guard lk(mailbox_mu_);
        mailbox_open_ = false;
    }
    teardown();
    ring_.close();
    tl_worker = nullptr;
    finished_ = true;
}

// The configured batch wait (event::ring::set_batch_wait), shortened with few
// connections: a request's round trip through a worker grows with the connections
// sharing it, and the wait is held to a small share of that (half a microsecond per
// connection). Below 10 us a wait is not worth its timer.
unsigned worker::batch_wait_us() const {
    size_t us = std::min<size_t>(rt_->snap->server.batch_wait_us, conn_count_ / 2);
    return us < 10 ? 0 : unsigned(us);
}

void worker::tick_clock() {
    now_us_ = event::monotonic_us();
    now_ms_ = now_us_ / 1000;
    dates_.refresh();
}

void worker::on_woke(void *ctx) { static_cast<worker *>(ctx)->tick_clock(); }

void worker::on_completion(void *ctx, const event::completion &c) {
    static_cast<worker *>(ctx)->handle(c);
}

void worker::handle(const event::completion &c) {
    switch (event::user_data_op(c.user_data)) {
        case event::op::accept:
            on_accept(event::user_data_ptr<listen_socket>(c.user_data), c);
            break;
        case event::op::recv:
            on_recv(event::user_data_ptr<conn>(c.user_data), c, 0);
            break;
        case event::op::recv_bulk:
            on_recv(event::user_data_ptr<conn>(c.user_data), c, bulk_group);
            break;
        case event::op::recv_relay:
            on_recv(event::user_data_ptr<conn>(c.user_data), c, relay_group);
            break;
        case event::op::send:
            on_send(event::user_data_ptr<conn>(c.user_data), c.res);
            break;
        case event::op::poll_out:
            on_poll_out(event::user_data_ptr<conn>(c.user_data), c.res);
            break;
        case event::op::watch:
            on_watch(event::user_data_ptr<conn>(c.user_data), c.res);
            break;
        case event::op::wake:
            on_wake(c.res);
            break;
        case event::op::connect: {
            conn *uc = event::user_data_ptr<conn>(c.user_data);
            if (uc->upstream) proxy::on_connected(*this, uc, c.res);
            else stream_proxy::on_connected(*this, uc, c.res);
            if (uc->closing) maybe_free(uc);
            break;
        }
        case event::op::ignore:
            break;
    }
}

void worker::arm_wake() {
    ring_.read(wake_fd_, &wake_buf_, sizeof wake_buf_, event::make_user_data(this, event::op::wake));
}

void worker::on_wake(int32_t) {
    run_mailbox();
    if (!exit_) arm_wake();
}

void worker::run_mailbox() {
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lk(mailbox_mu_);
        tasks.swap(mailbox_);
    }
    for (auto &t : tasks) t();
}

void worker::link(conn *c) {
    c->prev = nullptr;
    c->next = conns_;
    if (conns_) conns_->prev = c;
    conns_ = c;
    ++conn_count_;
}

void worker::unlink(conn *c) {
    if (c->prev) c->prev->next = c->next;
    else conns_ = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = nullptr;
    --conn_count_;
}

void worker::on_accept(listen_socket *ls, const event::completion &cq) {
    if (cq.res >= 0) {
        // Closed (drain, or a reload dropped its address): refused. After a takeover the
        // socket still listens, and one taken just before the cancel is a client to serve.
        if ((draining_ || ls->fd < 0) && !ls->handed_off) {
            close(cq.res);
        } else if (ls->listener->gate->take(ls->listener->cfg->max_connections)) {
            serve_accepted(ls, cq.res);
        } else {
            park(ls, cq.res);
        }
    } else if (cq.res != -ECANCELED && cq.res != -EBADF && cq.res != -EINVAL) {
        // EMFILE and friends: the multishot stays armed or is re-armed below.
        log::rate_limited_warn("accept failed: %s", std::strerror(-cq.res));
    }
    if (!cq.more()) {
        ls->armed = false;
        if (draining_ || ls->fd < 0 || ls->paused) return;
        if (cq.res == -EMFILE || cq.res == -ENFILE || cq.res == -ENOMEM || cq.res == -ENOBUFS) {
            // Out of descriptors or memory: re-arming at once would spin; wait a little
            // (connections closing in the meantime free what we need).
            timers_.start(now_ms_ + 100, &worker::rearm_accept, ls);
            return;
        }
        rearm_accept(ls);
    }
}

void worker::serve_accepted(listen_socket *ls, int fd) {
    conn *c = new_conn(fd);
    c->listener = ls->listener;
    listener_shard &st = c->listener->stats[index_];
    st.accepted.add();
    st.open.add();
    if (c->listener->cfg->proxy_protocol) {
        // The chain starts once the load balancer's header says whom this connection carries.
        c->proxy_header = std::make_unique<proxy_header_state>();
        arm_recv(c);
    } else if (l4::open(*this, c)) {
        arm_recv(c);
    } else {
        hard_close(c);
    }
}

conn *worker::new_conn(int fd, const std::shared_ptr<runtime> &rt) {
    conn *c;
    if (conn_pool_.empty()) {
        c = new conn;
    } else {
        c = conn_pool_.back();
        conn_pool_.pop_back();
    }
    c->fd = fd;
    c->slot = ring_.register_fd(fd);
    c->out.set_storage_pool(&ring_pool_);
    c->w = this;
    c->rt = rt ? rt : rt_;
    if (runtime_use *u = use_of(c->rt.get())) ++u->conns;
    c->idle_since = c->opened_ms = now_ms_;
    link(c);
    return c;
}

void worker::rearm_accept(void *p) {
    auto *ls = static_cast<listen_socket *>(p);
    worker *w = ls->owner;
    if (ls->armed || w->draining_ || ls->fd < 0 || ls->paused) return;
    w->ring_.multishot_accept(ls->fd, event::make_user_data(ls, event::op::accept));
    ls->armed = true;
}

void worker::arm_recv(conn *c) {
    if (c->recv_armed || c->closing || c->peer_eof || c->read_paused || c->connecting) return;
    c->recv_group = c->relay ? (c->bulk ? bulk_group : relay_group) : 0;
    ring_.recv_multishot(c->fd, c->slot, event::make_user_data(c, recv_op(c->recv_group)), c->recv_group);
    c->recv_armed = true;
}

// Which buffers a relayed side receives into next: a full 4 KiB buffer makes it bulk, a
// run of short receives small again. A change re-arms its receive.
void worker::pick_buffers(conn *c, uint16_t group, unsigned got) {
    bool bulk = c->bulk;
    if (group != bulk_group) {
        if (got == recv_buffer_size) bulk = true;  // (receives still in flight after a change count for nothing)
    } else if (got >= recv_buffer_size) {
        c->short_receives = 0;
    } else if (++c->short_receives >= short_receives_to_leave_bulk) {
        bulk = false;
    }
    if (bulk == c->bulk) return;
    c->bulk = bulk;
    c->short_receives = 0;
    cancel_recv(c);  // re-armed at the end of the turn, in the other group
}

event::op worker::recv_op(uint16_t group) {
    return group == bulk_group ? event::op::recv_bulk : group == relay_group ? event::op::recv_relay : event::op::recv;
}

void worker::cancel_recv(conn *c) {
    if (c->recv_armed) ring_.cancel(event::make_user_data(c, recv_op(c->recv_group)));
}

void worker::on_recv(conn *c, const event::completion &cq, uint16_t group) {
    bool more = cq.more();
    if (!more) c->recv_armed = false;
    if (cq.res > 0 && cq.has_buffer()) {
        uint16_t bid = cq.buffer_id();
        char *data = ring_.buffer(bid, group);
        bool kept = false;
        if (c->upstream && !c->has_transport) {
            if (!c->closing) proxy::on_data(*this, c, data, size_t(cq.res));
        } else if (c->relay && !c->has_transport && !c->closing && !c->lingering && !c->eof_told) {
            c->bytes_in += uint64_t(cq.res);
            kept = stream_proxy::on_buffer(*this, c, data, size_t(cq.res), bid, group);
            pick_buffers(c, group, unsigned(cq.res));
        } else if (!c->closing && !c->lingering) {
            l4::on_wire(*this, c, data, size_t(cq.res));
        }
        if (!kept) ring_.recycle(bid, group);
    } else if (cq.has_buffer()) {
        ring_.recycle(cq.buffer_id(), group);
    }
    if (c->closing) {
        if (!c->recv_armed) maybe_free(c);
        return;
    }
    if (cq.res == 0) {
        c->peer_eof = true;
        if (c->lingering) {
            hard_close(c);
            return;
        }
        l4::on_eof(*this, c);
    } else if (cq.res < 0 && cq.res != -ENOBUFS && cq.res != -ECANCELED) {
        hard_close(c);  // reset by peer and similar
        return;
    }
    if (!c->recv_armed && !c->closing) {
        // A multishot receive ends on ENOBUFS or CQ pressure: re-arm at the end of the turn.
        mark_dirty(c);
    }
}

void worker::mark_dirty(conn *c) {
    if (!c->dirty) {
        c->dirty = true;
        dirty_.push_back(c);
    }
}

void worker::end_of_turn() {
    // Work done here may mark connections dirty again (they are then visited again
    // in this same loop): index loop, not iterators. Freeing happens only in the
    // closing branch, so nothing below can see its connection vanish.
    for (size_t i = 0; i < dirty_.size(); ++i) {
        conn *c = dirty_[i];
        c->dirty = false;
        if (c->closing) {
            if (!c->in_kernel()) free_conn(c);
            continue;
        }
        if (c->need_process) session::process(*this, c);
        if (!c->closing) flush(c);
        if (!c->closing && !c->recv_armed && !c->peer_eof && !c->read_paused) arm_recv(c);
    }
    dirty_.clear();
    // Connections that used up their file-sending budget continue next turn.
    for (conn *c : later_) mark_dirty(c);
    later_.clear();
}

void worker::flush(conn *c) {
    if (c->send_inflight || c->poll_inflight || c->closing || c->connecting) return;
    if (c->has_transport) {
        l4::pump(*this, c);
        if (c->closing) return;
    }
    out_queue &q = c->socket_queue();
    // Zero-length segments only carry completions: fire them in order.
    while (!q.empty() && q.front().remaining() == 0 && !q.front().is_file()) {
        out_segment s = q.front();
        q.pop();
        session::segment_done(*this, s, ATLAS_OK);
        if (c->closing) return;
    }
    if (q.empty()) {
        if (!q.arena.empty()) q.arena.reset(arena_pool_);
        // An idle keep-alive connection keeps no segment storage.
        if (!c->cur && c->retiring.empty() && !c->output_pending()) q.give_storage(ring_pool_);
        if (c->output_pending()) {
            mark_dirty(c);  // the chain queued more meanwhile
            return;
        }
        if (l4::on_drained(*this, c)) {
            mark_dirty(c);  // the transport queued a shutdown record: send it first
            return;
        }
        if (c->close_after_flush && !c->lingering) begin_graceful_close(c);
        return;
    }
    if (q.front().is_file()) {
        send_file_segment(c);
        return;
    }
    // One buffer (a cached response, most often): plain send, no msghdr to import.
    size_t first = 0;
    while (q.at(first).len == 0) ++first;
    size_t more = first + 1;
    while (more < q.size() && !q.at(more).is_file() && q.at(more).len == 0) ++more;
    if (more == q.size() || q.at(more).is_file()) {
        ring_.send(c->fd, c->slot, q.at(first).data, q.at(first).len, 0, event::make_user_data(c, event::op::send));
        c->send_inflight = true;
        return;
    }
    if (send_slots_used_ == send_slots_.size()) send_slots_.push_back(std::make_unique<send_slot>());
    send_slot &ss = *send_slots_[send_slots_used_++];
    size_t n = 0;
    for (size_t i = first; i < q.size() && n < std::size(ss.iov); ++i) {
        out_segment &s = q.at(i);
        if (s.is_file()) break;
        if (s.len == 0) continue;
        ss.iov[n].iov_base = const_cast<char *>(s.data);
        ss.iov[n].iov_len = s.len;
        ++n;
    }
    ss.msg = msghdr{};
    ss.msg.msg_iov = ss.iov;
    ss.msg.msg_iovlen = n;
    ring_.sendmsg(c->fd, c->slot, &ss.msg, 0, event::make_user_data(c, event::op::send));
    c->send_inflight = true;
}

void worker::complete_bytes(conn *c, uint64_t n) {
    out_queue &q = c->socket_queue();
    if (!c->has_transport) c->bytes_out += n;  // with one, l4::pump counts what it takes
    q.consumed(n);
    while (!q.empty()) {
        out_segment &s = q.front();
        if (s.is_file()) {
            if (s.file_left > 0) break;
        } else if (n < s.len || (s.len > 0 && n == 0)) {
            s.data += n;
            s.len -= size_t(n);
            break;
        } else {
            n -= s.len;
        }
        out_segment done = s;
        q.pop();
        session::segment_done(*this, done, ATLAS_OK);
        if (c->closing) return;
    }
}

void worker::on_send(conn *c, int32_t res) {
    c->send_inflight = false;
    if (c->closing) {
        maybe_free(c);
        return;
    }
    if (res < 0) {
        if (res == -EAGAIN || res == -EINTR) {
            mark_dirty(c);
            return;
        }
        hard_close(c);
        return;
    }
    c->last_send = now_ms_;
    complete_bytes(c, uint64_t(res));
    if (c->closing) return;
    mark_dirty(c);
}

void worker::send_file_segment(conn *c) {
    uint64_t budget = file_bytes_per_turn;
    // Files reach the socket queue only without a transport (it reads them itself).
    while (!c->out.empty() && c->out.front().is_file()) {
        out_segment &s = c->out.front();
        while (s.file_left > 0) {
            off_t off = off_t(s.file_off);
            size_t chunk = s.file_left > (1u << 20) ? (1u << 20) : size_t(s.file_left);
            ssize_t r = sendfile(c->fd, s.fd, &off, chunk);
            if (r > 0) {
                s.file_off += uint64_t(r);
                s.file_left -= uint64_t(r);
                c->out.consumed(uint64_t(r));
                c->last_send = now_ms_;
                if (uint64_t(r) >= budget) {
                    later_.push_back(c);  // let other connections run; continue next turn
                    return;
                }
                budget -= uint64_t(r);
                continue;
            }
            if (r < 0 && errno == EAGAIN) {
                ring_.poll_add(c->fd, c->slot, POLLOUT, event::make_user_data(c, event::op::poll_out));
                c->poll_inflight = true;
                return;
            }
            if (r < 0 && errno == EINTR) continue;
            // r == 0: the file shrank under us; anything else is a socket error.
            if (r == 0) log::rate_limited_warn("file shrank while being sent; closing connection");
            hard_close(c);
            return;
        }
        out_segment done = s;
        c->out.pop();
        session::segment_done(*this, done, ATLAS_OK);
        if (c->closing) return;
    }
    mark_dirty(c);  // memory segments may follow
}

void worker::on_poll_out(conn *c, int32_t res) {
    c->poll_inflight = false;
    if (c->closing) {
        maybe_free(c);
        return;
    }
    if (res < 0 || (res & (POLLERR | POLLHUP))) {
        hard_close(c);
        return;
    }
    mark_dirty(c);
}

void worker::watch_errors(conn *c, bool on) {
    if (on && !c->watch_inflight && !c->closing) {
        ring_.poll_add(c->fd, c->slot, 0, event::make_user_data(c, event::op::watch));  // POLLERR and POLLHUP only
        c->watch_inflight = true;
    } else if (!on && c->watch_inflight) {
        ring_.cancel(event::make_user_data(c, event::op::watch));
    }
}

void worker::pause_read(conn *c, bool paused) {
    if (c->closing || paused == c->read_paused) return;
    c->read_paused = paused;
    watch_errors(c, paused);
    if (paused) cancel_recv(c);
    else mark_dirty(c);  // re-armed at the end of the turn
}

void worker::on_watch(conn *c, int32_t res) {
    c->watch_inflight = false;
    if (c->closing) {
        maybe_free(c);
        return;
    }
    if (res == -ECANCELED) {  // reads resumed; paused again since, the watch goes on
        if (c->read_paused) watch_errors(c, true);
        return;
    }
    // POLLHUP alone (the peer ended its stream too) leaves unread bytes to read: only an
    // error (a reset) ends the connection here.
    if (res < 0 || (res & POLLERR)) hard_close(c);
}

void worker::begin_graceful_close(conn *c) {
    // Half-close and keep reading (and discarding) for a while, so that a client
    // still sending does not turn our last response into a reset (lingering close).
    if (c->peer_eof) {
        hard_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->linger_start = now_ms_;
    c->in_start = c->in_end = 0;
    if (!c->recv_armed) {
        c->read_paused = false;
        arm_recv(c);
    }
}

void worker::hard_close(conn *c) {
    if (c->closing) return;
    c->closing = true;
    // Wakes any receive or send still in the kernel so that it completes now.
    shutdown(c->fd, SHUT_RDWR);
    cancel_recv(c);
    if (c->poll_inflight) ring_.cancel(event::make_user_data(c, event::op::poll_out));
    watch_errors(c, false);
    if (c->connecting) ring_.cancel(event::make_user_data(c, event::op::connect));
    maybe_free(c);
}

void worker::fail_output(conn *c) {
    for (out_queue *q : {&c->out, c->wire_.get()}) {
        if (!q) continue;
        while (!q->empty()) {
            out_segment s = q->front();
            q->pop();
            session::segment_done(*this, s, ATLAS_ECLOSED);
        }
        q->consumed(q->bytes());  // nothing is queued: a reused connection starts from 0
        q->arena.reset(arena_pool_);
    }
}

// Connections are only ever freed at the end of a turn, so no call stack above
// (a completion handler, a module hook) can see one vanish under it.
void worker::maybe_free(conn *c) {
    if (c->closing && !c->in_kernel()) mark_dirty(c);
}


void worker::free_conn(conn *c) {
    std::erase(later_, c);
    fail_output(c);
    proxy::on_closed(*this, c);
    if (c->is_stream && c->listener) access_log::record_stream(*this, c);
    stream_proxy::on_closed(*this, c);
    session::abort_all(*this, c);
    l4::closed(*this, c);
    if (c->listener) {
        release_slot(c);
        listener_shard &st = c->listener->stats[index_];
        st.open.sub();
        if (c->has_transport && !c->info_set && !c->upstream) st.handshake_failures.add();
    }
    ring_.unregister_slot(c->slot);  // the ring's reference would keep the socket open
    c->slot = -1;
    close(c->fd);
    c->fd = -1;
    unlink(c);
    const runtime *rt = c->rt.get();
    if (runtime_use *u = use_of(rt)) --u->conns;
    c->rt.reset();
    maybe_retire(rt);
    c->listener = nullptr;
    c->in.clear();
    c->in.shrink_to_fit();
    c->in_start = c->in_end = 0;
    c->scan_from = 0;
    c->cur = nullptr;
    c->retiring.clear();
    c->recv_armed = c->read_paused = c->peer_eof = c->send_inflight = c->poll_inflight = c->watch_inflight = false;
    c->closing = c->close_after_flush = c->lingering = c->dirty = c->need_process = false;
    c->head_started = false;
    c->has_transport = c->is_stream = false;
    c->transport = nullptr;
    c->shut_wr_after_flush = c->shut_wr_done = c->transport_shutdown_sent = false;
    c->eof_told = c->info_set = false;
    c->upstream = nullptr;
    c->connecting = c->tunnel = false;
    c->relay = nullptr;
    c->bulk = false;
    c->short_receives = 0;
    c->proxy_header.reset();
    c->bytes_in = c->bytes_out = 0;
    c->requests = 0;
    c->peer_len = 0;
    c->out.give_storage(ring_pool_);
    c->wire_.reset();
    if (conn_pool_.size() >= 1024) {
        delete c;  // after a burst, do not keep every connection object forever
        return;
    }
    conn_pool_.push_back(c);
}

void worker::refresh_group(uint32_t slot) {
    const upstream::group *g = nullptr;
    for (const runtime_use &r : live_)
        for (const upstream_rt &u : r.rt->upstreams)
            if (u.group && u.group->slot == slot) g = u.group.get();
    if (!g) return;  // a group no runtime here binds
    std::shared_ptr<const upstream::membership> m = g->current.load(std::memory_order_acquire);
    if (views_.size() <= slot) views_.resize(slot + 1);
    upstream_view &v = views_[slot];
    if (!v.m || v.m->version < m->version) {
        v.m = m;
        proxy::close_idle_unusable(*this, *m);
        // Every config generation still served here picks through its own policy instance.
        for (const runtime_use &r : live_)
            for (const upstream_rt &u : r.rt->upstreams)
                if (u.group.get() == g && u.lb && u.lb->lb->set_endpoints)
                    u.lb->lb->set_endpoints(r.rt->state(index_, u.lb->slot), m->endpoints.data(), m->endpoints.size());
    }
    // From here on this worker picks from m only: a server m left behind may be freed
    // once nothing is in flight to it.
    g->acks[index_].store(v.m->version, std::memory_order_release);
}

// A new second of the retry budget's minimum, shared among the workers.
void worker::refill_retry_budget() {
    for (const upstream_rt &u : rt_->upstreams) {
        uint32_t min = u.cfg->retry.budget_min_per_second;
        view(*u.group).free_retries = (min + count_ - 1) / count_;
    }
}

void worker::sweep() {
    access_log::flush(*this);
    // Listening sockets a reload closed, once their accept is out of the kernel.
    std::erase_if(listens_, [](const std::unique_ptr<listen_socket> &ls) { return ls->fd < 0 && !ls->armed; });
    refill_retry_budget();
    for (conn *c = conns_; c;) {
        conn *n = c->next;
        if (c->upstream) proxy::check_timeouts(*this, c, now_ms_);
        else if (c->relay && !c->lingering) stream_proxy::check_timeouts(*this, c, now_ms_);
        else session::check_timeouts(*this, c, now_ms_);
        c = n;
    }
}

void worker::close_listeners(bool stop_listening) {
    for (auto &ls : listens_) close_listener(*ls, stop_listening);
}

void worker::close_listener(listen_socket &ls, bool stop_listening) {
    if (ls.fd < 0) return;
    // shutdown stops the socket listening now; close alone would not while the kernel
    // still holds it for the armed accept (until that is cancelled, or until a dead
    // ring's teardown runs: seconds later). After a takeover it must go on listening.
    if (stop_listening) shutdown(ls.fd, SHUT_RD);
    ls.handed_off = !stop_listening;
    if (ls.armed) ring_.cancel(event::make_user_data(&ls, event::op::accept));
    drop_parked(&ls);
    close(ls.fd);
    ls.fd = -1;
}

bool worker::accept_armed() const {
    for (const auto &ls : listens_)
        if (ls->armed) return true;
    return false;
}

void worker::start_drain(bool handing_off) {
    if (draining_) return;
    draining_ = true;
    drain_started_ = now_ms_;
    close_listeners(!handing_off);
    proxy::close_idle(*this);
    if (handing_off) {
        // The new atlasd accepts on the same sockets, so a client can reconnect at once. A
        // request already on its way on an idle keep-alive connection is still answered
        // (with Connection: close) rather than met by a close; the idle ones close after.
        idle_grace_until_ = now_ms_ + handoff_idle_grace_ms;
        timers_.start(idle_grace_until_, &worker::end_idle_grace, this);
        for (conn *c = conns_; c; c = c->next)
            if (!c->upstream && !stream_proxy::is_server(c)) mark_dirty(c);
        return;
    }
    close_idle_clients();
}

// Idle client connections close; busy ones finish their exchange (keep-alive is off
// while draining), upstream connections with their client's.
void worker::close_idle_clients() {
    for (conn *c = conns_; c;) {
        conn *n = c->next;
        if (!c->upstream && !stream_proxy::is_server(c)) {
            if (session::idle(c)) hard_close(c);
            else mark_dirty(c);
        }
        c = n;
    }
}

void worker::end_idle_grace(void *self) { static_cast<worker *>(self)->close_idle_clients(); }

exchange *worker::alloc_exchange() {
    if (exchange_pool_.empty()) return new exchange;
    exchange *e = exchange_pool_.back();
    exchange_pool_.pop_back();
    return e;
}

void worker::free_exchange(exchange *ex) {
    // Keep a bounded pool of small exchanges: a burst of 10k requests must not leave
    // 10k exchanges (and their buffers) behind on an idle server.
    if (exchange_pool_.size() >= 1024 || ex->head_buf.capacity() > 8192 || ex->req_headers.capacity() > 64) {
        delete ex;
        return;
    }
    ex->reset();
    exchange_pool_.push_back(ex);
}

const char *worker::peer_of(conn *c) {
    if (c->peer_len == 0) {
        sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getpeername(c->fd, reinterpret_cast<sockaddr *>(&ss), &len) == 0)
            c->peer_len = uint8_t(net::format_address(reinterpret_cast<sockaddr *>(&ss), c->peer, sizeof c->peer));
        else
            c->peer_len = uint8_t(std::snprintf(c->peer, sizeof c->peer, "unknown"));
    }
    return c->peer;
}

}  // namespace atlas::chain
