// The atlas_host_api_t table atlasd hands to every module.
#pragma once

#include <atlas/module.h>

#include <string>

namespace atlas::chain {

const atlas_host_api_t *host_api();

struct runtime;

// Directory reported by host->config_dir during config_create (main thread only).
void set_config_dir(std::string dir);
// The runtime host->upstream_find looks in during config_create (main thread only).
void set_building_runtime(const runtime *rt);

}  // namespace atlas::chain
