#include "openai/chat_response.h"

#include <cassert>

#include "openai/json_writer.h"
#include "openai/render_common.h"

namespace spillway::openai {
namespace {

constexpr std::string_view kChunkObject = "chat.completion.chunk";

void write_logprobs_field(JsonWriter& w, std::optional<std::span<const TokenLogprob>> logprobs) {
  w.key("logprobs");
  if (logprobs) {
    write_chat_logprobs(w, *logprobs);
  } else {
    w.null();
  }
}

}  // namespace

std::string render_chat_completion(const ResponseMeta& meta, std::span<const ChatChoice> choices,
                                   const Usage& usage) {
  std::string out;
  std::size_t content_bytes = 0;
  for (const ChatChoice& c : choices)
    content_bytes += c.content.size();
  out.reserve(256 + content_bytes + 128 * choices.size());
  JsonWriter w(out);
  write_meta_fields(w, meta, "chat.completion");
  w.key("choices");
  w.begin_array();
  for (const ChatChoice& c : choices) {
    w.begin_object();
    w.field_integer("index", c.index);
    w.key("message");
    w.begin_object();
    w.field("role", "assistant");
    w.field("content", c.content);
    w.end_object();
    std::optional<std::span<const TokenLogprob>> logprobs;
    if (c.logprobs) logprobs = *c.logprobs;
    write_logprobs_field(w, logprobs);
    w.field("finish_reason", finish_reason_name(c.finish_reason));
    w.end_object();
  }
  w.end_array();
  w.key("usage");
  write_usage(w, usage);
  w.end_object();
  return out;
}

ChatChunkWriter::ChatChunkWriter(const ResponseMeta& meta, bool include_usage)
    : include_usage_(include_usage) {
  JsonWriter w(prefix_);
  write_meta_fields(w, meta, kChunkObject);
}

namespace {

// Writes the "choices" array holding one choice; `write_delta` writes the delta's fields.
template <typename WriteDelta>
std::string one_choice_chunk(const std::string& prefix, bool include_usage, std::int32_t index,
                             WriteDelta write_delta,
                             std::optional<std::span<const TokenLogprob>> logprobs,
                             std::optional<FinishReason> finish_reason) {
  std::string out = prefix;
  JsonWriter w = JsonWriter::continuing_object(out);
  w.key("choices");
  w.begin_array();
  w.begin_object();
  w.field_integer("index", index);
  w.key("delta");
  w.begin_object();
  write_delta(w);
  w.end_object();
  write_logprobs_field(w, logprobs);
  w.key("finish_reason");
  if (finish_reason) {
    w.string(finish_reason_name(*finish_reason));
  } else {
    w.null();
  }
  w.end_object();
  w.end_array();
  if (include_usage) w.field_null("usage");
  w.end_object();
  return out;
}

}  // namespace

std::string ChatChunkWriter::role_chunk(std::int32_t index) const {
  return one_choice_chunk(
      prefix_, include_usage_, index,
      [](JsonWriter& w) {
        w.field("role", "assistant");
        w.field("content", "");
      },
      std::nullopt, std::nullopt);
}

std::string ChatChunkWriter::content_chunk(
    std::int32_t index, std::string_view text,
    std::optional<std::span<const TokenLogprob>> logprobs) const {
  return one_choice_chunk(
      prefix_, include_usage_, index, [text](JsonWriter& w) { w.field("content", text); }, logprobs,
      std::nullopt);
}

std::string ChatChunkWriter::finish_chunk(std::int32_t index, FinishReason reason) const {
  return one_choice_chunk(
      prefix_, include_usage_, index, [](JsonWriter&) {}, std::nullopt, reason);
}

std::string ChatChunkWriter::usage_chunk(const Usage& usage) const {
  assert(include_usage_);
  return render_usage_chunk(prefix_, usage);
}

}  // namespace spillway::openai
