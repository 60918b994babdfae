// Request parameters that chat completions and (legacy) completions share: model, sampling,
// stop sequences, number of choices, streaming and `user`.
//
// Accepted ranges (invalid values are errors naming the parameter, never clamped; null is the
// same as absent):
//   model                required non-empty string of at most ApiLimits::max_model_name_bytes
//   temperature          [0, 2]       default 1; 0 is greedy
//   top_p                (0, 1]       default 1 (off)
//   n                    [1, ApiLimits::max_n]  default 1
//   stop                 a string or an array of up to ApiLimits::max_stop_strings (OpenAI: 4)
//                        non-empty strings of at most max_stop_bytes bytes each
//   seed                 any 64-bit signed integer
//   presence_penalty     [-2, 2]      default 0
//   frequency_penalty    [-2, 2]      default 0
//   user                 a string (kept for logs; not used for generation)
//   stream               a boolean
//   stream_options       {"include_usage": boolean}; only allowed when stream is true (as
//                        OpenAI requires); include_usage adds a final chunk with usage
// Extensions that vLLM, llama.cpp's server and other OpenAI-compatible servers accept:
//   top_k                -1, 0 (both off) or a positive count of most likely tokens kept
//   min_p                [0, 1)       default 0 (off); drops tokens below min_p x the top
//                        probability
//   repetition_penalty   > 0          default 1 (off); divides positive logits of tokens seen
//                        in the prompt or output, multiplies negative ones
// `max_tokens` is read by each endpoint (its default and its alias differ).
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "openai/api_limits.h"

namespace spillway::openai {

class FieldReader;

struct SamplingOptions {
  // Upper bound on generated tokens; nullopt: up to the model's context length.
  std::optional<std::int32_t> max_tokens;
  std::int32_t n = 1;
  float temperature = 1.0f;
  float top_p = 1.0f;
  std::int32_t top_k = 0;  // 0 = off (-1 in the request is read as 0).
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::optional<std::int64_t> seed;  // nullopt: the server picks one.
  std::vector<std::string> stop;     // Empty: no stop sequences.

  bool operator==(const SamplingOptions&) const = default;
};

struct StreamOptions {
  bool stream = false;
  // Only when stream: send a last chunk with usage and empty choices before [DONE], and
  // "usage": null in every other chunk.
  bool include_usage = false;

  bool operator==(const StreamOptions&) const = default;
};

// For the request parsers, which own the body: each reads its fields of `body`.
[[nodiscard]] Result<std::string> parse_model(const FieldReader& body, const ApiLimits& limits);
// The sampling fields above.
[[nodiscard]] Result<SamplingOptions> parse_sampling_options(const FieldReader& body,
                                                             const ApiLimits& limits);
[[nodiscard]] Result<StreamOptions> parse_stream_options(const FieldReader& body);
// Reads a `max_tokens`-style field: an integer in [min, limits.max_output_tokens].
[[nodiscard]] Result<std::optional<std::int32_t>> parse_max_tokens(const FieldReader& body,
                                                                   std::string_view key,
                                                                   std::int32_t min,
                                                                   const ApiLimits& limits);

}  // namespace spillway::openai
