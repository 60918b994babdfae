#include "openai/render_common.h"

#include <cmath>

#include "openai/utf8.h"

namespace spillway::openai {
namespace {

// OpenAI reports -9999.0 for tokens too unlikely to have a finite log-probability.
constexpr float kUnlikelyLogprob = -9999.0f;

float chat_logprob(std::optional<float> logprob) {
  if (!logprob || !std::isfinite(*logprob)) return kUnlikelyLogprob;
  return *logprob;
}

void write_token(JsonWriter& w, std::string_view token, float logprob) {
  w.key("token");
  if (is_valid_utf8(token)) {
    w.string(token);
  } else {
    w.string(token_display_text(token));
  }
  w.key("logprob");
  w.number(logprob);
  w.key("bytes");
  w.begin_array();
  for (const char c : token)
    w.integer(static_cast<unsigned char>(c));
  w.end_array();
}

}  // namespace

void write_usage(JsonWriter& w, const Usage& usage) {
  w.begin_object();
  w.field_integer("prompt_tokens", usage.prompt_tokens);
  w.field_integer("completion_tokens", usage.completion_tokens);
  w.field_integer("total_tokens", usage.prompt_tokens + usage.completion_tokens);
  if (usage.cached_prompt_tokens) {
    w.key("prompt_tokens_details");
    w.begin_object();
    w.field_integer("cached_tokens", *usage.cached_prompt_tokens);
    w.end_object();
  }
  w.end_object();
}

std::string render_usage_chunk(std::string chunk_prefix, const Usage& usage) {
  JsonWriter w = JsonWriter::continuing_object(chunk_prefix);
  w.key("choices");
  w.begin_array();
  w.end_array();
  w.key("usage");
  write_usage(w, usage);
  w.end_object();
  return chunk_prefix;
}

void write_chat_logprobs(JsonWriter& w, std::span<const TokenLogprob> tokens) {
  w.begin_object();
  w.key("content");
  w.begin_array();
  for (const TokenLogprob& t : tokens) {
    w.begin_object();
    write_token(w, t.token, chat_logprob(t.logprob));
    w.key("top_logprobs");
    w.begin_array();
    for (const TopLogprob& top : t.top_logprobs) {
      w.begin_object();
      write_token(w, top.token, chat_logprob(top.logprob));
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

void write_meta_fields(JsonWriter& w, const ResponseMeta& meta, std::string_view object) {
  w.begin_object();
  w.field("id", meta.id);
  w.field("object", object);
  w.field_integer("created", meta.created_unix_s);
  w.field("model", meta.model);
  if (!meta.system_fingerprint.empty()) w.field("system_fingerprint", meta.system_fingerprint);
}

}  // namespace spillway::openai
