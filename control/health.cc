#include "control/health.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace spillway::control {
namespace {

constexpr std::string_view kRunning = "spillway:num_requests_running";
constexpr std::string_view kWaiting = "spillway:num_requests_waiting";
constexpr std::string_view kKvUsage = "spillway:kv_cache_usage_perc";
constexpr std::string_view kTtft = "spillway:time_to_first_token_seconds";

net::HttpClientOptions client_options(const HealthOptions& o) {
  net::HttpClientOptions c;
  c.host = o.host;
  c.port = o.port;
  c.connect_timeout = o.timeout;
  c.io_timeout = o.timeout;
  c.request_timeout = o.timeout;
  c.max_body_bytes = o.max_metrics_bytes;
  return c;
}

std::int64_t to_count(double v) {
  if (!std::isfinite(v) || v < 0) return 0;
  return static_cast<std::int64_t>(std::llround(v));
}

}  // namespace

Result<HealthReport> parse_replica_metrics(std::string_view metrics_text,
                                           std::vector<HistogramBucket>& previous_ttft,
                                           const PrometheusLimits& limits) {
  SPW_ASSIGN_OR_RETURN(const auto samples, parse_prometheus_text(metrics_text, limits));
  HealthReport report;
  const auto running = find_sample(samples, kRunning);
  const auto waiting = find_sample(samples, kWaiting);
  const auto kv = find_sample(samples, kKvUsage);
  if (!running || !waiting || !kv) {
    return make_error(ErrorCode::kDataLoss, "metrics lack {}",
                      !running ? kRunning : (!waiting ? kWaiting : kKvUsage));
  }
  report.running = to_count(*running);
  report.waiting = to_count(*waiting);
  report.kv_usage = std::isfinite(*kv) ? std::clamp(*kv, 0.0, 1.0) : 0.0;
  SPW_ASSIGN_OR_RETURN(auto ttft, extract_histogram(samples, kTtft));
  const auto p50 = histogram_quantile(0.5, histogram_delta(ttft, previous_ttft));
  report.ttft_p50_s = p50 && std::isfinite(*p50) ? *p50 : 0.0;
  previous_ttft = std::move(ttft);
  return report;
}

HealthChecker::HealthChecker(HealthOptions options)
    : options_(std::move(options)), client_(client_options(options_)) {}

Result<net::HttpClientResponse> HealthChecker::get(const char* target) {
  net::HttpClientRequest request;
  request.target = target;
  if (!options_.api_key.empty()) {
    request.headers.set("Authorization", "Bearer " + options_.api_key);
  }
  auto response = client_.request(request);
  if (!response.ok()) client_.close();
  return response;
}

Result<HealthReport> HealthChecker::check() {
  SPW_ASSIGN_OR_RETURN(const auto ready, get("/ready"));
  if (ready.status != 200 && ready.status != 503) {
    return make_error(ErrorCode::kUnavailable, "/ready answered {}", ready.status);
  }
  SPW_ASSIGN_OR_RETURN(const auto metrics, get("/metrics"));
  if (metrics.status != 200) {
    return make_error(ErrorCode::kUnavailable, "/metrics answered {}", metrics.status);
  }
  PrometheusLimits limits;
  limits.max_bytes = options_.max_metrics_bytes;
  SPW_ASSIGN_OR_RETURN(HealthReport report,
                       parse_replica_metrics(metrics.body, previous_ttft_, limits));
  report.ready = ready.status == 200;
  return report;
}

}  // namespace spillway::control
