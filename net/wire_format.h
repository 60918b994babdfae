// Internal to net/: the bytes of HTTP/1.1 response heads and chunked framing, and the
// 414-versus-431 decision for an oversized request head. Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace spillway::net::internal {

// "HTTP/1.1 404 Not Found\r\n"
void append_status_line(std::string& out, int status);
// "Name: value\r\n". REQUIRES: a valid name and value (see http_headers.h).
void append_header(std::string& out, std::string_view name, std::string_view value);
// "Name: <decimal value>\r\n". REQUIRES: a valid name.
void append_number_header(std::string& out, std::string_view name, std::uint64_t value);
// "Date: <http_date(t)>\r\n"; the text is cached per thread for the current second.
void append_date_header(std::string& out, std::time_t t);
// One chunk of a chunked body: "<hex size>\r\n<data>\r\n". REQUIRES: !data.empty().
void append_chunk(std::string& out, std::string_view data);
// The last chunk with no trailers: "0\r\n\r\n".
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
[[nodiscard]] std::string http_date(std::time_t t);

// For a request head that exceeded the header limit: true when its request-target alone
// (the text after the method, up to the next space or line end, possibly cut off) is longer
// than `max_url_bytes`, so the answer is 414 rather than 431.
[[nodiscard]] bool request_target_exceeds(std::string_view head_prefix, std::size_t max_url_bytes);

}  // namespace spillway::net::internal
