// Response headers set by modules are kept serialised ("Name: value\r\n" lines)
// until the head is written, so writing the head is one copy. These walk and edit
// that text in place.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "http/chars.hh"

namespace atlas::chain::response_headers {

using http::chars::iequals_nocase;

// f(index, name, value, line_begin, line_end) -> false stops the walk.
template <class F>
void for_each(const std::string &buf, F &&f) {
    size_t pos = 0, i = 0;
    while (pos < buf.size()) {
        size_t eol = buf.find("\r\n", pos);
        size_t colon = buf.find(':', pos);
        std::string_view name(buf.data() + pos, colon - pos);
        std::string_view value(buf.data() + colon + 2, eol - colon - 2);
        if (!f(i++, name, value, pos, eol + 2)) return;
        pos = eol + 2;
    }
}

inline bool contains(const std::string &buf, std::string_view name) {
    bool found = false;
    for_each(buf, [&](size_t, std::string_view n, std::string_view, size_t, size_t) {
        found = iequals_nocase(n, name);
        return !found;
    });
    return found;
}

// Removes every line named `name` (case-insensitive), in place; returns how many.
inline size_t remove(std::string &buf, std::string_view name) {
    size_t removed = 0, pos = 0;
    while (pos < buf.size()) {
        size_t eol = buf.find("\r\n", pos);
        size_t colon = buf.find(':', pos);
        if (iequals_nocase(std::string_view(buf.data() + pos, colon - pos), name)) {
            buf.erase(pos, eol + 2 - pos);
            ++removed;
        } else {
            pos = eol + 2;
        }
    }
    return removed;
}

}  // namespace atlas::chain::response_headers
