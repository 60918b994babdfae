#include "fleet/autoscaler.h"

#include <algorithm>
#include <cmath>

namespace spillway::fleet {

namespace {

bool valid_threshold(double x) {
  return std::isfinite(x) && x >= 0;
}

}  // namespace

Status AutoscalerOptions::validate() const {
  struct Field {
    const char* name;
    double value;
  };
  for (const Field& f : {Field{"scale_out_waiting_per_replica", scale_out_waiting_per_replica},
                         Field{"scale_out_kv_usage", scale_out_kv_usage},
                         Field{"scale_out_ttft_ratio", scale_out_ttft_ratio},
                         Field{"scale_in_waiting_per_replica", scale_in_waiting_per_replica},
                         Field{"scale_in_kv_usage", scale_in_kv_usage},
                         Field{"scale_in_ttft_ratio", scale_in_ttft_ratio}}) {
    if (!valid_threshold(f.value)) {
      return make_error(ErrorCode::kInvalidArgument, "autoscaler.{}: {} is not a finite value >= 0",
                        f.name, f.value);
    }
  }
  if (scale_in_waiting_per_replica >= scale_out_waiting_per_replica ||
      scale_in_kv_usage >= scale_out_kv_usage || scale_in_ttft_ratio >= scale_out_ttft_ratio) {
    return make_error(ErrorCode::kInvalidArgument,
                      "autoscaler: each scale_in_* threshold must be below its scale_out_* one");
  }
  if (scale_out_window.count() < 0 || scale_in_window.count() < 0 || cooldown.count() < 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "autoscaler: windows and cooldown must not be negative");
  }
  return Status();
}

Autoscaler::Autoscaler(const ModelSpec& model, const AutoscalerOptions& options, const Clock& clock)
    : min_replicas_(model.min_replicas),
      max_replicas_(model.max_replicas),
      slo_ttft_s_(model.slo_ttft_ms / 1000.0),
      options_(options),
      clock_(clock),
      desired_(model.min_replicas) {}

Autoscaler::Signal Autoscaler::classify(const AutoscaleSample& s) const {
  const double per_replica =
      static_cast<double>(s.waiting) / static_cast<double>(std::max<std::int64_t>(s.replicas, 1));
  const double ttft_ratio = s.ttft_p50_s > 0 ? s.ttft_p50_s / slo_ttft_s_ : 0;
  if (per_replica > options_.scale_out_waiting_per_replica ||
      s.kv_usage > options_.scale_out_kv_usage || ttft_ratio > options_.scale_out_ttft_ratio) {
    return Signal::kPressure;
  }
  if (per_replica <= options_.scale_in_waiting_per_replica &&
      s.kv_usage < options_.scale_in_kv_usage && ttft_ratio < options_.scale_in_ttft_ratio) {
    return Signal::kCalm;
  }
  return Signal::kNeither;
}

bool Autoscaler::cooling_down(TimePoint now) const {
  return last_change_.has_value() && now - *last_change_ < options_.cooldown;
}

void Autoscaler::change(std::int64_t delta, TimePoint now) {
  desired_ += delta;
  last_change_ = now;
  pressure_since_.reset();
  calm_since_.reset();
}

std::int64_t Autoscaler::observe(const AutoscaleSample& sample) {
  const TimePoint now = clock_.now();
  desired_ = std::clamp(desired_, min_replicas_, max_replicas_);
  switch (classify(sample)) {
    case Signal::kPressure:
      calm_since_.reset();
      if (sample.replicas < desired_) {
        // The last step has not landed: wait to see its effect before counting pressure.
        pressure_since_.reset();
        break;
      }
      if (!pressure_since_) pressure_since_ = now;
      if (now - *pressure_since_ >= options_.scale_out_window && !cooling_down(now) &&
          desired_ < max_replicas_) {
        change(+1, now);
      }
      break;
    case Signal::kCalm:
      pressure_since_.reset();
      if (!calm_since_) calm_since_ = now;
      if (now - *calm_since_ >= options_.scale_in_window && !cooling_down(now) &&
          desired_ > min_replicas_) {
        change(-1, now);
      }
      break;
    case Signal::kNeither:
      pressure_since_.reset();
      calm_since_.reset();
      break;
  }
  return desired_;
}

}  // namespace spillway::fleet
