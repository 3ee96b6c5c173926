// HTTP validators and ranges for static files (RFC 9110 §8.8, §13, §14).
#pragma once

#include <cstdint>
#include <ctime>
#include <string_view>

namespace atlas::static_files {

// IMF-fixdate (29 chars + NUL).
void format_http_date(time_t t, char out[30]);
// Accepts IMF-fixdate, RFC 850 and asctime forms (RFC 9110 5.6.7). false = invalid.
bool parse_http_date(std::string_view text, time_t &out);

// If-None-Match: a comma list of entity tags or "*"; weak comparison.
bool none_match(std::string_view header, std::string_view etag);
// If-Range with an entity tag: strong comparison (a weak tag never matches).
bool strong_match(std::string_view tag, std::string_view etag);

enum class range_result { none, satisfiable, unsatisfiable };
// One "bytes=" range against a representation of `size` bytes. Several ranges or a
// malformed header give `none` (the full representation is sent).
range_result parse_range(std::string_view header, uint64_t size, uint64_t &first, uint64_t &last);

}  // namespace atlas::static_files
