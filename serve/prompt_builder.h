// Turns OpenAI request prompts into token ids for the engine: chat messages through the model's
// chat template (or the documented fallback), completion prompts as text or client token ids.
//
// Chat: the template renders the conversation with add_generation_prompt = true; the text is
// tokenized with special-token parsing (so "<|im_start|>" or "<s>" written by the template
// become their control tokens), and BOS is added only if the template did not write it.
//
// Thread-safety: immutable after construction; safe for concurrent use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

#include "engine/model.h"
#include "openai/chat_request.h"
#include "openai/completion_request.h"

#include "serve/chat_template.h"

namespace spillway::serve {

struct BuiltPrompt {
  std::vector<std::int32_t> tokens;
  std::string text;  // The rendered prompt (chat) or the prompt text (completions).
  // Generation starts right after BOS with nothing else before it (detokenizer hint).
  bool starts_after_bos = false;
};

class PromptBuilder {
 public:
  // Uses the model's tokenizer.chat_template, or `override_template` when given (e.g. from a
  // --chat-template file), or the fallback when the model has none. Errors: the template does
  // not parse (kInvalidArgument, with line:column).
  [[nodiscard]] static Result<PromptBuilder> create(
      const engine::Model& model, const std::optional<std::string>& override_template);

  // Errors: the template raised an error (kInvalidArgument, param "messages"), tokenization
  // failed.
  [[nodiscard]] Result<BuiltPrompt> chat(std::span<const openai::ChatMessage> messages) const;
  // Text prompts get BOS as the vocabulary says; token prompts are taken as they are (ids are
  // checked against the vocabulary: kInvalidArgument naming "prompt").
  [[nodiscard]] Result<BuiltPrompt> completion(const openai::CompletionPrompt& prompt,
                                               std::int32_t prompt_index) const;

  [[nodiscard]] bool uses_fallback_template() const { return fallback_; }

 private:
  PromptBuilder(const engine::Model& model, ChatTemplate chat_template, bool fallback)
      : model_(&model), template_(std::move(chat_template)), fallback_(fallback) {}

  const engine::Model* model_;
  ChatTemplate template_;
  bool fallback_;
};

}  // namespace spillway::serve
