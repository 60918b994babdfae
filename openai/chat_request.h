// `POST /v1/chat/completions` request bodies, parsed and validated into a typed request.
//
// Accepted, beyond the fields of common_options.h:
//   messages                required array of 1..max_messages objects {role, content, name?}:
//     role                  "system", "developer" (read as system, as OpenAI does for
//                           non-reasoning models), "user" or "assistant"; "tool" and "function"
//                           are kUnimplemented (this server has no tool calling)
//     content               a string, or an array of parts {"type":"text","text":...} whose
//                           texts are joined with "\n" (as vLLM does); other part types
//                           (image_url, input_audio, file, refusal) are kInvalidArgument.
//                           Required, except null is kUnimplemented on an assistant message
//                           with tool_calls or function_call.
//     name                  optional string
//   max_completion_tokens   [1, max_output_tokens]; wins over max_tokens when both are set
//   max_tokens              [1, max_output_tokens] (deprecated by OpenAI, still sent by many
//                           clients); unset: up to the model's context length
//   logprobs                boolean: report the chosen tokens' log-probabilities
//   top_logprobs            [0, max_top_logprobs (20)]; only with logprobs true
// Known OpenAI features this server does not have are kUnimplemented rather than silently
// ignored: non-empty `tools` or `functions`, `tool_choice` other than "none"/"auto",
// `response_format` other than {"type":"text"}, non-empty `logit_bias`, `audio`, and
// `modalities` other than ["text"]. Any other unknown field is ignored, as OpenAI does.
// Limits: the total bytes of all contents and names are at most max_total_content_bytes
// (kPayloadTooLarge).
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "openai/api_limits.h"
#include "openai/common_options.h"

namespace spillway::openai {

enum class ChatRole : std::uint8_t { kSystem, kUser, kAssistant };

// "system", "user", "assistant".
[[nodiscard]] std::string_view chat_role_name(ChatRole role);

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string content;  // Valid UTF-8 (the JSON parser checks it).
  std::optional<std::string> name;

  bool operator==(const ChatMessage&) const = default;
};

struct ChatCompletionRequest {
  std::string model;
  std::vector<ChatMessage> messages;  // At least one.
  SamplingOptions sampling;           // max_tokens from max_completion_tokens or max_tokens.
  StreamOptions stream;
  bool logprobs = false;
  std::int32_t top_logprobs = 0;  // 0 unless logprobs.
  std::optional<std::string> user;

  bool operator==(const ChatCompletionRequest&) const = default;
};

// Errors name the offending parameter (see api_error.h); render them with to_api_error.
[[nodiscard]] Result<ChatCompletionRequest> parse_chat_completion_request(
    std::string_view body, const ApiLimits& limits = {});

}  // namespace spillway::openai
