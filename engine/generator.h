// Generates text for one sequence at a time: tokenize, prefill in chunks, then decode token by
// token with a Sampler until EOS, a stop string, max_tokens or the end of the context. The
// building block of `spillway generate` and of tests against reference outputs; the serving
// core (continuous batching) drives ForwardPass directly instead.
//
// Thread-safety: one generate() at a time per Generator.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "engine/finish_reason.h"
#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/thread_pool.h"

namespace spillway::engine {

struct GeneratorOptions {
  std::int32_t threads = 1;
  std::int32_t context = 0;             // Tokens per sequence; 0 = the model's training context.
  std::int32_t max_batch_tokens = 256;  // Prompt chunk per forward step.
  KvType kv_type = KvType::kF16;
};

struct GenerateRequest {
  std::string prompt;
  std::int32_t max_tokens = 256;  // >= 1.
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool add_special = true;     // BOS (and EOS) as the vocabulary says.
  bool parse_special = false;  // Recognize control-token text such as "<s>" in the prompt.
};

struct GenerateResult {
  std::vector<std::int32_t> prompt_tokens;
  std::vector<std::int32_t> tokens;   // Generated, including a final end-of-generation token (EOS,
                                      // EOT, ...) if one was sampled.
  std::vector<SampledToken> samples;  // Per generated token (log-probabilities).
  std::string text;                   // Generated text, stop string excluded.
  FinishReason finish = FinishReason::kLength;
};

class Generator {
 public:
  // REQUIRES: `model` outlives the generator.
  [[nodiscard]] static Result<std::unique_ptr<Generator>> create(const Model& model,
                                                                 const GeneratorOptions& options);

  [[nodiscard]] std::int32_t context() const { return context_; }

  // `on_text` (optional) receives the generated text as it becomes final: valid UTF-8, stop
  // strings never emitted. Errors: kInvalidArgument for bad parameters, kOutOfRange when the
  // prompt does not leave room for one generated token in the context.
  [[nodiscard]] Result<GenerateResult> generate(
      const GenerateRequest& request, const std::function<void(std::string_view)>& on_text = {});

 private:
  Generator(const Model& model, std::int32_t context, KvCache cache, std::int32_t threads,
            std::int32_t max_batch_tokens);

  const Model& model_;
  std::int32_t context_;
  KvCache cache_;
  ThreadPool pool_;
  ForwardPass forward_;
  std::vector<std::int32_t> block_table_;
  std::vector<float> logits_;
};

}  // namespace spillway::engine
