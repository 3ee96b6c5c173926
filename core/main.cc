// atlasd: command line, config check, worker start-up and signal handling.
// The main thread owns configuration and modules; it never touches a worker's
// connections (it only posts messages to workers).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atlas/module.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "chain/host_api.hh"
#include "chain/runtime.hh"
#include "config/loader.hh"
#include "control/daemon.hh"
#include "control/pid_file.hh"
#include "control/privileges.hh"
#include "module/loader.hh"

namespace {

using namespace atlas;

constexpr const char *usage_text =
    "usage: atlasd [-c DIR|FILE] [-t] [-v] [-s SIGNAL] [--takeover] [FILE]\n"
    "  -c PATH  configuration: a directory (atlas.toml + conf.d/*.toml) or one file\n"
    "           (default /etc/atlas)\n"
    "  -t       check the configuration and modules, then exit\n"
    "  -v       print the version and module ABI, then exit\n"
    "  --takeover  upgrade without downtime: take the listening sockets of the atlasd\n"
    "           running this configuration (found through server.pid_file), which drains\n"
    "  -s SIG   signal the atlasd running this configuration (found through\n"
    "           server.pid_file): reload, stop (drain), quit (at once), reopen (logs),\n"
    "           upgrade (start the installed atlasd to take over, as USR2 does)\n"
    "signals: TERM/INT drain and exit, QUIT stops at once, HUP reloads, USR1 reopens logs,\n"
    "         USR2 starts the installed atlasd to take over (binary upgrade)\n";

struct options {
    std::string config = "/etc/atlas";
    bool check = false;
    bool take_over = false;  // --takeover
    bool version = false;
    std::string signal;  // -s
};

struct named_signal {
    const char *name;
    int sig;
};
constexpr named_signal signals_by_name[] = {{"reload", SIGHUP}, {"stop", SIGTERM}, {"quit", SIGQUIT}, {"reopen", SIGUSR1},
                                               {"upgrade", SIGUSR2}};

// "reload, stop, quit, reopen or upgrade": for messages, from the table.
std::string signal_names() {
    std::string out;
    size_t n = std::size(signals_by_name);
    for (size_t i = 0; i < n; ++i) out += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + signals_by_name[i].name;
    return out;
}

// Returns 0 to go on, or an exit status + 1.
int parse_args(int argc, char **argv, options &o) {
    bool have_config = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-t") o.check = true;
        else if (a == "--takeover") o.take_over = true;
        else if (a == "-v" || a == "--version") o.version = true;
        else if (a == "-h" || a == "--help") {
            std::fputs(usage_text, stdout);
            return 1;
        } else if (a == "-s") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "atlasd: -s needs a signal: %s\n", signal_names().c_str());
                return 3;
            }
            o.signal = argv[++i];
        } else if (a == "-c") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "atlasd: -c needs a directory or file\n");
                return 3;
            }
            o.config = argv[++i];
            have_config = true;
        } else if (!a.empty() && a[0] != '-' && !have_config) {
            o.config = a;  // the seed's `atlas config.toml` habit
            have_config = true;
        } else {
            std::fprintf(stderr, "atlasd: unknown argument '%s'\n%s", a.c_str(), usage_text);
            return 3;
        }
    }
    return 0;
}

// `atlasd -s NAME`: the running server is the pid in the configuration's pid file.
int send_signal(const options &o) {
    const named_signal *ns = nullptr;
    for (const named_signal &n : signals_by_name)
        if (o.signal == n.name) ns = &n;
    if (!ns) {
        std::fprintf(stderr, "atlasd: -s %s: unknown signal; use %s\n", o.signal.c_str(), signal_names().c_str());
        return 2;
    }
    // Only the pid file is needed: a configuration with errors elsewhere (being edited,
    // say) must not keep an operator from stopping the server.
    config::load_result loaded = config::load(o.config);
    const std::string &path = loaded.snap.server.pid_file;
    if (path.empty()) {
        std::fprintf(stderr, "atlasd: -s %s: %s sets no server.pid_file: cannot find the running atlasd\n",
                     ns->name, o.config.c_str());
        return 1;
    }
    std::string err;
    pid_t pid = control::pid_file::read(path, err);
    if (pid == 0) {
        std::fprintf(stderr, "atlasd: -s %s: %s\n", ns->name, err.c_str());
        return 1;
    }
    if (kill(pid, ns->sig) != 0) {
        std::fprintf(stderr, "atlasd: -s %s: process %d (from %s): %s\n", ns->name, int(pid), path.c_str(),
                     errno == ESRCH ? "no such process (a stale pid file?)" : std::strerror(errno));
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    options opt;
    if (int r = parse_args(argc, argv, opt)) return r - 1;
    if (opt.version) {
        std::printf("atlasd %s (module ABI %u.%u)\n", ATLAS_VERSION, ATLAS_ABI_MAJOR, ATLAS_ABI_MINOR);
        return 0;
    }

    if (!opt.signal.empty()) return send_signal(opt);

    std::vector<std::string> errors;
    config::load_result loaded = config::load(opt.config);
    for (auto &d : loaded.errors) errors.push_back(d.message);
    module::loader loader(chain::host_api());
    std::unique_ptr<chain::runtime> rt;
    bool config_ok = loaded.ok();
    {
        // Modules are checked even when the config has errors, so one `atlasd -t`
        // run reports every problem; the parts the loader rejected are absent.
        auto snap = std::make_shared<const config::snapshot>(std::move(loaded.snap));
        rt = chain::build_runtime(snap, loader, errors);
        if (config_ok && rt && rt->listeners.empty()) errors.push_back(opt.config + ": no listener configured");
        // At -t too: a config that could not start here is reported before a restart.
        if (config_ok && rt)
            if (std::string e = control::check_identity(rt->snap->server); !e.empty()) errors.push_back(e);
    }
    if (!errors.empty()) {
        for (auto &e : errors) std::fprintf(stderr, "atlasd: %s\n", e.c_str());
        return 1;
    }
    if (opt.check) {
        std::printf("atlasd: configuration OK (%zu listener%s, %zu module%s loaded from %s)\n",
                    rt->listeners.size(), rt->listeners.size() == 1 ? "" : "s", loader.modules().size(),
                    loader.modules().size() == 1 ? "" : "s", rt->module_dir.c_str());
        return 0;
    }

    // A server holds one fd per connection: use the whole hard limit, as nginx's
    // worker_rlimit_nofile would.
    rlimit nofile{};
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    // Signals are taken synchronously by the main thread only: block them before any
    // worker exists so every thread inherits the mask.
    sigset_t sigs = control::handled_signals();
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    return control::run(opt.config, std::move(rt), loader, opt.take_over);
}
