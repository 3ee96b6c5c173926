/* A valid, minimal http_handler shared by the ABI test modules, so that each
   module's only defect is the one its file name says. It answers every request
   200 "good\n" through host->respond. Included once per module. */
#ifndef ATLAS_TESTS_ABI_HANDLER_H
#define ATLAS_TESTS_ABI_HANDLER_H

#include <atlas/module.h>

static const atlas_host_api_t *abi_host;
static int abi_config_token;

static void *abi_config_create(atlas_slice_t json, atlas_slice_t key, atlas_error_t *err)
{
    (void)json;
    (void)key;
    (void)err;
    return &abi_config_token; /* non-NULL: success; nothing to configure */
}

static void abi_config_destroy(void *config)
{
    (void)config;
}

static int32_t abi_on_request(void *config, void *worker_state, atlas_exchange_t *ex,
                              void **request_state)
{
    static const char body[] = "good\n";
    static const char type[] = "text/plain";
    atlas_slice_t b = {body, sizeof body - 1};
    atlas_slice_t t = {type, sizeof type - 1};
    (void)config;
    (void)worker_state;
    (void)request_state;
    return abi_host->respond(ex, 200, t, b) == ATLAS_OK ? ATLAS_OK : ATLAS_ERROR;
}

static const atlas_http_handler_t abi_http_handler = {
    .struct_size = sizeof(atlas_http_handler_t),
    .config_create = abi_config_create,
    .config_destroy = abi_config_destroy,
    .on_request = abi_on_request,
};

#endif
