// atlas/module.hpp — optional header-only C++ helpers for writing Atlas modules.
//
// Nothing here is part of the ABI: it only wraps atlas/module.h. Every hook a
// C++ module exposes must be noexcept; `guard` runs a callable and turns any
// escaping exception into a logged error and a fallback value, so an exception
// never crosses into atlasd (where it would call std::terminate).
#pragma once

#include <atlas/module.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace atlas::module {

inline std::string_view view(atlas_slice_t s) noexcept { return {s.ptr, s.len}; }
inline atlas_slice_t slice(std::string_view s) noexcept { return {s.data(), s.size()}; }

// The host table and descriptor of this module, set once by the entry point.
struct context {
    const atlas_host_api_t *host = nullptr;
    const atlas_module_t *self = nullptr;

    void log(atlas_log_level_t level, std::string_view msg) const noexcept {
        if (host && host->log) host->log(self, level, slice(msg));
    }
};

// The module's one exported entry point, at namespace scope: keeps the host table in the
// context `ctx` and hands atlasd `descriptor` (both names as seen from there).
#define ATLAS_MODULE_ENTRY(ctx, descriptor)                                                        \
    extern "C" ATLAS_EXPORT const atlas_module_t *atlas_module_entry(const atlas_host_api_t *host) { \
        (ctx).host = host;                                                                         \
        (ctx).self = &(descriptor);                                                                \
        return &(descriptor);                                                                      \
    }

// A duration as configs write them: digits then "ms", "s", "m", "h" or "d" ("500ms",
// "30s", "10m"). false for anything else or past a year.
inline bool parse_duration_ms(std::string_view text, uint64_t &out) noexcept {
    size_t i = 0;
    uint64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && n < (1ull << 40)) n = n * 10 + uint64_t(text[i++] - '0');
    std::string_view unit = text.substr(i);
    uint64_t mul = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : unit == "h" ? 3600000 : unit == "d" ? 86400000 : 0;
    if (i == 0 || mul == 0 || n > 365ull * 86400000 / mul) return false;
    out = n * mul;
    return true;
}

// For config_create: the upstream group named by a table's `upstream` key (`name`, empty
// when the key is absent), found through host->upstream_find. Throws
// std::runtime_error("upstream: <why>") when it is missing or unknown; `example` names
// one in the hint ("api" -> upstream = "api" with an [upstream.api] table).
inline atlas_upstream_t *upstream_named(const context &ctx, std::string_view name, std::string_view example) {
    if (name.empty())
        throw std::runtime_error("upstream: required (e.g. upstream = \"" + std::string(example) + "\" with an [upstream." +
                                 std::string(example) + "] table)");
    atlas_upstream_t *u = ctx.host->upstream_find(slice(name));
    if (!u)
        throw std::runtime_error("upstream: no upstream named \"" + std::string(name) + "\" (declare [upstream." +
                                 std::string(name) + "])");
    return u;
}

// Writes one line into a host-provided error buffer.
inline void set_error(atlas_error_t *err, std::string_view msg) noexcept {
    if (!err) return;
    size_t n = msg.size() < sizeof(err->message) - 1 ? msg.size() : sizeof(err->message) - 1;
    std::memcpy(err->message, msg.data(), n);
    err->message[n] = '\0';
    err->code = ATLAS_ERROR;
}

// Exception barrier: returns fn()'s result, or `fallback` if it threw.
template <class Fn, class R>
R guard(const context &ctx, R fallback, Fn &&fn) noexcept {
    try {
        return std::forward<Fn>(fn)();
    } catch (const std::exception &e) {
        ctx.log(ATLAS_LOG_ERROR, std::string("unhandled exception: ") + e.what());
    } catch (...) {
        ctx.log(ATLAS_LOG_ERROR, "unhandled non-standard exception");
    }
    return fallback;
}

// Barrier for hooks returning nothing.
template <class Fn>
void guard_void(const context &ctx, Fn &&fn) noexcept {
    try {
        std::forward<Fn>(fn)();
    } catch (const std::exception &e) {
        ctx.log(ATLAS_LOG_ERROR, std::string("unhandled exception: ") + e.what());
    } catch (...) {
        ctx.log(ATLAS_LOG_ERROR, "unhandled non-standard exception");
    }
}

// Barrier for config_create: an exception becomes the error message.
template <class Fn>
void *guard_config(atlas_error_t *err, Fn &&fn) noexcept {
    try {
        return std::forward<Fn>(fn)();
    } catch (const std::exception &e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown error while reading the module configuration");
    }
    return nullptr;
}

}  // namespace atlas::module
