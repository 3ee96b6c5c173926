/* Broken on purpose: built against a newer ABI minor than this host offers. */
#include "abi_handler.h"

static const atlas_module_t minor_plus1_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR + 1u,
    .name = "minor_plus1",
    .version = "0",
    .description = "ABI test: ABI minor + 1",
    .http_handler = &abi_http_handler,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host)
{
    abi_host = host;
    return &minor_plus1_module;
}
