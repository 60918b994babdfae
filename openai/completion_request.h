// `POST /v1/completions` (OpenAI's legacy completions) request bodies, parsed and validated.
//
// Accepted, beyond the fields of common_options.h:
//   prompt       required: a string, an array of 1..max_prompts strings, an array of token ids,
//                or an array of 1..max_prompts arrays of token ids. Token ids are integers in
//                [0, 2^31 - 1]; the server checks them against its vocabulary. Token arrays
//                must not be empty; an empty string prompt is allowed. Mixed arrays are errors.
//   max_tokens   [0, max_output_tokens], default 16 as in OpenAI's API (or max_output_tokens
//                when that is smaller); 0 only with echo
//                (returns the prompt, e.g. to score it with logprobs)
//   echo         boolean: the choice's text starts with the prompt
//   logprobs     integer [0, max_completion_logprobs (5)]: log-probabilities of the chosen
//                tokens and of that many alternatives per position (legacy format)
//   suffix       only null or "" (insertion is kUnimplemented)
//   best_of      only equal to n (server-side best-of selection is kUnimplemented)
// Non-empty `logit_bias` is kUnimplemented; unknown fields are ignored, as OpenAI does.
// Limits: prompt text bytes together at most max_total_content_bytes (kPayloadTooLarge), token
// ids together at most max_prompt_token_ids (kPayloadTooLarge).
//
// Choices of a response are ordered prompt by prompt, n per prompt: choice index
// prompt_index * n + i.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

#include "openai/api_limits.h"
#include "openai/common_options.h"

namespace spillway::openai {

// Text to tokenize, or token ids given by the client.
using CompletionPrompt = std::variant<std::string, std::vector<std::int32_t>>;

inline constexpr std::int32_t kDefaultCompletionMaxTokens = 16;

struct CompletionRequest {
  std::string model;
  std::vector<CompletionPrompt> prompts;  // At least one.
  SamplingOptions sampling;               // max_tokens is always set.
  StreamOptions stream;
  bool echo = false;
  std::optional<std::int32_t> logprobs;  // Alternatives per position; nullopt: no logprobs.
  std::optional<std::string> user;
};

// Errors name the offending parameter (see api_error.h); render them with to_api_error.
[[nodiscard]] Result<CompletionRequest> parse_completion_request(std::string_view body,
                                                                 const ApiLimits& limits = {});

}  // namespace spillway::openai
