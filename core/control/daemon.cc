#include "control/daemon.hh"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atlas/module.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "admin/api.hh"
#include "admin/server.hh"
#include "chain/log.hh"
#include "chain/runtime.hh"
#include "chain/worker.hh"
#include "config/loader.hh"
#include "control/config_watch.hh"
#include "control/health_checks.hh"
#include "control/loop.hh"
#include "control/pid_file.hh"
#include "control/service_notify.hh"
#include "control/takeover.hh"
#include "control/privileges.hh"
#include "event/clock.hh"
#include "event/memcheck.hh"
#include "module/loader.hh"
#include "upstream/registry.hh"

namespace atlas::control {

namespace {

constexpr uint64_t tick_ms = 1000;

// A file descriptor the loop reads whole records from (signalfd, eventfd).
struct fd_reader final : handler {
    int fd = -1;
    alignas(8) char buf[sizeof(signalfd_siginfo)];
    std::function<void(const char *data, int32_t n)> on_read;
    loop *lp = nullptr;

    void arm() { lp->ring().read(fd, buf, sizeof buf, user_data(this, event::op::wake)); }
    void on_completion(event::op, const event::completion &c) override {
        event::kernel_wrote(buf, c.res);
        on_read(buf, c.res);
        arm();
    }
};

class daemon {
public:
    daemon(std::string path, std::unique_ptr<chain::runtime> rt, module::loader &loader, bool take_over)
        : path_(std::move(path)), loader_(loader), take_over_(take_over), registry_(rt->workers),
          checks_(loop_, registry_) {
        current_ = std::shared_ptr<chain::runtime>(std::move(rt));
    }

    int run();

private:
    bool start(std::string &err);
    bool listen_admin(std::string &err);
    bool take_sockets(std::vector<chain::listen_fds> &fds, std::string &err);
    void remember(const std::vector<chain::listen_fds> &fds);
    void forget_unused(const chain::runtime &next);
    takeover::inventory inventory() const;
    void handed_over(pid_t to);
    void stop_serving(bool tell_service_manager);
    void start_upgrade();
    void reap_upgrade();
    bool drop_root(std::string &err);
    void stop_workers();
    void on_signal(int sig);
    void on_tick();
    admin::reload_outcome reload(const char *why);
    admin::reload_outcome build_and_switch(const char *why);
    void watch_config();
    bool all_finished() const;

    static void tick(void *self) {
        auto *d = static_cast<daemon *>(self);
        d->on_tick();
        d->loop_.timers().start(d->loop_.now_ms() + tick_ms, &daemon::tick, d);
    }

