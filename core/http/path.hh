// Request-path normalisation for routing and static file lookup.
#pragma once

#include <string>
#include <string_view>

namespace atlas::http {

// Percent-decodes and normalises an origin-form path for routing and file lookup. Output always
// starts with '/'. Decodes every %XX (incl. %2F and %2E), then merges repeated slashes and removes
// "." and ".." segments (RFC 3986 5.2.4). Decoding first is deliberate: "%2e%2e" and "..%2f" must
// not slip past the dot-segment removal into a file-system path.
// Returns false (caller answers 400; `out` is then empty) for: a bad escape (%G1, trailing %, %4),
// a decoded NUL or other CTL (0x00-0x1F, 0x7F), a ".." that would climb above the root, or input
// not starting with '/'. A trailing slash is kept ("/a/b/" stays "/a/b/", "/a/." -> "/a/",
// "/a/.." -> "/"). Bytes >= 0x80 (UTF-8) pass through unchanged.
// Allocates only if `out` has less capacity than raw.size(): reuse one string per connection.
bool normalize_path(std::string_view raw, std::string &out);

} // namespace atlas::http
