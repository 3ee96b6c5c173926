#include "http/path.hh"

#include "http/chars.hh"

namespace atlas::http {
namespace {

// Decodes and normalises in one pass: `out` holds the result so far and always ends with '/'
// while a new segment starts at `seg`. Each segment is resolved when its '/' (or the end) arrives.
bool normalize(std::string_view raw, std::string &out) {
    if (raw.empty() || raw[0] != '/') return false;
    out.reserve(raw.size());
    out.push_back('/');
    size_t seg = 1;

    auto end_segment = [&](bool last) {
        const std::string_view s(out.data() + seg, out.size() - seg);
        if (s.empty()) return true; // "//" (merged) or a trailing slash (kept)
        if (s == ".") {
            out.resize(seg);
            return true;
        }
        if (s == "..") {
            if (seg == 1) return false; // would climb above the root
            const size_t prev = out.rfind('/', seg - 2); // out[0] is '/', so always found
            out.resize(prev + 1);
            seg = prev + 1;
            return true;
        }
        if (!last) {
            out.push_back('/');
            seg = out.size();
        }
        return true;
    };

    for (size_t i = 1; i < raw.size();) {
        unsigned char c = static_cast<unsigned char>(raw[i]);
        if (c == '%') {
            if (i + 2 >= raw.size() || !chars::is_hex(raw[i + 1]) || !chars::is_hex(raw[i + 2])) return false;
            c = static_cast<unsigned char>(chars::hex_value(raw[i + 1]) * 16 + chars::hex_value(raw[i + 2]));
            i += 3;
        } else {
            ++i;
        }
        if (c < 0x20 || c == 0x7F) return false;
        if (c == '/') {
            if (!end_segment(false)) return false;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return end_segment(true);
}

} // namespace

bool normalize_path(std::string_view raw, std::string &out) {
    out.clear();
    if (normalize(raw, out)) return true;
    out.clear();
    return false;
}

} // namespace atlas::http
