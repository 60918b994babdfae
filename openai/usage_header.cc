#include "openai/usage_header.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace spillway::openai {
namespace {

constexpr std::string_view kPrompt = "prompt_tokens=";
constexpr std::string_view kCompletion = " completion_tokens=";
constexpr std::size_t kMaxDigits = 18;  // Below INT64_MAX: no overflow to check.

// A count at the front of `text` (consumed), or nullopt.
std::optional<std::int64_t> take_count(std::string_view& text) {
  std::size_t n = 0;
  while (n < text.size() && n <= kMaxDigits && text[n] >= '0' && text[n] <= '9')
    ++n;
  if (n == 0 || n > kMaxDigits) return std::nullopt;
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + n, value);
  text.remove_prefix(n);
  return value;
}

}  // namespace

std::string render_usage_header(const Usage& usage) {
  std::string out;
  out.reserve(kPrompt.size() + kCompletion.size() + 2 * kMaxDigits);
  out.append(kPrompt)
      .append(std::to_string(std::max<std::int64_t>(0, usage.prompt_tokens)))
      .append(kCompletion)
      .append(std::to_string(std::max<std::int64_t>(0, usage.completion_tokens)));
  return out;
}

std::optional<Usage> parse_usage_header(std::string_view value) {
  if (!value.starts_with(kPrompt)) return std::nullopt;
  value.remove_prefix(kPrompt.size());
  const auto prompt = take_count(value);
  if (!prompt || !value.starts_with(kCompletion)) return std::nullopt;
  value.remove_prefix(kCompletion.size());
  const auto completion = take_count(value);
  if (!completion || !value.empty()) return std::nullopt;
  Usage usage;
  usage.prompt_tokens = *prompt;
  usage.completion_tokens = *completion;
  return usage;
}

}  // namespace spillway::openai
