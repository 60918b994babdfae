// Why a generated sequence ended.
#pragma once

#include <string_view>

namespace spillway::engine {

enum class FinishReason {
  kStop,       // An end-of-generation token or a stop string.
  kLength,     // max_tokens, or the end of the context.
  kCancelled,  // The caller cancelled, its deadline passed, or the engine shut down.
  kError,      // The engine failed the request; the event carries the error.
};

// "stop", "length", "cancelled", "error": the OpenAI finish_reason for the first two.
[[nodiscard]] constexpr std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

}  // namespace spillway::engine
