// Fuzz target: the config loader, TOML text (either format) to a validated snapshot.
// Properties: any text gives either a snapshot or errors, never a crash or a hang, and
// every error is one non-empty line naming the file (what `atlasd -t` and a reload print).
#include "config/loader.hh"
#include "fuzz_check.hh"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string text(reinterpret_cast<const char *>(data), size);
    // A base directory that does not exist: relative paths resolve there and nothing is read.
    const atlas::config::load_result r = atlas::config::load_text(text, "fuzz.toml", "/nonexistent/atlas-fuzz");
    for (const auto &d : r.errors) {
        FUZZ_CHECK(!d.message.empty());
        FUZZ_CHECK(d.message.find('\n') == std::string::npos);
        FUZZ_CHECK(d.message.rfind("fuzz.toml", 0) == 0);
    }
    return 0;
}
