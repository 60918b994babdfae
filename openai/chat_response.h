// Chat completion responses in OpenAI's exact shapes: the `chat.completion` object and the
// `chat.completion.chunk` payloads of a stream.
//
// Streaming: each payload below goes out as one server-sent event, "data: <payload>\n\n" (the
// framing belongs to the HTTP layer). For a request with n choices, per choice i (choices may
// interleave):
//   role_chunk(i)                 delta {"role":"assistant","content":""}
//   content_chunk(i, text, ...)   delta {"content":text}, any number of times
//   finish_chunk(i, reason)       delta {}, finish_reason set
// then, when the request set stream_options.include_usage, usage_chunk(usage) (choices [] and
// the usage of the whole request), and finally the literal payload kStreamDone, "[DONE]",
// which is not JSON. If generation fails after the stream started, send render_error_body()
// (api_error.h) as a payload, then kStreamDone.
//
// Thread-safety: pure functions; a ChatChunkWriter is immutable after construction and safe
// for concurrent use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "openai/response_types.h"

namespace spillway::openai {

inline constexpr std::string_view kStreamDone = "[DONE]";

struct ChatChoice {
  std::int32_t index = 0;
  std::string content;  // Invalid UTF-8 is rendered as U+FFFD.
  FinishReason finish_reason = FinishReason::kStop;
  // Set when the request asked for logprobs: {"content":[...]}; unset: "logprobs": null.
  std::optional<std::vector<TokenLogprob>> logprobs;
};

// {"id","object":"chat.completion","created","model"[,"system_fingerprint"],"choices":[{"index",
// "message":{"role":"assistant","content"},"logprobs","finish_reason"}],"usage":{...}}.
[[nodiscard]] std::string render_chat_completion(const ResponseMeta& meta,
                                                 std::span<const ChatChoice> choices,
                                                 const Usage& usage);

class ChatChunkWriter {
 public:
  // `include_usage`: the request's stream_options.include_usage; when set, every chunk but the
  // usage chunk carries "usage": null, as OpenAI sends them.
  ChatChunkWriter(const ResponseMeta& meta, bool include_usage);

  [[nodiscard]] std::string role_chunk(std::int32_t index) const;
  // `logprobs`: the tokens of `text` when the request asked for logprobs, else nullopt.
  [[nodiscard]] std::string content_chunk(
      std::int32_t index, std::string_view text,
      std::optional<std::span<const TokenLogprob>> logprobs = std::nullopt) const;
  [[nodiscard]] std::string finish_chunk(std::int32_t index, FinishReason reason) const;
  // REQUIRES: constructed with include_usage.
  [[nodiscard]] std::string usage_chunk(const Usage& usage) const;

 private:
  std::string prefix_;  // {"id":...,"system_fingerprint":...,"choices":
  bool include_usage_;
};

}  // namespace spillway::openai
