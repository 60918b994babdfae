#include "serve/chat_template.h"

#include <utility>
#include <vector>

#include "engine/model.h"
#include "engine/vocab.h"

#include "serve/jinja_ast.h"
#include "serve/jinja_eval.h"
#include "serve/jinja_parser.h"

namespace spillway::serve {

struct ChatTemplate::Compiled {
  std::string source;
  jinja::Program program;
  bool fallback = false;
};

Result<ChatTemplate> ChatTemplate::create(std::string_view source,
                                          const jinja::JinjaLimits& limits) {
  auto program = jinja::parse_template(source, limits);
  if (!program.ok()) return program.error().with_context("chat template");
  auto compiled = std::make_shared<Compiled>();
  compiled->source = std::string(source);
  compiled->program = std::move(program).value();
  return ChatTemplate(std::move(compiled));
}

ChatTemplate ChatTemplate::fallback() {
  static const std::shared_ptr<const Compiled> kCompiled = [] {
    auto compiled = std::make_shared<Compiled>();
    compiled->source = std::string(kFallbackSource);
    auto program = jinja::parse_template(kFallbackSource, jinja::JinjaLimits());
    // The fallback is a constant of this file; failing to parse it is a bug in this file,
    // which the tests catch.
    if (program.ok()) compiled->program = std::move(program).value();
    compiled->fallback = true;
    return compiled;
  }();
  return ChatTemplate(kCompiled);
}

Result<ChatTemplate> ChatTemplate::for_model(const engine::Model& model,
                                             const jinja::JinjaLimits& limits) {
  const std::optional<std::string>& source = model.chat_template();
  if (!source.has_value() || source->empty()) return fallback();
  return create(*source, limits);
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                         const ChatRenderOptions& options) const {
  using jinja::Value;
  std::vector<Value> list;
  list.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    list.push_back(Value::dict({{Value::string("role"), Value::string(m.role)},
                                {Value::string("content"), Value::string(m.content)}}));
  }
  const jinja::Variables variables = {
      {"messages", Value::list(std::move(list))},
      {"bos_token", Value::string(options.bos_token)},
      {"eos_token", Value::string(options.eos_token)},
      {"add_generation_prompt", Value::boolean(options.add_generation_prompt)},
      {"tools", Value::none()},
      {"documents", Value::none()},
  };
  jinja::RenderOptions render_options;
  render_options.limits = options.limits;
  render_options.unix_time_s = options.unix_time_s;
  auto text = jinja::render(compiled_->program, variables, render_options);
  if (!text.ok() && text.error().code() != ErrorCode::kInvalidArgument)
    return text.error().with_context("chat template");
  return text;
}

const std::string& ChatTemplate::source() const {
  return compiled_->source;
}

bool ChatTemplate::is_fallback() const {
  return compiled_->fallback;
}

ChatRenderOptions chat_render_options(const engine::Vocab& vocab) {
  ChatRenderOptions options;
  if (vocab.contains(vocab.bos_id)) options.bos_token = vocab.tokens[vocab.bos_id];
  if (vocab.contains(vocab.eos_id)) options.eos_token = vocab.tokens[vocab.eos_id];
  return options;
}

}  // namespace spillway::serve
