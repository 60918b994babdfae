#include "net/wire_format.h"

#include <fmt/core.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <iterator>

#include "net/http_response.h"

namespace spillway::net::internal {

void append_status_line(std::string& out, int status) {
  char digits[16];
  const auto end = std::to_chars(std::begin(digits), std::end(digits), status).ptr;
  out += "HTTP/1.1 ";
  out.append(digits, end);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\n";
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

void append_chunk(std::string& out, std::string_view data) {
  char digits[24];
  const auto end = std::to_chars(std::begin(digits), std::end(digits), data.size(), 16).ptr;
  out.append(digits, end);
  out += "\r\n";
  out += data;
  out += "\r\n";
}

std::string http_date(std::time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday % 7], tm.tm_mday,
                     kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void append_number_header(std::string& out, std::string_view name, std::uint64_t value) {
  char digits[24];
  const auto end = std::to_chars(std::begin(digits), std::end(digits), value).ptr;
  append_header(out, name, std::string_view(digits, static_cast<std::size_t>(end - digits)));
}

void append_date_header(std::string& out, std::time_t t) {
  // One formatting per second and thread: responses in the same second share the text.
  thread_local std::time_t cached_time = -1;
  thread_local std::string cached_text;
  if (t != cached_time) {
    cached_text = http_date(t);
    cached_time = t;
  }
  append_header(out, "Date", cached_text);
}

bool request_target_exceeds(std::string_view head_prefix, std::size_t max_url_bytes) {
  const std::size_t method_end = head_prefix.find(' ');
  if (method_end == std::string_view::npos) return false;
  std::string_view rest = head_prefix.substr(method_end + 1);
  const std::size_t target_end = rest.find_first_of(" \r\n");
  const std::size_t target_len = target_end == std::string_view::npos ? rest.size() : target_end;
  return target_len > max_url_bytes;
}

}  // namespace spillway::net::internal
