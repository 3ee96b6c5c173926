/*
 * mod_hello_header — an example third-party Atlas module in plain C11.
 *
 * An http_filter that adds "X-Hello: world" to every response of the routes that
 * list it:   filters = [{ module = "hello_header" }]
 *
 * It is built from the installed module API alone (package atlas-dev, through
 * pkg-config atlas-module); see the Makefile and README.md beside it.
 */
#include <atlas/module.h>

static const atlas_host_api_t *host;

static const char header_name[] = "X-Hello";
static const char header_value[] = "world";

/* Runs just before the response head is written, whichever handler produced it. */
static int32_t hello_on_response_head(void *config, void *filter_state, atlas_exchange_t *ex,
                                      uint32_t *status)
{
    atlas_slice_t name = {header_name, sizeof header_name - 1};
    atlas_slice_t value = {header_value, sizeof header_value - 1};
    (void)config;
    (void)filter_state;
    (void)status;
    /* set, not add: one X-Hello even if a handler or an earlier filter set one. */
    return host->header_set(ex, ATLAS_RESPONSE, name, value) == ATLAS_OK ? ATLAS_CONTINUE
                                                                         : ATLAS_ERROR;
}

/* No config_create: the module takes no options, and atlasd itself rejects any
   ("module 'hello_header' takes no options") with the key that has them. */
static const atlas_http_filter_t hello_filter = {
    .struct_size = sizeof(atlas_http_filter_t),
    .on_response_head = hello_on_response_head,
};

static const atlas_module_t hello_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "hello_header",
    .version = "1.0.0",
    .description = "example third-party filter: adds X-Hello: world to responses",
    .http_filter = &hello_filter,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *h)
{
    static const char old_host[] = "this atlasd's host API has no header_set";
    /* atlasd checks this module's ABI version; the module checks that the host
       table is long enough to hold the one call it makes. */
    if (h == NULL || h->abi_major != ATLAS_ABI_MAJOR)
        return NULL;
    if (!ATLAS_HAS_FIELD(atlas_host_api_t, h, header_set) || h->header_set == NULL) {
        if (ATLAS_HAS_FIELD(atlas_host_api_t, h, log) && h->log != NULL) {
            atlas_slice_t msg = {old_host, sizeof old_host - 1};
            h->log(&hello_module, ATLAS_LOG_ERROR, msg);
        }
        return NULL;
    }
    host = h;
    return &hello_module;
}