    std::string path_;
    module::loader &loader_;
    bool take_over_;  // --takeover: the listening sockets come from the running atlasd
    loop loop_;
    upstream::registry registry_;
    health_checks checks_;
    std::shared_ptr<chain::runtime> current_;
    std::vector<std::shared_ptr<chain::runtime>> retired_;  // reloaded away, still used by workers
    std::vector<std::unique_ptr<chain::worker>> workers_;
    std::unique_ptr<admin::server> admin_;
    admin::context admin_ctx_;
    fd_reader signals_, reports_;
    config_watch watch_{loop_, [this] { reload("config file change"); }};
    service_notify notify_;
    pid_file pid_;
    // Takeover: the running atlasd we take over from (--takeover), the socket a later one
    // takes over from us through, and our own descriptors of every listening socket
    // (duplicates: workers own and close theirs) to hand over then.
    takeover::client taker_;
    takeover::inventory handed_;  // what taker_ received, until start() has placed it
    takeover::server takeover_{loop_, [this] { return inventory(); }, [this](pid_t to) { handed_over(to); }};
    std::vector<takeover::handed_socket> listening_;
    std::string self_exe_;     // this binary's path, as installed: USR2 starts what is there now
    pid_t upgrade_pid_ = 0;    // the atlasd USR2 started, until it took over or exited
    sigset_t sigs_{};
    bool draining_ = false;
    uint64_t drain_deadline_ = UINT64_MAX;
    uint64_t started_ms_ = 0;
};

bool daemon::all_finished() const {
    for (auto &w : workers_)
        if (!w->finished_.load()) return false;
    return true;
}

bool daemon::start(std::string &err) {
    // Everything that may need root is opened first, on this thread: the listening sockets
    // (ports below 1024), the pid file and the takeover socket; access logs and TLS keys
    // were read by build_runtime. Then root goes, before any io_uring or worker thread
    // exists (io_uring helper threads keep the credentials they were created with).
    std::vector<chain::listen_fds> fds;
    const std::string &pf = current_->snap->server.pid_file;
    int control_fd = -1;
    // Watched before any socket listens: a client can connect as soon as one does, and a
    // change made once atlasd answers must be seen (the kernel keeps the events until the
    // loop reads them).
    watch_config();
    if (take_over_) {
        if (pf.empty()) {
            err = "--takeover: " + path_ + " sets no server.pid_file: the running atlasd is found through it";
            return false;
        }
        if (!take_sockets(fds, err)) return false;
        control_fd = taker_.control_fd;
        taker_.control_fd = -1;
    } else if (!chain::open_new_listeners(*current_, nullptr, fds, err)) {
        return false;
    }
    auto close_fds = [&fds, &control_fd](size_t from) {
        for (size_t i = from; i < fds.size(); ++i)
            for (const chain::new_listen_socket &n : fds[i].fds) ::close(n.fd);
        if (control_fd >= 0) ::close(control_fd);
        control_fd = -1;
    };
    const std::string control_path = pf.empty() ? std::string() : takeover::socket_path(pf);
    if (!pf.empty() && !take_over_) {
        // Another atlasd answering there owns the pid file: asked before touching it.
        bool ok = !takeover::server::in_use(control_path, err) && pid_.open(pf, err);
        if (ok) pid_.publish();
        if (!ok || (control_fd = takeover::server::bind_socket(control_path, err)) < 0) {
            close_fds(0);
            return false;
        }
    } else if (!pf.empty() && !pid_.open(pf, err)) {  // written once the old one let go (run())
        close_fds(0);
        return false;
    }
    if (!drop_root(err) || !loop_.init(err)) {
        close_fds(0);
        return false;
    }
    remember(fds);
    if (control_fd >= 0) takeover_.adopt(control_path, control_fd);
    control_fd = -1;
    started_ms_ = loop_.now_ms();
    watch_.start();
    chain::bind_upstreams(*current_, registry_, loop_.now_ms());
    registry_.on_publish = [this](uint32_t slot) {
        for (auto &w : workers_) {
            chain::worker *wp = w.get();
            wp->post([wp, slot] { wp->refresh_group(slot); });
        }
    };
    registry_.on_state_change = [](const upstream::group &g, const upstream::server &s, const upstream::state_change &c) {
        if (c.from == c.to)
            chain::log::info("upstream %s: server %s: %s", g.name.c_str(), s.address.c_str(), c.reason.c_str());
        else
            chain::log::warn("upstream %s: server %s %s -> %s: %s", g.name.c_str(), s.address.c_str(),
                             upstream::state_name(c.from), upstream::state_name(c.to), c.reason.c_str());
    };

    // A port below 1024 still binds: CAP_NET_BIND_SERVICE stays after the switch.
    if (!listen_admin(err)) {
        close_fds(0);
        return false;
    }

    for (uint32_t i = 0; i < current_->workers; ++i) {
        auto w = std::make_unique<chain::worker>(i, current_->workers, current_);
        if (!w->start(std::move(fds[i].fds), err)) {
            close_fds(i + 1);
            stop_workers();
            return false;
        }
        workers_.push_back(std::move(w));
    }

    // Signals are taken synchronously by this thread only: main() blocked them before any
    // thread existed, so every worker inherited the mask.
    signals_.lp = &loop_;
    signals_.fd = signalfd(-1, &sigs_, SFD_CLOEXEC);
    if (signals_.fd < 0) {
        err = std::string("signalfd: ") + std::strerror(errno);
        return false;
    }
    signals_.on_read = [this](const char *data, int32_t n) {
        if (n == int32_t(sizeof(signalfd_siginfo)))
            on_signal(int(reinterpret_cast<const signalfd_siginfo *>(data)->ssi_signo));
    };
    signals_.arm();
    reports_.lp = &loop_;
    reports_.fd = registry_.report_fd();
    reports_.on_read = [this](const char *, int32_t) { registry_.take_reports(loop_.now_ms()); };
    reports_.arm();
    loop_.timers().start(loop_.now_ms() + tick_ms, &daemon::tick, this);
    checks_.sync();

    return true;
}

bool daemon::listen_admin(std::string &err) {
    const config::admin_settings &adm = current_->snap->admin;
    // A handed-over admin socket this configuration does not use (moved, or no [admin]):
    // left open, it would queue connections nobody accepts.
    if (handed_.admin_fd >= 0 && (!adm.enabled || handed_.admin_address != adm.listen)) {
        ::close(handed_.admin_fd);
        handed_.admin_fd = -1;
    }
    if (adm.enabled) {
        admin_ctx_.registry = &registry_;
        admin_ctx_.loader = &loader_;
        admin_ctx_.runtime = [this] { return current_; };
        admin_ctx_.reload = [this] { return reload("POST /reload"); };
        admin_ctx_.membership_changed = [this] { checks_.sync(); };
        admin_ctx_.token = adm.token;
        admin_ctx_.started_ms = started_ms_;
        admin_ctx_.now_ms = [this] { return loop_.now_ms(); };
        admin_ = std::make_unique<admin::server>(loop_, [this](const admin::request &r) {
            return admin::handle(admin_ctx_, r);
        });
        std::string why;
        if (handed_.admin_fd >= 0) {
            admin_->adopt(handed_.admin_fd);  // from the atlasd we take over from
            handed_.admin_fd = -1;
        } else if (!admin_->listen(adm.listen, why)) {
            err = "admin.listen: " + why;
            return false;
        }
    }
    return true;
}

// --takeover: the running atlasd's sockets, placed like open_new_listeners places new
// ones — one per worker and address (a worker takes several when the old process had more
// workers); an address it did not listen on is opened here, and its sockets for addresses
// this configuration drops are closed. Port-0 listeners get new sockets (a new port).
bool daemon::take_sockets(std::vector<chain::listen_fds> &fds, std::string &err) {
    std::string path = takeover::socket_path(current_->snap->server.pid_file);
    if (!taker_.take(path, handed_, err)) {
        for (const takeover::handed_socket &h : handed_.listeners) ::close(h.fd);
        if (handed_.admin_fd >= 0) ::close(handed_.admin_fd);
        return false;
    }
    chain::log::info("takeover: received %zu listening socket%s from pid %d", handed_.listeners.size(),
                     handed_.listeners.size() == 1 ? "" : "s", int(taker_.old_pid));
    const uint32_t workers = current_->workers;
    fds.assign(workers, {});
    std::vector<bool> placed(handed_.listeners.size(), false);
    bool ok = true;
    for (size_t i = 0; i < current_->listeners.size() && ok; ++i) {
        for (const net::address &a : current_->listeners[i].addresses) {
            std::string key = chain::listen_key(a);
            std::vector<int> theirs;
            if (chain::listener_on(*current_, key))
                for (size_t j = 0; j < handed_.listeners.size(); ++j)
                    if (!placed[j] && handed_.listeners[j].key == key) {
                        placed[j] = true;
                        theirs.push_back(handed_.listeners[j].fd);
                    }
            // Theirs first, round the workers; then new ones for workers still without.
            for (size_t k = 0; k < std::max<size_t>(workers, theirs.size()); ++k) {
                int fd = k < theirs.size() ? theirs[k] : net::listen_socket(a, 4096, err);
                if (fd < 0) {
                    err = current_->listeners[i].cfg->key + ": " + err;
                    ok = false;
                    break;
                }
                fds[k % workers].fds.push_back({i, fd, key});
            }
            if (!ok) break;
        }
    }
    for (size_t j = 0; j < handed_.listeners.size(); ++j)
        if (!placed[j]) ::close(handed_.listeners[j].fd);  // an address this configuration dropped
    handed_.listeners.clear();
    if (!ok) {  // every socket taken is in `fds` by now (only opening a new one fails)
        for (const chain::listen_fds &f : fds)
            for (const chain::new_listen_socket &n : f.fds) ::close(n.fd);
        fds.clear();
        if (handed_.admin_fd >= 0) ::close(handed_.admin_fd);
        handed_.admin_fd = -1;
        if (taker_.control_fd >= 0) ::close(taker_.control_fd);
        taker_.control_fd = -1;
    }
    return ok;
}

void daemon::remember(const std::vector<chain::listen_fds> &fds) {
    for (const chain::listen_fds &f : fds)
        for (const chain::new_listen_socket &n : f.fds)
            if (int d = fcntl(n.fd, F_DUPFD_CLOEXEC, 0); d >= 0) listening_.push_back({n.key, d});
}

// After a reload: the workers close sockets of addresses `next` drops; so do we.
void daemon::forget_unused(const chain::runtime &next) {
    std::erase_if(listening_, [&next](const takeover::handed_socket &h) {
        if (chain::listener_on(next, h.key)) return false;
        ::close(h.fd);
        return true;
    });
}

takeover::inventory daemon::inventory() const {
    takeover::inventory inv;
    inv.listeners = listening_;
    if (admin_ && admin_->listening_fd() >= 0) {
        inv.admin_fd = admin_->listening_fd();
        inv.admin_address = current_->snap->admin.listen;
    }
    return inv;
}

// The atlasd that took over serves on our sockets: stop accepting on them without
// closing them for it, and drain like SIGTERM.
void daemon::handed_over(pid_t to) {
    chain::log::info("takeover: pid %d serves now; finishing in-flight requests", int(to));
    if (to == upgrade_pid_) upgrade_pid_ = 0;  // our child, but the service's main process now
    pid_.disown();
    stop_serving(false);  // no STOPPING=1: the service goes on, in the new process (MAINPID=)
    for (auto &w : workers_) w->hand_off();
    for (const takeover::handed_socket &h : listening_) ::close(h.fd);
    listening_.clear();
    if (admin_) admin_->hand_off();
}

bool daemon::drop_root(std::string &err) {
    const config::server_settings &s = current_->snap->server;
    if (!needs_switch(s)) return true;
    if (!chain::give_access_logs_to(*current_, s.uid, s.gid, err) || !switch_identity(s, err)) return false;
    chain::log::info("running as user %s (uid %u), group %s (gid %u)", s.user.c_str(), s.uid, s.group.c_str(), s.gid);
    return true;
}

// USR2 (`atlasd -s upgrade`): the binary installed at this one's path now — a package
// upgrade's — is started with --takeover. As our child it stays in the service's cgroup,
// so under systemd it can name itself the main process (MAINPID=) when it serves.
void daemon::start_upgrade() {
    if (draining_ || upgrade_pid_ > 0) {
        chain::log::warn("SIGUSR2: %s", draining_ ? "atlasd is stopping" : "an upgrade is already under way");
        return;
    }
    if (current_->snap->server.pid_file.empty() || self_exe_.empty()) {
        chain::log::error("SIGUSR2: a binary upgrade needs server.pid_file (the new atlasd finds this one through it)");
        return;
    }
    std::string exe = self_exe_;
    if (exe.ends_with(" (deleted)")) exe.resize(exe.size() - 10);
    // Everything the child needs is made before fork(): after it only exec is safe in a
    // threaded process.
    std::vector<std::string> args = {exe, "--takeover", "-c", path_};
    std::vector<char *> argv;
    for (std::string &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char **e = environ; *e; ++e)
        if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) env_text.emplace_back(*e);
    if (!notify_.socket_path().empty()) env_text.push_back("NOTIFY_SOCKET=" + notify_.socket_path());
    std::vector<char *> envp;
    for (std::string &e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, nullptr);  // the new main() blocks what it takes
        execve(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    if (pid < 0) {
        chain::log::error("SIGUSR2: fork: %s", std::strerror(errno));
        return;
    }
    upgrade_pid_ = pid;
    chain::log::info("SIGUSR2: started %s (pid %d) to take over", exe.c_str(), int(pid));
}

// An upgrade that ended before taking over (it exits; we go on serving).
void daemon::reap_upgrade() {
    if (upgrade_pid_ <= 0) return;
    int status = 0;
    if (waitpid(upgrade_pid_, &status, WNOHANG) != upgrade_pid_) return;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        chain::log::error("SIGUSR2: the new atlasd could not be started (exec failed); still serving");
    else
        chain::log::warn("SIGUSR2: the new atlasd (pid %d) ended with status %d before taking over; still serving",
                         int(upgrade_pid_), WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    upgrade_pid_ = 0;
}

void daemon::stop_workers() {
    for (auto &w : workers_) w->stop_now();
    for (auto &w : workers_) w->join();
    workers_.clear();
}

// What every way of stopping shares: no more reloads or takeovers, and the deadline of
// the drain (a fast stop closes everything before it matters).
void daemon::stop_serving(bool tell_service_manager) {
    draining_ = true;
    if (tell_service_manager) notify_.stopping();
    watch_.stop();
    takeover_.close();
    drain_deadline_ = loop_.now_ms() + uint64_t(current_->snap->server.drain_timeout.count());
}

void daemon::on_signal(int sig) {
    if (sig == SIGTERM || sig == SIGINT) {
        if (draining_) return;
        chain::log::info("%s: stopping accepting, finishing in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        stop_serving(true);
        for (auto &w : workers_) w->drain();
    } else if (sig == SIGQUIT) {
        chain::log::info("SIGQUIT: stopping now");
        stop_serving(true);
        for (auto &w : workers_) w->stop_now();
    } else if (sig == SIGUSR1) {
        chain::log::info("SIGUSR1: reopening the access logs");
        chain::reopen_access_logs(*current_);
    } else if (sig == SIGHUP) {
        reload("SIGHUP");
    } else if (sig == SIGUSR2) {
        start_upgrade();
    }
}

void daemon::on_tick() {
    registry_.tick(loop_.now_ms());
    reap_upgrade();
    // A reloaded-away runtime goes once no worker uses it any more; its module configs
    // are destroyed here, on the main thread.
    std::erase_if(retired_, [this](const std::shared_ptr<chain::runtime> &rt) {
        return rt->workers_done.load(std::memory_order_acquire) == rt->workers;
    });
}

admin::reload_outcome daemon::reload(const char *why) {
    admin::reload_outcome out;
    if (draining_) {
        out.errors.push_back("atlasd is stopping");
        return out;
    }
    notify_.reloading();
    out = build_and_switch(why);
    notify_.ready(out.ok ? "reloaded" : "reload failed; serving the previous configuration");
    if (out.ok) watch_config();
    return out;
}

admin::reload_outcome daemon::build_and_switch(const char *why) {
    admin::reload_outcome out;
    config::load_result loaded = config::load(path_);
    for (auto &d : loaded.errors) out.errors.push_back(d.message);
    std::unique_ptr<chain::runtime> next;
    if (out.errors.empty()) {
        auto snap = std::make_shared<const config::snapshot>(std::move(loaded.snap));
        next = chain::build_runtime(snap, loader_, out.errors);
        if (out.errors.empty() && next->listeners.empty()) out.errors.push_back(path_ + ": no listener configured");
        if (out.errors.empty() && next->workers != current_->workers)
            out.errors.push_back("server.workers: changing the number of workers needs a restart (running " +
                                 std::to_string(current_->workers) + ")");
        if (out.errors.empty() && next->snap->admin.listen != current_->snap->admin.listen)
            out.errors.push_back("admin.listen: moving the admin listener needs a restart");
        const config::server_settings &was = current_->snap->server, &now = next->snap->server;
        if (out.errors.empty() && (now.switch_user != was.switch_user || now.uid != was.uid))
            out.errors.push_back("server.user: changing the user needs a restart (running as " +
                                 (was.switch_user ? "\"" + was.user + "\"" : std::string("the starting user")) + ")");
        if (out.errors.empty() && now.gid != was.gid)
            out.errors.push_back("server.group: changing the group needs a restart (running as \"" + was.group + "\")");
    }
    std::vector<chain::listen_fds> fds;
    if (out.errors.empty()) {
        std::string err;
        if (!chain::open_new_listeners(*next, current_.get(), fds, err)) out.errors.push_back(err);
    }
    if (!out.errors.empty()) {
        chain::log::error("%s: configuration not reloaded; the running one stays:", why);
        for (const std::string &e : out.errors) chain::log::error("  %s", e.c_str());
        return out;
    }
    forget_unused(*next);
    remember(fds);
    chain::bind_upstreams(*next, registry_, loop_.now_ms());
    chain::carry_gates(*next, *current_);
    chain::carry_stats(*next, *current_);
    std::vector<std::shared_ptr<upstream::group>> live;
    for (const chain::upstream_rt &u : next->upstreams) live.push_back(u.group);
    registry_.keep_only(live);
    admin_ctx_.token = next->snap->admin.token;
    std::shared_ptr<chain::runtime> rt(std::move(next));
    retired_.push_back(current_);
    current_ = rt;
    for (size_t i = 0; i < workers_.size(); ++i) {
        chain::worker *w = workers_[i].get();
        std::vector<chain::new_listen_socket> mine = std::move(fds[i].fds);
        w->post([w, rt, mine] { w->adopt(rt, mine); });
    }
    checks_.sync();
    chain::log::info("%s: Configuration hot-reloaded (%zu listener%s, %zu upstream%s)", why, rt->listeners.size(),
                     rt->listeners.size() == 1 ? "" : "s", rt->upstreams.size(), rt->upstreams.size() == 1 ? "" : "s");
    out.ok = true;
    return out;
}

void daemon::watch_config() {
    if (!current_->snap->server.watch_config) {
        watch_.stop();
        return;
    }
    std::string err;
    watch_.watch(path_, current_->snap->files, err);
    if (!err.empty()) chain::log::warn("server.watch_config: %s; changes need SIGHUP or POST /reload", err.c_str());
}

int daemon::run() {
    sigs_ = handled_signals();
    // The path now, while it names the installed file: once a package upgrade replaced
    // it, /proc/self/exe names the deleted old one.
    char exe[4096];
    if (ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1); n > 0) self_exe_.assign(exe, size_t(n));
    std::string err;
    if (!start(err)) {
        chain::log::error("%s", err.c_str());
        pid_.remove();  // created, not written: no process behind it
        takeover_.close();
        return 1;
    }
    for (const chain::listener_rt &l : current_->listeners)
        for (const net::address &a : l.addresses)
            chain::log::info("listening on %s (%s)", net::to_string(a).c_str(), l.cfg->name.c_str());
    if (admin_) chain::log::info("admin API on %s", current_->snap->admin.listen.c_str());
    if (take_over_) {
        // We accept on the sockets now: the old atlasd may stop and drain.
        if (taker_.confirm(err)) chain::log::info("takeover: took over from pid %d", int(taker_.old_pid));
        else chain::log::warn("%s (it keeps accepting too, until it stops)", err.c_str());
        pid_.publish();
        notify_.ready_as_main("serving, took over");
    } else {
        notify_.ready("serving");
    }
    chain::log::info("atlasd %s started: %u worker%s, io_uring %s", ATLAS_VERSION, current_->workers,
                     current_->workers == 1 ? "" : "s", workers_[0]->ring_.mode());

    while (!(draining_ && all_finished())) {
        loop_.turn(draining_ ? 50 : -1);
        // Also take pending signals directly: under valgrind (which emulates signal
        // delivery) the signalfd never becomes readable; the 1 s tick bounds the delay.
        timespec zero{0, 0};
        for (int sig; (sig = sigtimedwait(&sigs_, nullptr, &zero)) > 0;) on_signal(sig);
        if (draining_ && loop_.now_ms() > drain_deadline_) {
            chain::log::warn("drain_timeout reached: closing the remaining connections");
            for (auto &w : workers_) w->stop_now();
            drain_deadline_ = UINT64_MAX;
        }
    }
    for (auto &w : workers_) w->join();
    workers_.clear();
    admin_.reset();
    pid_.remove();
    chain::log::info("stopped");
    return 0;
}

}  // namespace

sigset_t handled_signals() {
    sigset_t s;
    sigemptyset(&s);
    for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&s, sig);
    return s;
}

int run(const std::string &config_path, std::unique_ptr<chain::runtime> rt, module::loader &loader, bool take_over) {
    daemon d(config_path, std::move(rt), loader, take_over);
    return d.run();
}

}  // namespace atlas::control
