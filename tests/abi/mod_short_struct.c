/* Broken on purpose: the descriptor claims struct_size 8, too short to hold even
   the version fields; the host must not read past it. */
#include "abi_handler.h"

static const atlas_module_t short_struct_module = {
    .struct_size = 8,
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "short_struct",
    .version = "0",
    .description = "ABI test: struct_size 8",
    .http_handler = &abi_http_handler,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host)
{
    abi_host = host;
    return &short_struct_module;
}
