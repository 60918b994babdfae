// Plain inputs of the response renderers (chat_response.h, completion_response.h): what a
// server knows about a finished or streaming generation, free of engine types. The server
// converts its engine's outputs into these.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"

namespace spillway::openai {

enum class FinishReason : std::uint8_t {
  kStop,    // End of sequence token or a stop sequence.
  kLength,  // max_tokens or the context length reached.
};

// "stop", "length".
[[nodiscard]] std::string_view finish_reason_name(FinishReason reason);

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  // Prompt tokens served from the prefix cache; rendered as
  // "prompt_tokens_details":{"cached_tokens":N} when set.
  std::optional<std::int64_t> cached_prompt_tokens;
};

struct TopLogprob {
  std::string token;  // The token's bytes (may be part of a UTF-8 character).
  float logprob = 0.0f;
};

// One sampled (or, with echo, prompt) token and its log-probability.
struct TokenLogprob {
  std::string token;  // The token's bytes (may be part of a UTF-8 character).
  // nullopt only for the first prompt token with echo (no distribution predicts it). Chat
  // renders a missing or non-finite value as -9999.0, OpenAI's value for "unlikely".
  std::optional<float> logprob;
  std::vector<TopLogprob> top_logprobs;  // Most likely first.
};

// How a token appears in the "token" fields: its text when the bytes are valid UTF-8, else
// OpenAI's form "bytes:\xe2\x80" (each byte as \x and two lower-case hex digits).
[[nodiscard]] std::string token_display_text(std::string_view token_bytes);

// Fields every response object and chunk of one request repeats.
struct ResponseMeta {
  std::string id;                   // "chatcmpl-..." or "cmpl-..." (see new_response_id).
  std::int64_t created_unix_s = 0;  // When the request was accepted, Unix seconds.
  std::string model;
  std::string system_fingerprint;  // Omitted from the output when empty.
};

// `prefix` followed by 24 random letters and digits: "chatcmpl-3fQ...".
[[nodiscard]] std::string new_response_id(std::string_view prefix, Random& random);

inline constexpr std::string_view kChatCompletionIdPrefix = "chatcmpl-";
inline constexpr std::string_view kCompletionIdPrefix = "cmpl-";

}  // namespace spillway::openai
