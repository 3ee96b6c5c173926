/* Broken on purpose: a shared object with a valid descriptor that exports some
   other function, but not atlas_module_entry. */
#include "abi_handler.h"

static const atlas_module_t no_entry_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "no_entry",
    .version = "0",
    .description = "ABI test: no atlas_module_entry",
    .http_handler = &abi_http_handler,
};

ATLAS_EXPORT const atlas_module_t *atlas_module_init(const atlas_host_api_t *host);

const atlas_module_t *atlas_module_init(const atlas_host_api_t *host)
{
    abi_host = host;
    return &no_entry_module;
}
