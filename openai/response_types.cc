#include "openai/response_types.h"

#include <fmt/format.h>

#include <iterator>

#include "openai/utf8.h"

namespace spillway::openai {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
  }
  return "stop";
}

std::string token_display_text(std::string_view token_bytes) {
  if (is_valid_utf8(token_bytes)) return std::string(token_bytes);
  std::string out = "bytes:";
  out.reserve(out.size() + 4 * token_bytes.size());
  for (const char c : token_bytes) {
    fmt::format_to(std::back_inserter(out), "\\x{:02x}", static_cast<unsigned char>(c));
  }
  return out;
}

std::string new_response_id(std::string_view prefix, Random& random) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  constexpr std::size_t kRandomChars = 24;
  std::string id(prefix);
  id.reserve(prefix.size() + kRandomChars);
  for (std::size_t i = 0; i < kRandomChars; ++i) {
    id.push_back(kAlphabet[random.below(kAlphabet.size())]);
  }
  return id;
}

}  // namespace spillway::openai
