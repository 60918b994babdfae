// PerfModel::decode_steps_time: the closed-form sum of step_time over a run of identical
// pure-decode steps (the fast replica's aggregated decode).
//
// For a fixed number of sequences R, a decode step's time is a function of the summed context
// x alone (attended == kv positions in decode):
//   t(x) = overhead + max(c0 + c1 x, m0 + m1 x) + comm
// (compute- and memory-bound lines of step_time's roofline; comm depends on R only). Over the
// run x_j = x0 + j R, so each line sums arithmetically; the max switches line at most once (two
// lines cross once), so the run splits into at most two arithmetic pieces.
#include <algorithm>
#include <cmath>

#include "sim/perf_model.h"

namespace spillway::sim {
namespace {

constexpr double kActivationBytes = 2;  // Mirrors perf_model.cc (BF16 all-reduce payload).

// Sum over j in [lo, hi) of (a + b * (x0 + j * r)).
double linear_sum(double a, double b, double x0, double r, double lo, double hi) {
  const double n = hi - lo;
  if (n <= 0) return 0;
  const double sum_x = n * x0 + r * (lo + hi - 1) * n / 2;
  return a * n + b * sum_x;
}

}  // namespace

Nanos PerfModel::decode_steps_time(std::int64_t sequences, std::int64_t first_context,
                                   std::int64_t steps) const {
  if (steps <= 0 || sequences <= 0) return Nanos{0};
  const double tokens = static_cast<double>(sequences);
  const double tp = tp_;
  // Seconds as lines in x (the step's summed context): matrix products and weights at the
  // general efficiencies, attention and KV reads at their own (step_time's split).
  const double c0 = 2 * model_.params() * tokens / (tp * gpu_.peak_flops * gpu_.flops_efficiency);
  const double c1 = 4.0 * model_.n_layer * model_.n_embd /
                    (tp * gpu_.peak_flops * gpu_.effective_attention_efficiency());
  const double m0 =
      model_.weight_bytes() / (tp * gpu_.memory_bandwidth * gpu_.bandwidth_efficiency);
  const double m1 = model_.kv_bytes_per_token() /
                    (tp * gpu_.memory_bandwidth * gpu_.effective_kv_bandwidth_efficiency());
  double comm = 0;
  if (tp_ > 1) {
    const double payload = tokens * model_.n_embd * kActivationBytes;
    const double one =
        to_seconds(gpu_.link_latency) + 2 * (tp - 1) / tp * payload / gpu_.link_bandwidth;
    comm = 2.0 * model_.n_layer * one;
  }
  const double x0 = static_cast<double>(first_context);
  const double r = tokens;
  const double n = static_cast<double>(steps);
  // g(j) = compute - memory at step j = g0 + j * gr; compute-bound where g >= 0. At the
  // crossing both lines agree, so the split index needs no exactness.
  const double g0 = (c0 - m0) + (c1 - m1) * x0;
  const double gr = (c1 - m1) * r;
  double split;  // Steps [0, split) on one line, [split, n) on the other.
  bool compute_first;
  if (gr == 0) {
    split = n;
    compute_first = g0 >= 0;
  } else {
    split = std::clamp(std::ceil(-g0 / gr), 0.0, n);
    compute_first = gr < 0;  // g decreasing: compute-bound first, then memory-bound.
  }
  const double first =
      compute_first ? linear_sum(c0, c1, x0, r, 0, split) : linear_sum(m0, m1, x0, r, 0, split);
  const double second =
      compute_first ? linear_sum(m0, m1, x0, r, split, n) : linear_sum(c0, c1, x0, r, split, n);
  const double total_ns = (first + second + comm * n) * 1e9;
  const double capped = std::min(total_ns, 9e18);
  return gpu_.step_overhead * steps + Nanos{std::llround(capped)};
}

}  // namespace spillway::sim
