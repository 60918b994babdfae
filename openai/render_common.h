// Pieces shared by the response renderers (internal): usage objects and the chat form of
// token log-probabilities.
#pragma once

#include <span>
#include <string>

#include "openai/json_writer.h"
#include "openai/response_types.h"

namespace spillway::openai {

// {"prompt_tokens","completion_tokens","total_tokens"[,"prompt_tokens_details"]}.
void write_usage(JsonWriter& w, const Usage& usage);

// The closing usage chunk of a stream: `chunk_prefix` (a chunk object's opening fields, as the
// chunk writers keep them), then "choices":[] and "usage".
[[nodiscard]] std::string render_usage_chunk(std::string chunk_prefix, const Usage& usage);

// The value of a chat choice's "logprobs": {"content":[{"token","logprob","bytes",
// "top_logprobs":[...]}...]}.
void write_chat_logprobs(JsonWriter& w, std::span<const TokenLogprob> tokens);

// The fields every object of a response starts with, without the closing brace:
// {"id","object","created","model" and, when set, "system_fingerprint".
void write_meta_fields(JsonWriter& w, const ResponseMeta& meta, std::string_view object);

}  // namespace spillway::openai
