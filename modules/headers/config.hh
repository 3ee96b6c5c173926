// mod_headers' per-filter configuration, read from the JSON the host hands over.
// The schema is documented at the top of mod_headers.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace atlas::headers {

struct field {
    std::string name;
    std::string value;
};

// Edits of one side, applied in this order: remove, then set, then add.
struct edits {
    std::vector<std::string> remove;
    std::vector<field> set;
    std::vector<field> add;  // one entry per value; several may share a name

    bool empty() const { return remove.empty() && set.empty() && add.empty(); }
};

struct config {
    edits request;
    edits response;
    bool request_id = false;  // X-Request-ID: pass on or generate; echoed on the response
};

// Parses the filter table. Throws std::runtime_error("<sub key>: reason") on a bad
// value; the key is relative to the table (the host prefixes the table's path).
config *parse_config(std::string_view json);

// RFC 9110 token (header field name).
bool is_token(std::string_view s);

// 1..200 visible ASCII characters: an incoming X-Request-ID that is passed on.
bool acceptable_request_id(std::string_view s);

bool iequals(std::string_view a, std::string_view b);

}  // namespace atlas::headers
