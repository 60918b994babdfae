// Limits on OpenAI API request bodies. Every request is checked against one `ApiLimits`
// before anything else sees it; a request beyond a limit fails with a typed error naming the
// parameter (see api_error.h), never with an abort or an unbounded allocation.
//
// Thread-safety: a plain value.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/config.h"
#include "core/status.h"

namespace spillway::openai {

struct ApiLimits {
  // The whole body, checked before parsing (kPayloadTooLarge).
  std::size_t max_body_bytes = 8u << 20;
  // Nesting of JSON arrays and objects; content parts need 5, JSON schemas in ignored fields
  // more.
  std::size_t max_json_depth = 64;
  std::size_t max_model_name_bytes = 256;
  // Chat messages per request.
  std::size_t max_messages = 4096;
  // Text of all messages (content and names) or all prompts together (kPayloadTooLarge).
  std::size_t max_total_content_bytes = 4u << 20;
  // Token ids of all token prompts of one completions request together.
  std::size_t max_prompt_token_ids = 1u << 20;
  // Prompts in one completions request (`prompt` as an array).
  std::size_t max_prompts = 64;
  // `stop`: OpenAI allows up to 4 sequences.
  std::size_t max_stop_strings = 4;
  std::size_t max_stop_bytes = 256;
  // `n`: choices per prompt.
  std::int32_t max_n = 16;
  // `max_tokens` / `max_completion_tokens`; the model's context length bounds it further.
  std::int32_t max_output_tokens = 1 << 20;
  // Chat `top_logprobs` (OpenAI: 20) and legacy completions `logprobs` (OpenAI: 5).
  std::int32_t max_top_logprobs = 20;
  std::int32_t max_completion_logprobs = 5;
};

// Checks that the limits themselves make sense (each at least 1, depth at least 5 so that a
// chat request with content parts fits).
[[nodiscard]] Status validate_api_limits(const ApiLimits& limits);

// Reads limits from a config table whose keys are the field names above (all optional,
// defaults as above); unknown keys are errors.
[[nodiscard]] Result<ApiLimits> parse_api_limits(const ConfigTable& table);

}  // namespace spillway::openai
