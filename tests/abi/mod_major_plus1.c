/* Broken on purpose: built for the next ABI major, which this host cannot load. */
#include "abi_handler.h"

static const atlas_module_t major_plus1_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR + 1u,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "major_plus1",
    .version = "0",
    .description = "ABI test: ABI major + 1",
    .http_handler = &abi_http_handler,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host)
{
    abi_host = host;
    return &major_plus1_module;
}
