/* Control: a valid module. Must load (atlasd -t exits 0) and answer 200 "good\n". */
#include "abi_handler.h"

static const atlas_module_t good_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "good",
    .version = "0",
    .description = "ABI test: valid control module",
    .http_handler = &abi_http_handler,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host)
{
    abi_host = host;
    return &good_module;
}
