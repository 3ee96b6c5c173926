/*
 * mod_hello — a third-party Atlas module in pure C11, built out of tree:
 *
 *   cc $(pkg-config --cflags atlas-module) -std=c11 -pedantic -Wall -Wextra -Werror \
 *      -shared -fPIC -fvisibility=hidden -o mod_hello.so mod_hello.c
 *
 * Config (the route's handler table, handed over as JSON):
 *   handler = { module = "hello", greeting = "hi from C" }            -> 200 "hi from C\n"
 *   handler = { module = "hello", greeting = "...", echo = true }     -> 200 {"method":..,"path":..}
 *
 * It uses nothing but atlas/module.h and the C library: the config is parsed by
 * the small strict reader below, not a JSON library.
 */
#include <atlas/module.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const atlas_host_api_t *host;

typedef struct hello_config {
    char *body; /* greeting + "\n" */
    size_t body_len;
    bool echo;
} hello_config_t;

/* ------------------------------------------------------------ errors */

static void fail(atlas_error_t *err, atlas_slice_t key, const char *field, const char *what)
{
    char line[ATLAS_ERROR_MESSAGE_MAX];
    int n = snprintf(line, sizeof line, "%.*s%s%s: %s", (int)key.len, key.ptr,
                     field[0] != '\0' ? "." : "", field, what);
    atlas_slice_t msg = {line, n < 0 ? 0 : ((size_t)n < sizeof line ? (size_t)n : sizeof line - 1)};
    size_t i;
    for (i = 0; i < msg.len; i++) /* one line, whatever a key name contains */
        if ((unsigned char)line[i] < 0x20u)
            line[i] = '?';
    host->error_set(err, msg);
}

/* ------------------------------------------------- a small JSON reader
   Enough for a flat object of strings and booleans; anything else is refused. */

typedef struct reader {
    const char *p;
    const char *end;
} reader_t;

static void skip_ws(reader_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool take(reader_t *r, char c)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_hex4(reader_t *r, unsigned *out)
{
    unsigned v = 0;
    int i;
    if (r->end - r->p < 4)
        return false;
    for (i = 0; i < 4; i++) {
        int h = hex_value(r->p[i]);
        if (h < 0)
            return false;
        v = v * 16u + (unsigned)h;
    }
    r->p += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80u) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800u) {
        out[0] = (char)(0xC0u | (cp >> 6));
        out[1] = (char)(0x80u | (cp & 0x3Fu));
        return 2;
    }
    if (cp < 0x10000u) {
        out[0] = (char)(0xE0u | (cp >> 12));
        out[1] = (char)(0x80u | ((cp >> 6) & 0x3Fu));
        out[2] = (char)(0x80u | (cp & 0x3Fu));
        return 3;
    }
    out[0] = (char)(0xF0u | (cp >> 18));
    out[1] = (char)(0x80u | ((cp >> 12) & 0x3Fu));
    out[2] = (char)(0x80u | ((cp >> 6) & 0x3Fu));
    out[3] = (char)(0x80u | (cp & 0x3Fu));
    return 4;
}

/* Reads a JSON string into a malloc'd, NUL-terminated buffer. The decoded text is
   never longer than the escaped one, so the input length is a safe bound. */
static char *read_string(reader_t *r, size_t *len_out)
{
    char *out;
    size_t n = 0;
    if (!take(r, '"'))
        return NULL;
    out = malloc((size_t)(r->end - r->p) + 1);
    if (out == NULL)
        return NULL;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p++;
        if (c == '"') {
            out[n] = '\0';
            *len_out = n;
            return out;
        }
        if (c < 0x20u)
            break; /* raw control characters are not allowed in JSON strings */
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (r->p >= r->end)
            break;
        c = (unsigned char)*r->p++;
        switch (c) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (!read_hex4(r, &cp))
                goto bad;
            if (cp >= 0xD800u && cp <= 0xDBFFu) { /* surrogate pair */
                if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                    goto bad;
                r->p += 2;
                if (!read_hex4(r, &lo) || lo < 0xDC00u || lo > 0xDFFFu)
                    goto bad;
                cp = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
            } else if (cp >= 0xDC00u && cp <= 0xDFFFu) {
                goto bad;
            }
            n += put_utf8(out + n, cp); /* \uXXXX is 6 bytes in, at most 4 out */
            break;
        }
        default:
            goto bad;
        }
    }
bad:
    free(out);
    return NULL;
}

