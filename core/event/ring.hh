// The io_uring seam: the only place in atlasd that includes liburing.
// One ring per worker thread; everything else talks to it through this class.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

struct io_uring;
struct io_uring_sqe;
struct io_uring_buf_ring;
struct msghdr;
struct sockaddr;

namespace atlas::event {

// user_data = object pointer | op tag in the low four bits: every object with
// operations in flight is declared alignas(16).
// recv_bulk / recv_relay: receives into buffer groups 1 and 2 (relayed streams' big and
// small buffers). watch: a poll for errors only, while a connection's reads are paused.
enum class op : uint8_t {
    ignore = 0, accept = 1, recv = 2, send = 3, poll_out = 4, wake = 5, connect = 6, recv_bulk = 7, watch = 8,
    recv_relay = 9
};
constexpr uint64_t op_bits = 15;

inline uint64_t make_user_data(const void *obj, op o) {
    return reinterpret_cast<uint64_t>(obj) | static_cast<uint64_t>(o);  // obj & op_bits == 0
}
inline op user_data_op(uint64_t ud) { return static_cast<op>(ud & op_bits); }
template <class T>
T *user_data_ptr(uint64_t ud) {
    return reinterpret_cast<T *>(ud & ~op_bits);
}

struct completion {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
    bool more() const;            // multishot op stays armed
    bool has_buffer() const;      // a provided buffer was consumed
    uint16_t buffer_id() const;
};

class ring {
public:
    ring() = default;
    ring(const ring &) = delete;
    ring &operator=(const ring &) = delete;
    ~ring();

    // Sets up the ring (SINGLE_ISSUER + DEFER_TASKRUN when the kernel allows it, plain
    // otherwise) and provided-buffer group 0 of `buffers` x `buffer_size` bytes.
    bool init(unsigned entries, unsigned buffers, unsigned buffer_size, std::string &err);
    // Another provided-buffer group (ids 1, 2, ... in order), e.g. big buffers for bulk
    // streams. Its memory is only touched as receives use it.
    bool add_buffer_group(uint16_t group, unsigned buffers, unsigned buffer_size, std::string &err);
    const char *mode() const { return mode_; }
    // Tears the ring down now: every operation still in the kernel is dropped and the
    // files it held (listening sockets!) are released.
    void close();

    // Registered ("fixed") files spare the kernel a file-table lookup and reference
    // per operation, which costs more in a threaded process. A slot of -1 means
    // "use the plain fd". register_fd returns a slot, or -1 when none is free.
    void enable_fixed_files(unsigned count);
    int register_fd(int fd);
    void unregister_slot(int slot);

    // Submission helpers; they never fail (a full SQ is flushed first). `slot` is a
    // registered file slot or -1.
    void multishot_accept(int fd, uint64_t ud);
    void recv_multishot(int fd, int slot, uint64_t ud, uint16_t group = 0);
    void sendmsg(int fd, int slot, const msghdr *msg, unsigned flags, uint64_t ud);
    void send(int fd, int slot, const void *buf, size_t len, unsigned flags, uint64_t ud);
    void poll_add(int fd, int slot, unsigned events, uint64_t ud);
    // `addr` must stay valid until the completion.
    void connect(int fd, int slot, const sockaddr *addr, unsigned addr_len, uint64_t ud);
    void read(int fd, void *buf, unsigned len, uint64_t ud);
    void cancel(uint64_t target_ud);

    // Provided receive buffers.
    char *buffer(uint16_t id, uint16_t group = 0) const;
    void recycle(uint16_t id, uint16_t group = 0);  // give a buffer back (published at the next wait)
    unsigned buffer_count(uint16_t group) const { return groups_[group].count; }

    // Submits pending SQEs, waits up to timeout_ms for one completion (0 = poll), then
    // calls fn(ctx, completion) for every ready CQE. Returns completions handled.
    // `woke` (optional) runs after a wait that may have slept, before the handlers: the
    // caller's clock is stale by then.
    using handler_fn = void (*)(void *ctx, const completion &c);
    using woke_fn = void (*)(void *ctx);
    unsigned run_once(int64_t timeout_ms, handler_fn fn, void *ctx, woke_fn woke = nullptr);
    // How long (microseconds) a busy ring's waits may hold on to gather more completions
    // (run_once, wait_batched); 0, the default, never. Needs kernel 6.12+: elsewhere a no-op.
    void set_batch_wait(unsigned us) { batch_wait_us_ = us; }

private:
    io_uring_sqe *get_sqe();
    void publish_buffers();
    void wait_batched(int64_t timeout_ms);
    static void use_file(io_uring_sqe *sqe, int slot);

    struct buffer_group {
        io_uring_buf_ring *ring = nullptr;
        char *memory = nullptr;
        size_t ring_bytes = 0;
        unsigned count = 0;
        unsigned size = 0;
        unsigned pending_recycles = 0;
        bool registered = false;
    };

    io_uring *ring_ = nullptr;
    std::vector<buffer_group> groups_;
    std::vector<int> free_slots_;
    const char *mode_ = "none";
    bool wait_in_poll_ = false;  // under valgrind: see run_once
    bool registered_ring_ = false;  // io_uring_enter goes by the registered ring index
    bool can_batch_ = false;        // the kernel has min-wait (6.12+) and the ring defers task work
    unsigned batch_ = 1;            // completions the next wait asks for (wait_batched)
    unsigned batch_wait_us_ = 0;
};

}  // namespace atlas::event
