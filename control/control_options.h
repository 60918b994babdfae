// Every interval, timeout and limit of the control plane, in one struct.
//
// Thread-safety: a plain value.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/autoscaler.h"

namespace spillway::control {

struct ControlOptions {
  // How often the reconcile loop runs (desired vs actual, restarts, drains, autoscaling).
  Nanos reconcile_interval = std::chrono::seconds(1);
  // How often each replica's /ready and /metrics are polled (at most once per reconcile).
  Nanos health_interval = std::chrono::seconds(1);
  // Per HTTP call of a health check (connect, each wait, whole call).
  std::chrono::milliseconds health_timeout{500};
  // Consecutive failed health checks that make a ready replica unhealthy (no traffic).
  int failures_to_unhealthy = 3;
  // Consecutive connection-level failures reported by the gateway that eject a replica
  // (circuit breaker); it is re-admitted after its next successful health check.
  int failures_to_eject = 3;
  // A replica not ready this long after launch is killed and restarted like a crash.
  Nanos start_timeout = std::chrono::seconds(120);
  // Restart backoff after a crash: initial, doubling per consecutive crash, capped; the streak
  // resets once the replica has been ready for backoff_reset_after.
  Nanos restart_backoff_initial = std::chrono::seconds(1);
  Nanos restart_backoff_max = std::chrono::seconds(30);
  Nanos backoff_reset_after = std::chrono::seconds(60);
  // A draining replica is sent SIGTERM when it has nothing running or waiting, or after this.
  Nanos drain_timeout = std::chrono::seconds(60);
  // SIGTERM → SIGKILL grace (the replica finishes in-flight requests in between).
  Nanos terminate_grace = std::chrono::seconds(35);
  // Replicas in the whole fleet, all models and states (draining included).
  std::int64_t max_replicas = 64;
  // The spillway executable replicas run; empty: this process's own executable.
  std::string spillway_bin;
  // Model name → GGUF path, replacing the fleet file's path for that model.
  std::map<std::string, std::string, std::less<>> model_paths;
  // The key replicas accept (--api-key and --trusted-key); empty: generated at start()
  // (SecureRandom). Never logged.
  std::string internal_api_key;
  // Engine threads per replica when a pool's [local] table leaves the default; 0 = the table.
  int threads_override = 0;
  // Extra `spillway serve` arguments for every replica (e.g. "--ctx-size", "256").
  std::vector<std::string> extra_serve_args;
  // Stderr lines of replicas forwarded to the log are cut at this length.
  std::size_t max_log_line_bytes = 8192;
  fleet::AutoscalerOptions autoscaler;

  // kInvalidArgument naming the field when an interval or timeout is not positive, a count is
  // below 1, backoff_initial > backoff_max, or the autoscaler options are invalid.
  [[nodiscard]] Status validate() const;
};

}  // namespace spillway::control
