#include "control/config_watch.hh"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "chain/log.hh"
#include "event/memcheck.hh"

namespace atlas::control {

namespace {

// An editor's save (write, rename, chmod) or a deploy of several files within this
// long gives one reload.
constexpr uint64_t debounce_ms = 300;
constexpr uint32_t dir_events = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ONLYDIR;

bool is_dir(const std::string &p) {
    struct stat st{};
    return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

config_watch::~config_watch() {
    if (pending_) lp_.timers().cancel(pending_);
    if (fd_ >= 0) close(fd_);
}

void config_watch::watch(const std::string &path, const std::vector<std::string> &files, std::string &err) {
    // A blocking descriptor: the ring then waits for events (a non-blocking one would
    // have the read fail with EAGAIN instead).
    if (fd_ < 0 && (fd_ = inotify_init1(IN_CLOEXEC)) < 0) {
        err = std::string("inotify_init1: ") + std::strerror(errno);
        return;
    }
    for (const dir &d : dirs_) inotify_rm_watch(fd_, d.wd);
    dirs_.clear();
    files_ = files;
    std::vector<std::string> wanted;
    for (const std::string &f : files) wanted.push_back(std::filesystem::path(f).parent_path().string());  // absolute
    if (is_dir(path)) {  // the loader's file names are absolute: so are the watched directories'
        std::error_code ec;
        std::string abs = std::filesystem::absolute(path, ec).lexically_normal().string();
        while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
        wanted.push_back(abs);
        if (is_dir(abs + "/conf.d")) wanted.push_back(abs + "/conf.d");
    }
    for (const std::string &d : wanted) {
        if (std::any_of(dirs_.begin(), dirs_.end(), [&](const dir &x) { return x.path == d; })) continue;
        int wd = inotify_add_watch(fd_, d.c_str(), dir_events);
        if (wd < 0) {
            err = "watching " + d + ": " + std::strerror(errno);
            continue;
        }
        dirs_.push_back({wd, d});
    }
    if (started_ && !armed_) {
        lp_.ring().read(fd_, buf_, sizeof buf_, user_data(this, event::op::wake));
        armed_ = true;
    }
}

void config_watch::start() {
    started_ = true;
    if (fd_ >= 0 && !armed_) {
        lp_.ring().read(fd_, buf_, sizeof buf_, user_data(this, event::op::wake));
        armed_ = true;
    }
}

void config_watch::stop() {
    for (const dir &d : dirs_) inotify_rm_watch(fd_, d.wd);
    dirs_.clear();
    files_.clear();
    if (pending_) lp_.timers().cancel(pending_);
    pending_ = nullptr;
}

bool config_watch::relevant(int wd, std::string_view name) const {
    auto d = std::find_if(dirs_.begin(), dirs_.end(), [wd](const dir &x) { return x.wd == wd; });
    if (d == dirs_.end() || name.empty()) return false;
    std::string full = d->path + "/" + std::string(name);
    return std::find(files_.begin(), files_.end(), full) != files_.end() || is_config_name(name);
}

bool is_config_name(std::string_view name) {
    if (name == "..data" || name == "conf.d") return true;
    return !name.empty() && name[0] != '.' && name.ends_with(".toml");
}

void config_watch::on_completion(event::op, const event::completion &c) {
    armed_ = false;
    if (c.res < 0) {
        if (c.res != -ECANCELED && c.res != -EINTR)
            chain::log::warn("watching the configuration: %s; changes now need SIGHUP or POST /reload",
                             std::strerror(-c.res));
        if (c.res != -EINTR) return;
    }
    event::kernel_wrote(buf_, c.res);
    bool changed = false;
    for (int32_t off = 0; c.res > 0 && off + int32_t(sizeof(inotify_event)) <= c.res;) {
        const auto *e = reinterpret_cast<const inotify_event *>(buf_ + off);
        std::string_view name = e->len ? std::string_view(e->name) : std::string_view();
        if (relevant(e->wd, name)) changed = true;
        off += int32_t(sizeof(inotify_event) + e->len);
    }
    if (changed) {
        if (pending_) lp_.timers().cancel(pending_);
        pending_ = lp_.timers().start(lp_.now_ms() + debounce_ms, &config_watch::debounced, this);
    }
    lp_.ring().read(fd_, buf_, sizeof buf_, user_data(this, event::op::wake));
    armed_ = true;
}

void config_watch::debounced(void *self) {
    auto *w = static_cast<config_watch *>(self);
    w->pending_ = nullptr;
    if (!w->files_.empty()) w->on_change_();
}

}  // namespace atlas::control