static bool read_literal(reader_t *r, const char *word)
{
    size_t n = strlen(word);
    skip_ws(r);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* ------------------------------------------------------------ lifecycle */

static void hello_config_destroy(void *config)
{
    hello_config_t *c = config;
    if (c != NULL) {
        free(c->body);
        free(c);
    }
}

static void *hello_config_create(atlas_slice_t json, atlas_slice_t key, atlas_error_t *err)
{
    reader_t r = {json.ptr, json.ptr + json.len};
    char *greeting = NULL;
    size_t greeting_len = 0;
    bool echo = false;
    hello_config_t *c;

    if (!take(&r, '{')) {
        fail(err, key, "", "expected a table");
        return NULL;
    }
    if (!take(&r, '}')) {
        for (;;) {
            size_t name_len;
            char *name = read_string(&r, &name_len);
            if (name == NULL || !take(&r, ':')) {
                free(name);
                fail(err, key, "", "malformed configuration");
                goto error;
            }
            if (strcmp(name, "greeting") == 0) {
                free(greeting);
                skip_ws(&r);
                greeting = read_string(&r, &greeting_len);
                if (greeting == NULL) {
                    fail(err, key, "greeting", "must be a string");
                    free(name);
                    goto error;
                }
            } else if (strcmp(name, "echo") == 0) {
                if (read_literal(&r, "true")) {
                    echo = true;
                } else if (read_literal(&r, "false")) {
                    echo = false;
                } else {
                    fail(err, key, "echo", "must be true or false");
                    free(name);
                    goto error;
                }
            } else {
                fail(err, key, name, "unknown key (known: greeting, echo)");
                free(name);
                goto error;
            }
            free(name);
            if (take(&r, ','))
                continue;
            if (take(&r, '}'))
                break;
            fail(err, key, "", "malformed configuration");
            goto error;
        }
    }
    skip_ws(&r);
    if (r.p != r.end) {
        fail(err, key, "", "malformed configuration");
        goto error;
    }
    if (greeting == NULL) {
        fail(err, key, "greeting", "missing (a string is required)");
        goto error;
    }

    c = malloc(sizeof *c);
    if (c == NULL) {
        fail(err, key, "", "out of memory");
        goto error;
    }
    c->body = realloc(greeting, greeting_len + 2);
    if (c->body == NULL) {
        free(c);
        fail(err, key, "", "out of memory");
        goto error;
    }
    c->body[greeting_len] = '\n';
    c->body[greeting_len + 1] = '\0';
    c->body_len = greeting_len + 1;
    c->echo = echo;
    return c;

error:
    free(greeting);
    return NULL;
}

/* ------------------------------------------------------------- requests */

/* Appends s as a JSON string literal; out must have room for 6 * s.len + 2. */
static size_t put_json_string(char *out, atlas_slice_t s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0, i;
    out[n++] = '"';
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20u || c == 0x7Fu) {
            out[n++] = '\\';
            out[n++] = 'u';
            out[n++] = '0';
            out[n++] = '0';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 0xFu];
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    return n;
}

static int32_t respond_echo(atlas_exchange_t *ex)
{
    static const char type[] = "application/json";
    atlas_request_info_t info;
    atlas_slice_t t = {type, sizeof type - 1};
    atlas_slice_t body;
    char *buf;
    size_t n = 0;
    int32_t rc;

    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (host->exchange_request_info(ex, &info) != ATLAS_OK)
        return ATLAS_ERROR;

    buf = malloc(6 * (info.method.len + info.path.len) + 32);
    if (buf == NULL)
        return ATLAS_ERROR;
    memcpy(buf + n, "{\"method\":", 10);
    n += 10;
    n += put_json_string(buf + n, info.method);
    memcpy(buf + n, ",\"path\":", 8);
    n += 8;
    n += put_json_string(buf + n, info.path);
    buf[n++] = '}';

    body.ptr = buf;
    body.len = n;
    rc = host->respond(ex, 200, t, body); /* respond copies the body */
    free(buf);
    return rc == ATLAS_OK ? ATLAS_OK : ATLAS_ERROR;
}

static int32_t hello_on_request(void *config, void *worker_state, atlas_exchange_t *ex,
                                void **request_state)
{
    static const char type[] = "text/plain";
    const hello_config_t *c = config;
    atlas_slice_t t = {type, sizeof type - 1};
    atlas_slice_t body;
    (void)worker_state;
    (void)request_state;

    if (c->echo)
        return respond_echo(ex);
    body.ptr = c->body;
    body.len = c->body_len;
    return host->respond(ex, 200, t, body) == ATLAS_OK ? ATLAS_OK : ATLAS_ERROR;
}

/* ------------------------------------------------------------ descriptor */

static const atlas_http_handler_t hello_handler = {
    .struct_size = sizeof(atlas_http_handler_t),
    .config_create = hello_config_create,
    .config_destroy = hello_config_destroy,
    .on_request = hello_on_request,
};

static const atlas_module_t hello_module = {
    .struct_size = sizeof(atlas_module_t),
    .magic = ATLAS_ABI_MAGIC,
    .abi_major = ATLAS_ABI_MAJOR,
    .abi_minor = ATLAS_ABI_MINOR,
    .name = "hello",
    .version = "1.0.0",
    .description = "out-of-tree example: a fixed greeting, or the request as JSON",
    .http_handler = &hello_handler,
};

const atlas_module_t *atlas_module_entry(const atlas_host_api_t *h)
{
    static const char old_host[] = "host API too old for mod_hello";
    /* The host checks us; we check that the host has every call we use. */
    if (h == NULL || h->abi_major != ATLAS_ABI_MAJOR)
        return NULL;
    if (!ATLAS_HAS_FIELD(atlas_host_api_t, h, error_set) ||
        !ATLAS_HAS_FIELD(atlas_host_api_t, h, exchange_request_info) ||
        !ATLAS_HAS_FIELD(atlas_host_api_t, h, respond) || h->error_set == NULL ||
        h->exchange_request_info == NULL || h->respond == NULL) {
        if (ATLAS_HAS_FIELD(atlas_host_api_t, h, log) && h->log != NULL) {
            atlas_slice_t msg = {old_host, sizeof old_host - 1};
            h->log(&hello_module, ATLAS_LOG_ERROR, msg);
        }
        return NULL;
    }
    host = h;
    return &hello_module;
}
