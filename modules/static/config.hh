// mod_static's per-route configuration, read from the JSON the host hands over.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace atlas::static_files {

struct cache_limits {
    uint32_t entries = 4096;             // 0 disables the cache
    uint64_t max_file_size = 256 * 1024; // larger files are streamed with sendfile
    uint64_t total_bytes = 64ull << 20;  // per worker
    uint64_t valid_ms = 1000;            // how long a cached file is trusted before a re-check
};

struct config {
    std::string root;  // absolute
    int root_fd = -1;
    std::vector<std::string> index{"index.html"};
    cache_limits cache;
    std::map<std::string, std::string, std::less<>> mime;  // lowercase extension -> type
    bool etag = true;
    bool precompressed = false;

    config() = default;
    config(const config &) = delete;
    config &operator=(const config &) = delete;
    ~config();
};

// Parses the handler table; throws std::runtime_error("key: reason") on a bad value.
// `base_dir` resolves a relative root.
config *parse_config(std::string_view json, std::string_view base_dir);

}  // namespace atlas::static_files
