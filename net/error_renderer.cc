#include "net/error_renderer.h"

#include <fmt/core.h>

namespace spillway::net {
namespace {

// The length of the well-formed UTF-8 sequence at the front of `text` (RFC 3629: no overlong
// forms, surrogates or code points past U+10FFFF), or 0 if it is ill-formed or cut off.
std::size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  std::size_t n = 0;
  unsigned char lo = 0x80;  // Bounds of the second byte, which rule out the bad forms.
  unsigned char hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    if (lead == 0xe0) lo = 0xa0;
    if (lead == 0xed) hi = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    if (lead == 0xf0) lo = 0x90;
    if (lead == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (text.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
  }
  return n;
}

}  // namespace

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
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
        } else if (static_cast<unsigned char>(c) < 0x80) {
          out.push_back(c);
        } else if (const std::size_t n = utf8_sequence_length(text.substr(i)); n > 0) {
          out.append(text.substr(i, n));
          i += n - 1;
        } else {
          out += "\\ufffd";  // JSON text is UTF-8 (RFC 8259 section 8.1).
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
