// Chat templates: turning an OpenAI-style list of messages into the one prompt string a model
// was trained on, exactly as Hugging Face transformers' `apply_chat_template(..., tokenize=
// False)` does. GGUF models carry their template as the Jinja source in the metadata key
// `tokenizer.chat_template`; it is rendered by serve's Jinja interpreter (jinja_*.h) with
// transformers' settings: trim_blocks and lstrip_blocks on, loop controls, `raise_exception`,
// `strftime_now`, transformers' `tojson`, and the variables `messages` (a list of
// {'role': ..., 'content': ...} dicts), `bos_token`, `eos_token`, `add_generation_prompt`,
// `tools` (none) and `documents` (none).
//
// Models without a template get kFallbackSource (ChatTemplate::fallback()), a plain
// role-prefixed format:
//
//   <bos>System: You are terse.
//
//   User: Hi
//
//   Assistant:
//
// Errors (see jinja_error.h for the codes):
//   create  kInvalidArgument "chat template: 3:14: unexpected 'endfor', ..." for a template
//           that does not parse, kOutOfRange for one over JinjaLimits::max_template_bytes;
//   render  kInvalidArgument with exactly the template's message when it calls
//           raise_exception (e.g. Llama 2 and Mistral reject conversations whose roles do not
//           alternate user/assistant), kFailedPrecondition "chat template: line:col: ..."
//           for other template failures, kOutOfRange when a JinjaLimits bound is exceeded.
//
// Thread-safety: a ChatTemplate is immutable; render() may be called from many threads at
// once. Copies share the parsed template.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

#include "serve/jinja_limits.h"

namespace spillway::engine {
class Model;
struct Vocab;
}  // namespace spillway::engine

namespace spillway::serve {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

struct ChatRenderOptions {
  std::string bos_token;  // The texts of the model's special tokens, e.g. "<s>".
  std::string eos_token;
  // Append the header that starts the assistant's reply (what a completion request wants).
  bool add_generation_prompt = true;
  // The time strftime_now() formats (UTC seconds since the epoch); templates that ask for
  // today's date (Llama 3.2) use their built-in date when this is unset.
  std::optional<std::int64_t> unix_time_s;
  jinja::JinjaLimits limits;
};

class ChatTemplate {
 public:
  static constexpr std::string_view kFallbackSource =
      "{{- bos_token }}\n"
      "{%- for message in messages %}\n"
      "    {{- message['role'] | capitalize + ': ' + message['content'] | trim + '\\n\\n' }}\n"
      "{%- endfor %}\n"
      "{%- if add_generation_prompt %}\n"
      "    {{- 'Assistant:' }}\n"
      "{%- endif %}\n";

  // Parses `source`; JinjaLimits bound the template's size and syntax.
  [[nodiscard]] static Result<ChatTemplate> create(std::string_view source,
                                                   const jinja::JinjaLimits& limits = {});
  // The fallback template (kFallbackSource).
  [[nodiscard]] static ChatTemplate fallback();
  // The model's own template, or the fallback when it has none.
  [[nodiscard]] static Result<ChatTemplate> for_model(const engine::Model& model,
                                                      const jinja::JinjaLimits& limits = {});

  [[nodiscard]] Result<std::string> render(std::span<const ChatMessage> messages,
                                           const ChatRenderOptions& options) const;

  [[nodiscard]] const std::string& source() const;
  [[nodiscard]] bool is_fallback() const;

 private:
  struct Compiled;
  explicit ChatTemplate(std::shared_ptr<const Compiled> compiled)
      : compiled_(std::move(compiled)) {}

  std::shared_ptr<const Compiled> compiled_;
};

// bos_token and eos_token for `vocab`: the texts of its BOS and EOS tokens ("" when absent).
[[nodiscard]] ChatRenderOptions chat_render_options(const engine::Vocab& vocab);

}  // namespace spillway::serve
