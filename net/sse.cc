#include "net/sse.h"

#include <fmt/core.h>

namespace spillway::net {
namespace {

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  for (const char c : value) {
    if (c != '\r' && c != '\n' && c != '\0') out.push_back(c);
  }
  out += '\n';
}

}  // namespace

std::string format_sse_event(const SseEvent& event) {
  std::string out;
  out.reserve(event.data.size() + event.event.size() + event.id.size() + 16);
  if (!event.event.empty()) append_field(out, "event", event.event);
  if (!event.id.empty()) append_field(out, "id", event.id);
  if (event.retry_ms.has_value() && *event.retry_ms >= 0) {
    out += fmt::format("retry: {}\n", *event.retry_ms);
  }
  std::string_view rest = event.data;
  while (true) {
    const std::size_t eol = rest.find_first_of("\r\n");
    out += "data: ";
    out += rest.substr(0, eol);
    out += '\n';
    if (eol == std::string_view::npos) break;
    const std::size_t skip =
        (rest[eol] == '\r' && eol + 1 < rest.size() && rest[eol + 1] == '\n') ? 2 : 1;
    rest.remove_prefix(eol + skip);
  }
  out += '\n';
  return out;
}

std::string format_sse_data(std::string_view data) {
  return format_sse_event(SseEvent{.data = data, .event = {}, .id = {}, .retry_ms = {}});
}

std::string format_sse_comment(std::string_view text) {
  std::string out;
  append_field(out, "", text);  // A comment is a line with an empty field name: ": text\n".
  out += '\n';
  return out;
}

HttpHeaders sse_response_headers() {
  return HttpHeaders{{"Content-Type", "text/event-stream"},
                     {"Cache-Control", "no-cache"},
                     {"Connection", "keep-alive"},
                     {"X-Accel-Buffering", "no"}};
}

}  // namespace spillway::net
