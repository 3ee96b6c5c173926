/* Broken on purpose: atlas_module_entry returns no descriptor. It logs nothing,
   so the host's rejection is the only line printed. */
#include "abi_handler.h"

static const atlas_module_t null_entry_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "null_entry",
    .version = "0",
    .description = "ABI test: entry returns NULL",
    .http_handler = &abi_http_handler,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host)
{
    abi_host = host;
    (void)null_entry_module; /* a valid descriptor exists; it is just not returned */
    return NULL;
}
