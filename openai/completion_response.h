// Legacy completion responses (`POST /v1/completions`) in OpenAI's exact shapes: the
// `text_completion` object and its stream chunks (also "object":"text_completion"), with the
// legacy log-probability format:
//   "logprobs": {"tokens":[...], "token_logprobs":[...], "top_logprobs":[{token: logprob}...],
//                "text_offset":[...]}
// `tokens` show each token as token_display_text() does; `token_logprobs` and `top_logprobs`
// entries are null for a token without a logprob (the first prompt token with echo);
// `top_logprobs` maps each alternative's text to its logprob (the first of equal tokens wins);
// `text_offset` is each token's byte offset in the choice's text, counting the bytes of the
// tokens before it (in a stream, across all chunks of that choice).
//
// Streaming: per choice i (choices may interleave) text_chunk(i, ...) any number of times,
// then finish_chunk(i, reason); then usage_chunk(usage) when the request set
// stream_options.include_usage; then the payload kStreamDone ("[DONE]", chat_response.h).
//
// Thread-safety: render_completion is a pure function. A CompletionChunkWriter keeps each
// choice's text offset: one writer per stream, not for concurrent use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "openai/response_types.h"

namespace spillway::openai {

struct CompletionChoice {
  std::int32_t index = 0;  // prompt_index * n + i.
  std::string text;        // With echo, starts with the prompt.
  FinishReason finish_reason = FinishReason::kStop;
  // Set when the request asked for logprobs (with echo, prompt tokens first).
  std::optional<std::vector<TokenLogprob>> logprobs;
};

// {"id","object":"text_completion","created","model","choices":[{"text","index","logprobs",
// "finish_reason"}],"usage":{...}}.
[[nodiscard]] std::string render_completion(const ResponseMeta& meta,
                                            std::span<const CompletionChoice> choices,
                                            const Usage& usage);

class CompletionChunkWriter {
 public:
  // `choice_count`: prompts x n. `include_usage`: stream_options.include_usage.
  CompletionChunkWriter(const ResponseMeta& meta, bool include_usage, std::int32_t choice_count);

  // REQUIRES: 0 <= index < choice_count.
  [[nodiscard]] std::string text_chunk(
      std::int32_t index, std::string_view text,
      std::optional<std::span<const TokenLogprob>> logprobs = std::nullopt);
  [[nodiscard]] std::string finish_chunk(std::int32_t index, FinishReason reason) const;
  // REQUIRES: constructed with include_usage.
  [[nodiscard]] std::string usage_chunk(const Usage& usage) const;

 private:
  std::string prefix_;  // {"id":...,"model":...[,"system_fingerprint":...]
  bool include_usage_;
  std::vector<std::size_t> text_offsets_;  // Per choice: bytes of the tokens reported so far.
};

}  // namespace spillway::openai
