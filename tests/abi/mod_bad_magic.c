/* Broken on purpose: the descriptor's magic is not ATLAS_ABI_MAGIC. */
#include "abi_handler.h"

static const atlas_module_t bad_magic_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = 0xdeadbeefu,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "bad_magic",
    .version = "0",
    .description = "ABI test: bad magic",
    .http_handler = &abi_http_handler,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host)
{
    abi_host = host;
    return &bad_magic_module;
}
