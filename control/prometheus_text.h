// A small reader for the Prometheus text exposition format (0.0.4): the control plane reads
// replicas' /metrics with it. It keeps samples only (name, labels, value); comments (# HELP,
// # TYPE) are skipped, timestamps accepted and dropped. Histograms are read back from their
// `_bucket` samples, and a quantile is estimated the way Prometheus' histogram_quantile does
// (linear interpolation inside the bucket holding the rank).
//
// Input is untrusted (another process's output): sizes are bounded by PrometheusLimits and
// every malformed line is an error naming its line number; nothing aborts.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace spillway::control {

struct PrometheusLimits {
  std::size_t max_bytes = 4 * 1024 * 1024;
  std::size_t max_samples = 100'000;
  std::size_t max_labels_per_sample = 64;
};

struct PrometheusSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // Unescaped values, file order.
  double value = 0;                                         // May be ±Inf or NaN.

  // The value of label `label_name`, if present.
  [[nodiscard]] std::optional<std::string_view> label(std::string_view label_name) const;
};

// Errors: kPayloadTooLarge (over max_bytes or max_samples), kDataLoss ("line N: ..." for a
// malformed line: bad name, label syntax or escape, value that is not a number).
[[nodiscard]] Result<std::vector<PrometheusSample>> parse_prometheus_text(
    std::string_view text, const PrometheusLimits& limits = {});

// The value of the first sample named `name` whose labels include every pair in `labels`.
[[nodiscard]] std::optional<double> find_sample(
    const std::vector<PrometheusSample>& samples, std::string_view name,
    const std::vector<std::pair<std::string, std::string>>& labels = {});

// One histogram bucket: cumulative count of observations <= upper_bound (+Inf for the last).
struct HistogramBucket {
  double upper_bound = 0;
  double cumulative_count = 0;
};

// The buckets of histogram `name` (samples `<name>_bucket{le="..."}`), ascending by bound;
// samples of the same bound with different other labels are summed. Empty when absent.
// Errors: kDataLoss for a bucket without a parseable `le` label.
[[nodiscard]] Result<std::vector<HistogramBucket>> extract_histogram(
    const std::vector<PrometheusSample>& samples, std::string_view name);

// `current` minus `previous`, bucket by bucket, for observations made between two scrapes.
// When the bounds differ or any count went down (the process restarted), `current` alone.
[[nodiscard]] std::vector<HistogramBucket> histogram_delta(
    const std::vector<HistogramBucket>& current, const std::vector<HistogramBucket>& previous);

// Estimates quantile `q` in [0, 1] of cumulative `buckets` (ascending, last one +Inf).
// nullopt when there are no observations. A rank in the +Inf bucket yields the largest finite
// bound; the first bucket interpolates from 0.
[[nodiscard]] std::optional<double> histogram_quantile(double q,
                                                       const std::vector<HistogramBucket>& buckets);

}  // namespace spillway::control
