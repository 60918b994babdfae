// Health and load of one replica: GET /ready, then GET /metrics, parsed into the load fields
// of a fleet::ReplicaView (running, waiting, KV usage, recent TTFT median).
//
// The TTFT median is estimated from the change of the `spillway:time_to_first_token_seconds`
// histogram since the previous successful check, so it reflects recent requests only; it is
// 0 (unknown) when no request got its first token in between.
//
// Thread-safety: one check() at a time (it owns an HttpClient); use one checker per replica.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

#include "net/http_client.h"

#include "control/prometheus_text.h"

namespace spillway::control {

struct HealthOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  // Each of connect, I/O wait and the whole request, per call (two calls per check).
  std::chrono::milliseconds timeout{500};
  std::size_t max_metrics_bytes = 4 * 1024 * 1024;
  std::string api_key;  // Sent as a Bearer token when non-empty.
};

struct HealthReport {
  bool ready = false;  // /ready answered 200.
  std::int64_t running = 0;
  std::int64_t waiting = 0;
  double kv_usage = 0;    // [0, 1].
  double ttft_p50_s = 0;  // 0 = unknown (no first token since the previous check).
};

// Reads the load fields out of a replica's /metrics text. `previous_ttft` holds the TTFT
// histogram of the previous scrape and is replaced by this one's.
// Errors: as parse_prometheus_text; kDataLoss when a required gauge is missing.
[[nodiscard]] Result<HealthReport> parse_replica_metrics(
    std::string_view metrics_text, std::vector<HistogramBucket>& previous_ttft,
    const PrometheusLimits& limits = {});

class HealthChecker {
 public:
  explicit HealthChecker(HealthOptions options);

  // One check. A replica that answers /ready with 503 is reported with ready = false (and its
  // load, when /metrics answers). Errors: the replica could not be reached or answered
  // something unreadable (kUnavailable, kDeadlineExceeded, kDataLoss, ...).
  [[nodiscard]] Result<HealthReport> check();

 private:
  [[nodiscard]] Result<net::HttpClientResponse> get(const char* target);

  HealthOptions options_;
  net::HttpClient client_;
  std::vector<HistogramBucket> previous_ttft_;
};

}  // namespace spillway::control
