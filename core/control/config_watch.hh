// Reloads when a configuration file changes (server.watch_config): inotify on the
// directories holding the files read (and conf.d/, where new files appear), debounced so
// that an editor's save or a deploy touching several files gives one reload.
#pragma once

#include <sys/inotify.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "control/loop.hh"

namespace atlas::control {

// Whether a change to a file called `name` in a watched directory can change the
// configuration, beside the files read themselves: a new or removed `*.toml`, conf.d/
// itself, Kubernetes' "..data" symlink swap. Editors' dot files and other names cannot.
bool is_config_name(std::string_view name);

class config_watch final : public handler {
public:
    config_watch(loop &lp, std::function<void()> on_change) : lp_(lp), on_change_(std::move(on_change)) {}
    ~config_watch();
    config_watch(const config_watch &) = delete;
    config_watch &operator=(const config_watch &) = delete;

    // Watches what a configuration at `path` (a directory or a file) read: `files`.
    // Called again after every reload, as the set of files may have changed. May come
    // before the loop's ring exists: changes are then kept by the kernel until start().
    void watch(const std::string &path, const std::vector<std::string> &files, std::string &err);
    // The loop's ring is ready: read what watch() collects.
    void start();
    void stop();

    void on_completion(event::op op, const event::completion &c) override;

private:
    bool relevant(int wd, std::string_view name) const;
    static void debounced(void *self);

    struct dir {
        int wd;
        std::string path;
    };

    loop &lp_;
    std::function<void()> on_change_;
    int fd_ = -1;
    bool started_ = false;
    bool armed_ = false;
    std::vector<dir> dirs_;
    std::vector<std::string> files_;  // full paths of the files read
    event::timer *pending_ = nullptr;
    alignas(inotify_event) char buf_[8192];
};

}  // namespace atlas::control
