#include "openai/completion_response.h"

#include <algorithm>
#include <cassert>

#include "openai/json_writer.h"
#include "openai/render_common.h"
#include "openai/utf8.h"

namespace spillway::openai {
namespace {

constexpr std::string_view kObject = "text_completion";

void write_token_text(JsonWriter& w, std::string_view token) {
  if (is_valid_utf8(token)) {
    w.string(token);
  } else {
    w.string(token_display_text(token));
  }
}

// Writes the legacy logprobs object; returns the text offset after the last token.
std::size_t write_legacy_logprobs(JsonWriter& w, std::span<const TokenLogprob> tokens,
                                  std::size_t text_offset) {
  w.begin_object();
  w.key("tokens");
  w.begin_array();
  for (const TokenLogprob& t : tokens)
    write_token_text(w, t.token);
  w.end_array();
  w.key("token_logprobs");
  w.begin_array();
  for (const TokenLogprob& t : tokens) {
    if (t.logprob) {
      w.number(*t.logprob);
    } else {
      w.null();
    }
  }
  w.end_array();
  w.key("top_logprobs");
  w.begin_array();
  for (const TokenLogprob& t : tokens) {
    if (!t.logprob) {
      w.null();
      continue;
    }
    w.begin_object();
    const auto& top = t.top_logprobs;
    for (auto it = top.begin(); it != top.end(); ++it) {
      const auto same_token = [&](const TopLogprob& other) { return other.token == it->token; };
      if (std::find_if(top.begin(), it, same_token) != it) continue;  // Keep the first.
      if (is_valid_utf8(it->token)) {
        w.key(it->token);
      } else {
        w.key(token_display_text(it->token));
      }
      w.number(it->logprob);
    }
    w.end_object();
  }
  w.end_array();
  w.key("text_offset");
  w.begin_array();
  for (const TokenLogprob& t : tokens) {
    w.unsigned_integer(text_offset);
    text_offset += t.token.size();
  }
  w.end_array();
  w.end_object();
  return text_offset;
}

// Writes one choice object; returns the text offset after its tokens.
std::size_t write_choice(JsonWriter& w, std::int32_t index, std::string_view text,
                         std::optional<std::span<const TokenLogprob>> logprobs,
                         std::size_t text_offset, std::optional<FinishReason> finish_reason) {
  w.begin_object();
  w.field("text", text);
  w.field_integer("index", index);
  w.key("logprobs");
  if (logprobs) {
    text_offset = write_legacy_logprobs(w, *logprobs, text_offset);
  } else {
    w.null();
  }
  w.key("finish_reason");
  if (finish_reason) {
    w.string(finish_reason_name(*finish_reason));
  } else {
    w.null();
  }
  w.end_object();
  return text_offset;
}

}  // namespace

std::string render_completion(const ResponseMeta& meta, std::span<const CompletionChoice> choices,
                              const Usage& usage) {
  std::string out;
  std::size_t text_bytes = 0;
  for (const CompletionChoice& c : choices)
    text_bytes += c.text.size();
  out.reserve(256 + text_bytes + 128 * choices.size());
  JsonWriter w(out);
  write_meta_fields(w, meta, kObject);
  w.key("choices");
  w.begin_array();
  for (const CompletionChoice& c : choices) {
    std::optional<std::span<const TokenLogprob>> logprobs;
    if (c.logprobs) logprobs = *c.logprobs;
    (void)write_choice(w, c.index, c.text, logprobs, 0, c.finish_reason);
  }
  w.end_array();
  w.key("usage");
  write_usage(w, usage);
  w.end_object();
  return out;
}

CompletionChunkWriter::CompletionChunkWriter(const ResponseMeta& meta, bool include_usage,
                                             std::int32_t choice_count)
    : include_usage_(include_usage),
      text_offsets_(static_cast<std::size_t>(std::max(choice_count, 0)), 0) {
  JsonWriter w(prefix_);
  write_meta_fields(w, meta, kObject);
}

std::string CompletionChunkWriter::text_chunk(
    std::int32_t index, std::string_view text,
    std::optional<std::span<const TokenLogprob>> logprobs) {
  assert(index >= 0 && static_cast<std::size_t>(index) < text_offsets_.size());
  std::string out = prefix_;
  JsonWriter w = JsonWriter::continuing_object(out);
  w.key("choices");
  w.begin_array();
  std::size_t& offset = text_offsets_[static_cast<std::size_t>(index)];
  offset = write_choice(w, index, text, logprobs, offset, std::nullopt);
  w.end_array();
  if (include_usage_) w.field_null("usage");
  w.end_object();
  return out;
}

std::string CompletionChunkWriter::finish_chunk(std::int32_t index, FinishReason reason) const {
  std::string out = prefix_;
  JsonWriter w = JsonWriter::continuing_object(out);
  w.key("choices");
  w.begin_array();
  (void)write_choice(w, index, "", std::nullopt, 0, reason);
  w.end_array();
  if (include_usage_) w.field_null("usage");
  w.end_object();
  return out;
}

std::string CompletionChunkWriter::usage_chunk(const Usage& usage) const {
  assert(include_usage_);
  return render_usage_chunk(prefix_, usage);
}

}  // namespace spillway::openai
