// libFuzzer target for the OpenAI API component: any body must parse into a request that
// respects the limits, or fail with an Error whose OpenAI body is valid JSON; a chat body the
// one-pass reading accepts must read the same through the document (chat_request_fast.h); and
// whatever bytes reach the renderers (parsed contents, raw input as model output), the rendered
// responses and stream chunks must be valid JSON.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/parse.hpp>

#include "openai/api_error.h"
#include "openai/chat_request.h"
#include "openai/chat_request_fast.h"
#include "openai/chat_response.h"
#include "openai/completion_request.h"
#include "openai/completion_response.h"

namespace {

using namespace spillway::openai;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

void require_json(const std::string& text) {
  boost::system::error_code ec;
  (void)boost::json::parse(text, ec);
  require(!ec);
}

void check_error(const spillway::Error& error) {
  const ApiError api = to_api_error(error);
  require(api.http_status >= 400);
  if (api.param) require(is_param_path(*api.param));
  require_json(render_error_body(api));
}

// Splits `text` into "tokens" of 1 to 3 bytes, cutting through UTF-8 characters as a
// byte-level tokenizer may.
std::vector<TokenLogprob> fake_tokens(std::string_view text) {
  std::vector<TokenLogprob> tokens;
  std::size_t i = 0;
  while (i < text.size() && tokens.size() < 64) {
    const std::size_t n = 1 + (static_cast<unsigned char>(text[i]) % 3);
    const std::string piece(text.substr(i, n));
    tokens.push_back({piece, -0.5f, {{piece, -0.5f}, {std::string(text.substr(i / 2, 3)), -2.0f}}});
    i += n;
  }
  if (!tokens.empty()) tokens.front().logprob.reset();
  return tokens;
}

void render_all(std::string_view text) {
  const ResponseMeta meta{"chatcmpl-fuzz", 1, std::string(text.substr(0, 16)), std::string(text)};
  const std::vector<TokenLogprob> tokens = fake_tokens(text);
  const std::vector<ChatChoice> chat{{0, std::string(text), FinishReason::kStop, tokens}};
  require_json(render_chat_completion(meta, chat, Usage{1, 2, 3}));
  ChatChunkWriter chat_chunks(meta, true);
  require_json(chat_chunks.role_chunk(0));
  require_json(chat_chunks.content_chunk(0, text, tokens));
  require_json(chat_chunks.finish_chunk(0, FinishReason::kLength));
  require_json(chat_chunks.usage_chunk(Usage{}));
  const std::vector<CompletionChoice> completion{
      {0, std::string(text), FinishReason::kStop, tokens}};
  require_json(render_completion(meta, completion, Usage{}));
  CompletionChunkWriter completion_chunks(meta, false, 1);
  require_json(completion_chunks.text_chunk(0, text, tokens));
  require_json(completion_chunks.finish_chunk(0, FinishReason::kStop));
}

void check_common(const SamplingOptions& s, const ApiLimits& limits) {
  require(s.n >= 1 && s.n <= limits.max_n);
  require(s.stop.size() <= limits.max_stop_strings);
  for (const std::string& stop : s.stop)
    require(!stop.empty() && stop.size() <= limits.max_stop_bytes);
  require(s.temperature >= 0.0f && s.temperature <= 2.0f);
  require(s.top_p > 0.0f && s.top_p <= 1.0f);
  require(s.top_k >= 0);
  if (s.max_tokens) require(*s.max_tokens >= 0 && *s.max_tokens <= limits.max_output_tokens);
}

void check_chat(std::string_view body, const ApiLimits& limits) {
  if (const auto fast = internal::read_common_chat_request(body, limits)) {
    const auto document = internal::read_chat_request_document(body, limits);
    require(document.ok() && *document == *fast);
  }
  auto r = parse_chat_completion_request(body, limits);
  if (!r.ok()) {
    check_error(r.error());
    return;
  }
  require(!r->messages.empty() && r->messages.size() <= limits.max_messages);
  require(!r->model.empty() && r->model.size() <= limits.max_model_name_bytes);
  check_common(r->sampling, limits);
  require(r->logprobs || r->top_logprobs == 0);
  std::size_t bytes = 0;
  std::string all;
  for (const ChatMessage& m : r->messages) {
    bytes += m.content.size() + (m.name ? m.name->size() : 0);
    all += m.content;
  }
  require(bytes <= limits.max_total_content_bytes);
  render_all(all);
}

void check_completion(std::string_view body, const ApiLimits& limits) {
  auto r = parse_completion_request(body, limits);
  if (!r.ok()) {
    check_error(r.error());
    return;
  }
  require(!r->prompts.empty());
  require(r->prompts.size() == 1 || r->prompts.size() <= limits.max_prompts);
  check_common(r->sampling, limits);
  require(r->sampling.max_tokens.has_value());
  std::size_t text_bytes = 0;
  std::size_t token_ids = 0;
  for (const CompletionPrompt& p : r->prompts) {
    if (const auto* text = std::get_if<std::string>(&p)) {
      text_bytes += text->size();
    } else {
      const auto& ids = std::get<std::vector<std::int32_t>>(p);
      require(!ids.empty());
      token_ids += ids.size();
      for (const std::int32_t id : ids)
        require(id >= 0);
    }
  }
  require(text_bytes <= limits.max_total_content_bytes);
  require(token_ids <= limits.max_prompt_token_ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const ApiLimits defaults;
  check_chat(body, defaults);
  check_completion(body, defaults);
  // Tight limits reach the limit checks with small inputs.
  ApiLimits small;
  small.max_body_bytes = 512;
  small.max_json_depth = 6;
  small.max_model_name_bytes = 8;
  small.max_messages = 3;
  small.max_total_content_bytes = 32;
  small.max_prompt_token_ids = 8;
  small.max_prompts = 3;
  small.max_stop_strings = 2;
  small.max_stop_bytes = 4;
  small.max_n = 2;
  small.max_output_tokens = 64;
  small.max_top_logprobs = 2;
  small.max_completion_logprobs = 1;
  check_chat(body, small);
  check_completion(body, small);
  // The raw bytes as model output: the renderers must always produce valid JSON.
  render_all(body.substr(0, 256));
  return 0;
}
