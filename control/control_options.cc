#include "control/control_options.h"

namespace spillway::control {

Status ControlOptions::validate() const {
  const std::pair<const char*, Nanos> durations[] = {
      {"reconcile_interval", reconcile_interval},
      {"health_interval", health_interval},
      {"health_timeout", health_timeout},
      {"start_timeout", start_timeout},
      {"restart_backoff_initial", restart_backoff_initial},
      {"restart_backoff_max", restart_backoff_max},
      {"backoff_reset_after", backoff_reset_after},
      {"drain_timeout", drain_timeout},
      {"terminate_grace", terminate_grace},
  };
  for (const auto& [name, value] : durations) {
    if (value <= Nanos::zero()) {
      return make_error(ErrorCode::kInvalidArgument, "control.{}: must be positive", name);
    }
  }
  if (restart_backoff_initial > restart_backoff_max) {
    return make_error(ErrorCode::kInvalidArgument,
                      "control.restart_backoff_initial: exceeds restart_backoff_max");
  }
  const std::pair<const char*, std::int64_t> counts[] = {
      {"failures_to_unhealthy", failures_to_unhealthy},
      {"failures_to_eject", failures_to_eject},
      {"max_replicas", max_replicas},
      {"max_log_line_bytes", static_cast<std::int64_t>(max_log_line_bytes)},
  };
  for (const auto& [name, value] : counts) {
    if (value < 1) return make_error(ErrorCode::kInvalidArgument, "control.{}: must be >= 1", name);
  }
  if (threads_override < 0 || threads_override > 1024) {
    return make_error(ErrorCode::kInvalidArgument, "control.threads_override: not in [0, 1024]");
  }
  Status s = autoscaler.validate();
  if (!s.ok()) return s.error().with_context("control.autoscaler");
  return Status();
}

}  // namespace spillway::control
