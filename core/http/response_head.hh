// Status lines for responses the core writes itself (errors, 100 Continue, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace atlas::http {

// Reason phrase for every status code registered by RFC 9110 (plus 103, 428, 429, 431, 451 and
// 511, which servers send in practice); "Unknown" for anything else.
std::string_view reason_phrase(unsigned status);

// Writes "HTTP/1.1 <status> <reason>\r\n" into buf (which must hold at least 64 bytes) and returns
// its length; not NUL-terminated. A status outside 100..999 cannot be written as three digits and
// is sent as 500.
size_t format_status_line(char *buf, unsigned status);

// "Content-Length: <n>\r\n" into buf (at least 40 bytes); returns its length. Once per response:
// to_chars, not snprintf (whose format parsing showed in the proxy's profile).
size_t format_content_length(char *buf, uint64_t n);

// A chunk-size line, "<hex>\r\n", into buf (at least 18 bytes); returns its length.
size_t format_chunk_size(char *buf, uint64_t n);

} // namespace atlas::http
