// Turns next-token logits into a token: penalties, then greedy or random sampling with
// temperature, top-k, top-p (nucleus) and min-p, from a seeded generator (same seed, same
// output).
//
// Order, as vLLM (and so the OpenAI-compatible API) applies them: repetition penalty (prompt and
// output tokens), presence and frequency penalties (output tokens), temperature, then top-k,
// top-p and min-p on the tempered distribution. Temperature 0 is greedy (argmax, lowest id on
// ties). Log-probabilities are of the model's raw distribution (log-softmax of the logits before
// any penalty), as OpenAI reports them.
//
// Thread-safety: one Sampler per sequence; not for concurrent use.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/random.h"
#include "core/status.h"

namespace spillway::engine {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy; >= 0.
  std::int32_t top_k = 0;           // 0 = off.
  float top_p = 1.0f;               // (0, 1]; 1 = off.
  float min_p = 0.0f;               // [0, 1); 0 = off.
  float repetition_penalty = 1.0f;  // > 0; 1 = off. Divides positive logits, multiplies negative.
  float presence_penalty = 0.0f;    // [-2, 2]; subtracted once per distinct output token.
  float frequency_penalty = 0.0f;   // [-2, 2]; subtracted per occurrence in the output.
  std::uint64_t seed = 0;
  std::int32_t top_logprobs = 0;  // Alternatives to report per token, [0, 20].
};

// Range checks for untrusted parameters; errors name the parameter.
[[nodiscard]] Status validate_sampling_params(const SamplingParams& p);

struct TokenLogprob {
  std::int32_t token = 0;
  float logprob = 0.0f;
};

struct SampledToken {
  std::int32_t token = 0;
  float logprob = 0.0f;           // Of the chosen token, raw distribution.
  std::vector<TokenLogprob> top;  // top_logprobs most likely tokens, most likely first.
};

// Log-probabilities as reported for tokens (the raw distribution, before any penalty):
// log p(t) = logits[t] - log_partition(logits). REQUIRES: logits non-empty.
[[nodiscard]] float log_partition(std::span<const float> logits);

// Scores `token` under the raw distribution of `logits` exactly as Sampler::sample reports the
// token it picks: its log-probability and the `top_logprobs` most likely tokens (most likely
// first, lower id first on ties). Used for prompt tokens, which are given rather than sampled.
// `order` is scratch space, reused across calls. REQUIRES: 0 <= token < logits.size(),
// top_logprobs >= 0.
[[nodiscard]] SampledToken score_token(std::span<const float> logits, std::int32_t token,
                                       std::int32_t top_logprobs, std::vector<std::int32_t>& order);

class Sampler {
 public:
  // REQUIRES: validate_sampling_params(params).ok(), n_vocab > 0.
  Sampler(const SamplingParams& params, std::int32_t n_vocab);

  // Remembers prompt tokens (for the repetition penalty).
  void add_prompt(std::span<const std::int32_t> tokens);

  // Picks the next token from `logits` ([n_vocab], modified in place) and records it as output.
  SampledToken sample(std::span<float> logits);

 private:
  void apply_penalties(std::span<float> logits) const;

  SamplingParams params_;
  std::int32_t n_vocab_;
  SeededRandom rng_;
  std::unordered_map<std::int32_t, std::int32_t> output_counts_;
  std::vector<std::int32_t> seen_;  // Tokens in prompt or output, for the repetition penalty.
  std::vector<std::uint8_t> seen_mask_;
  std::vector<std::int32_t> order_;  // Candidate ids, reused.
  std::vector<float> probs_;         // Reused.
  std::vector<float> raw_;           // Logits before penalties, when penalties are on.
};

}  // namespace spillway::engine
