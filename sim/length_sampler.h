// Request lengths (prompt and output tokens) for synthetic workloads, and the scaling and
// clipping rules every workload applies to them.
//
// A LengthSampler draws (prompt, output) pairs either from a trace's rows (uniformly, so the
// joint distribution is the trace's) or from a built-in table of the Azure LLM inference
// conversation trace's quantiles (Patel et al., "Splitwise", ISCA 2024; 400 equal-probability
// bins per length, prompt and output drawn independently: their rank correlation in the trace
// is 0.07). See docs/sim/workload.md.
//
// Thread-safety: const methods are safe to call concurrently; the Random is the caller's.
#pragma once

#include <cstdint>
#include <vector>

#include "core/random.h"
#include "core/request_trace.h"
#include "core/status.h"

namespace spillway::sim {

struct LengthPair {
  std::int32_t prompt = 1;
  std::int32_t output = 1;
};

class LengthSampler {
 public:
  // The trace's rows (lengths < 1 become 1). kInvalidArgument for a trace without rows.
  [[nodiscard]] static Result<LengthSampler> from_trace(const RequestTrace& trace);
  // The built-in Azure conversation-trace distribution.
  [[nodiscard]] static LengthSampler azure_conversation();

  [[nodiscard]] LengthPair sample(Random& rng) const;
  // Expected values of sample().
  [[nodiscard]] double mean_prompt() const { return mean_prompt_; }
  [[nodiscard]] double mean_output() const { return mean_output_; }

 private:
  LengthSampler() = default;

  std::vector<LengthPair> rows_;  // Empirical mode when non-empty.
  double mean_prompt_ = 0;
  double mean_output_ = 0;
};

// Multiplies both lengths by `scale` (> 0), rounding, at least 1 each: the rule of
// `spillway bench --trace --length-scale`.
[[nodiscard]] LengthPair scale_lengths(LengthPair lengths, double scale);

// Fits prompt + output into `max_context` tokens as `spillway bench --trace` does: the output
// keeps at most max_context / 2, the prompt the rest; 0 = no clipping.
// REQUIRES: max_context == 0 || max_context >= 2.
[[nodiscard]] LengthPair clip_lengths(LengthPair lengths, std::int32_t max_context);

}  // namespace spillway::sim
