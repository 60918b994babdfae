#include "serve/prompt_builder.h"

#include <variant>

#include "openai/api_error.h"

namespace spillway::serve {

Result<PromptBuilder> PromptBuilder::create(const engine::Model& model,
                                            const std::optional<std::string>& override_template) {
  std::string_view source;
  if (override_template) {
    source = *override_template;
  } else if (model.chat_template()) {
    source = *model.chat_template();
  }
  if (source.empty()) return PromptBuilder(model, ChatTemplate::fallback(), true);
  auto t = ChatTemplate::create(source);
  if (!t.ok()) return t.error().with_context("the chat template does not parse");
  return PromptBuilder(model, std::move(t).value(), false);
}

Result<BuiltPrompt> PromptBuilder::chat(std::span<const openai::ChatMessage> messages) const {
  const engine::Vocab& vocab = model_->vocab();
  const engine::Tokenizer& tok = model_->tokenizer();
  std::vector<ChatMessage> in;
  in.reserve(messages.size());
  for (const openai::ChatMessage& m : messages) {
    in.push_back({std::string(openai::chat_role_name(m.role)), m.content});
  }
  ChatRenderOptions options;
  options.bos_token = vocab.bos_id >= 0 ? tok.token_to_piece(vocab.bos_id, true) : "";
  options.eos_token = vocab.eos_id >= 0 ? tok.token_to_piece(vocab.eos_id, true) : "";
  options.add_generation_prompt = true;
  SPW_ASSIGN_OR_RETURN(std::string text, template_.render(in, options));
  // Templates that write BOS themselves (Llama 2, Mistral, ...) must not get a second one.
  const bool has_bos = !options.bos_token.empty() && text.starts_with(options.bos_token);
  BuiltPrompt out;
  SPW_ASSIGN_OR_RETURN(out.tokens, tok.encode(text, /*add_special=*/!has_bos,
                                              /*parse_special=*/true));
  if (out.tokens.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "the chat template rendered an empty prompt");
  }
  out.text = std::move(text);
  return out;
}

Result<BuiltPrompt> PromptBuilder::completion(const openai::CompletionPrompt& prompt,
                                              std::int32_t prompt_index) const {
  BuiltPrompt out;
  const engine::Tokenizer& tok = model_->tokenizer();
  if (const auto* text = std::get_if<std::string>(&prompt)) {
    SPW_ASSIGN_OR_RETURN(out.tokens, tok.encode(*text, /*add_special=*/true,
                                                /*parse_special=*/false));
    out.text = *text;
    out.starts_after_bos = text->empty();
  } else {
    out.tokens = std::get<std::vector<std::int32_t>>(prompt);
    const std::int32_t n_vocab = model_->config().n_vocab;
    for (std::size_t i = 0; i < out.tokens.size(); ++i) {
      if (out.tokens[i] < 0 || out.tokens[i] >= n_vocab) {
        return openai::request_error(
            ErrorCode::kInvalidArgument, fmt::format("prompt[{}][{}]", prompt_index, i),
            fmt::format("token id {} is outside the vocabulary (size {})", out.tokens[i], n_vocab));
      }
      out.text += tok.token_to_piece(out.tokens[i]);
    }
  }
  if (out.tokens.empty()) {
    return openai::request_error(ErrorCode::kInvalidArgument, "prompt",
                                 "the prompt is empty and the model adds no BOS token");
  }
  return out;
}

}  // namespace spillway::serve
