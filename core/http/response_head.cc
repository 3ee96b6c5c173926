#include "http/response_head.hh"

#include <charconv>
#include <cstring>

namespace atlas::http {

std::string_view reason_phrase(unsigned status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints"; // RFC 8297
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 306: return "Unused"; // reserved by RFC 9110 15.4.7
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "Unused"; // reserved by RFC 9110 15.5.19
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";           // RFC 6585
    case 429: return "Too Many Requests";               // RFC 6585
    case 431: return "Request Header Fields Too Large"; // RFC 6585
    case 451: return "Unavailable For Legal Reasons";   // RFC 7725
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 511: return "Network Authentication Required"; // RFC 6585
    default: return "Unknown";
    }
}

size_t format_status_line(char *buf, unsigned status) {
    if (status < 100 || status > 999) status = 500;
    const std::string_view reason = reason_phrase(status); // at most 31 bytes: 9+3+1+31+2 <= 64
    char *p = buf;
    std::memcpy(p, "HTTP/1.1 ", 9);
    p += 9;
    *p++ = static_cast<char>('0' + status / 100);
    *p++ = static_cast<char>('0' + status / 10 % 10);
    *p++ = static_cast<char>('0' + status % 10);
    *p++ = ' ';
    std::memcpy(p, reason.data(), reason.size());
    p += reason.size();
    *p++ = '\r';
    *p++ = '\n';
    return static_cast<size_t>(p - buf);
}

size_t format_content_length(char *buf, uint64_t n) {
    std::memcpy(buf, "Content-Length: ", 16);
    char *p = std::to_chars(buf + 16, buf + 36, n).ptr;
    *p++ = '\r';
    *p++ = '\n';
    return size_t(p - buf);
}

size_t format_chunk_size(char *buf, uint64_t n) {
    char *p = std::to_chars(buf, buf + 16, n, 16).ptr;
    *p++ = '\r';
    *p++ = '\n';
    return size_t(p - buf);
}

} // namespace atlas::http
