// Autoscaling of one model: from periodic load samples to a desired replica count.
//
// Each sample is classified:
//   pressure: waiting requests per replica > scale_out_waiting_per_replica, or mean KV usage
//             > scale_out_kv_usage, or TTFT p50 > scale_out_ttft_ratio * the model's SLO;
//   calm:     waiting per replica <= scale_in_waiting_per_replica and KV usage <
//             scale_in_kv_usage and TTFT p50 < scale_in_ttft_ratio * SLO (unknown TTFT = 0);
//   neither:  resets both windows.
// Scale out by one replica after pressure in every sample for scale_out_window; scale in by
// one after calm in every sample for scale_in_window (longer, so a lull does not flap).
// After any change: no other change for `cooldown`, and both windows restart. Pressure counts
// only in samples whose replica count has caught up with the desired count, so the window
// before the next scale-out measures the fleet with the last step landed. The desired count
// always stays within [min_replicas, max_replicas].
//
// Time comes from the Clock given at construction: `spillway sim` passes simulated time.
// Thread-safety: not thread-safe; one control loop owns each autoscaler.
#pragma once

#include <cstdint>
#include <optional>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/fleet_spec.h"

namespace spillway::fleet {

struct AutoscalerOptions {
  double scale_out_waiting_per_replica = 4;
  double scale_out_kv_usage = 0.85;
  double scale_out_ttft_ratio = 1.0;
  double scale_in_waiting_per_replica = 0.5;
  double scale_in_kv_usage = 0.40;
  double scale_in_ttft_ratio = 0.5;
  Nanos scale_out_window = std::chrono::seconds(30);
  Nanos scale_in_window = std::chrono::seconds(300);
  Nanos cooldown = std::chrono::seconds(60);

  // kInvalidArgument naming the field when a threshold is negative/NaN, a window or cooldown
  // is negative, or the scale-in thresholds are not below the scale-out ones.
  [[nodiscard]] Status validate() const;
};

// One observation of a model's replicas, taken at the clock's now().
struct AutoscaleSample {
  std::int64_t waiting = 0;   // Requests waiting, summed over the model's ready replicas.
  double kv_usage = 0;        // Mean KV usage over them, [0, 1].
  double ttft_p50_s = 0;      // Recent TTFT median; 0 = unknown.
  std::int64_t replicas = 0;  // Ready replicas.
};

class Autoscaler {
 public:
  // REQUIRES: options.validate().ok(); model.min_replicas <= model.max_replicas.
  // `clock` must outlive the autoscaler. The desired count starts at min_replicas.
  Autoscaler(const ModelSpec& model, const AutoscalerOptions& options, const Clock& clock);

  // Records a sample and returns the desired replica count.
  std::int64_t observe(const AutoscaleSample& sample);
  [[nodiscard]] std::int64_t desired() const { return desired_; }

 private:
  enum class Signal { kPressure, kCalm, kNeither };
  [[nodiscard]] Signal classify(const AutoscaleSample& sample) const;
  [[nodiscard]] bool cooling_down(TimePoint now) const;
  void change(std::int64_t delta, TimePoint now);

  std::int64_t min_replicas_;
  std::int64_t max_replicas_;
  double slo_ttft_s_;
  AutoscalerOptions options_;
  const Clock& clock_;
  std::int64_t desired_;
  std::optional<TimePoint> pressure_since_;
  std::optional<TimePoint> calm_since_;
  std::optional<TimePoint> last_change_;
};

}  // namespace spillway::fleet
