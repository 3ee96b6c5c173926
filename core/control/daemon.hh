// The running atlasd on the main thread: starts the workers, then serves signals, the
// workers' reports, active health checks, the admin API and reloads from one event loop
// until it is told to stop.
#pragma once

#include <signal.h>

#include <memory>
#include <string>

namespace atlas::chain {
struct runtime;
}
namespace atlas::module {
class loader;
}

namespace atlas::control {

// `rt` is the checked runtime of the configuration at `config_path`; `loader` loaded its
// modules (and loads those of later reloads). `take_over`: the listening sockets come from
// the atlasd running with the same pid file, which then drains (control/takeover.hh).
// Returns the process exit status.
int run(const std::string &config_path, std::unique_ptr<chain::runtime> rt, module::loader &loader, bool take_over);

// The signals run() takes (synchronously, on the main thread); main() blocks them before
// any thread exists, so that every thread inherits the mask.
sigset_t handled_signals();

}  // namespace atlas::control
