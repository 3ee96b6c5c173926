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
#include "control/privileges.hh"
#include "module/loader.hh"

namespace {

using namespace atlas;

constexpr const char *usage_text =
    "usage: atlasd [-c DIR|FILE] [-t] [-v] [FILE]\n"
    "  -c PATH  configuration: a directory (atlas.toml + conf.d/*.toml) or one file\n"
    "           (default /etc/atlas)\n"
    "  -t       check the configuration and modules, then exit\n"
    "  -v       print the version and module ABI, then exit\n"
    "signals: TERM/INT drain and exit, QUIT stops at once, HUP reloads, USR1 reopens logs\n";

struct options {
    std::string config = "/etc/atlas";
    bool check = false;
    bool version = false;
};

// Returns 0 to go on, or an exit status + 1.
int parse_args(int argc, char **argv, options &o) {
    bool have_config = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-t") o.check = true;
        else if (a == "-v" || a == "--version") o.version = true;
        else if (a == "-h" || a == "--help") {
            std::fputs(usage_text, stdout);
            return 1;
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

}  // namespace

int main(int argc, char **argv) {
    options opt;
    if (int r = parse_args(argc, argv, opt)) return r - 1;
    if (opt.version) {
        std::printf("atlasd %s (module ABI %u.%u)\n", ATLAS_VERSION, ATLAS_ABI_MAJOR, ATLAS_ABI_MINOR);
        return 0;
    }

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
    sigset_t sigs;
    sigemptyset(&sigs);
    for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1}) sigaddset(&sigs, s);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    return control::run(opt.config, std::move(rt), loader);
}
