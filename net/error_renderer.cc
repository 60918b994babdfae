#include "net/error_renderer.h"

#include <fmt/core.h>

namespace spillway::net {

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

HttpResponse render_default_error(int status, std::string_view message) {
  return HttpResponse::json(
      status, fmt::format(R"({{"error":{{"code":{},"status":"{}","message":"{}"}}}})", status,
                          json_escape(reason_phrase(status)), json_escape(message)));
}

}  // namespace spillway::net
