// Fuzz target: the request-path normaliser that routing and static file lookup rely on.
// Properties of an accepted path: it starts with '/', has no empty, "." or ".." segment
// (nothing can climb out of a root), no NUL or other control byte, and is never longer
// than its input; a refused path leaves the output empty.
#include "fuzz_check.hh"
#include "http/path.hh"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view raw(reinterpret_cast<const char *>(data), size);
    std::string out = "left over from the previous request";
    if (!atlas::http::normalize_path(raw, out)) {
        FUZZ_CHECK(out.empty());
        return 0;
    }
    FUZZ_CHECK(!out.empty() && out[0] == '/');
    FUZZ_CHECK(out.size() <= raw.size());
    for (unsigned char c : out) FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    // Segment by segment: between two slashes there is a name that is neither "." nor "..";
    // only the last segment may be empty (a kept trailing slash, or the root itself).
    size_t start = 1;
    while (start <= out.size()) {
        size_t end = out.find('/', start);
        if (end == std::string::npos) end = out.size();
        const std::string_view seg(out.data() + start, end - start);
        FUZZ_CHECK(seg != "." && seg != "..");
        if (end < out.size()) FUZZ_CHECK(!seg.empty());
        start = end + 1;
    }
    // A path made only of the safe characters normalises to itself again.
    if (out.find('%') == std::string::npos) {
        std::string again;
        FUZZ_CHECK(atlas::http::normalize_path(out, again));
        FUZZ_CHECK(again == out);
    }
    return 0;
}
