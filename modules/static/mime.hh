// Content-Type by file extension.
#pragma once

#include <string_view>

namespace atlas::static_files {

// The media type for a path's extension (case-insensitive); application/octet-stream
// when unknown. Text types carry "; charset=utf-8".
std::string_view mime_type(std::string_view path);

}  // namespace atlas::static_files
