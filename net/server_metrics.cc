#include "net/server_metrics.h"

#include <string>

namespace spillway::net {
namespace {

MetricLabels with_label(const MetricLabels& labels, std::string name, std::string value) {
  MetricLabels out = labels;
  out.emplace_back(std::move(name), std::move(value));
  return out;
}

}  // namespace

ServerMetrics::ServerMetrics(MetricsRegistry& registry, const MetricLabels& labels)
    : open_(registry.gauge("spillway_http_connections_open", "Open HTTP connections.", labels)),
      rejected_(registry.counter("spillway_http_connections_rejected_total",
                                 "HTTP connections closed at once because max_connections were "
                                 "open.",
                                 labels)),
      duration_(registry.histogram("spillway_http_request_duration_seconds",
                                   "HTTP request duration, end of headers to last byte written.",
                                   latency_buckets_seconds(), labels)) {
  static constexpr const char* kCodes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "aborted"};
  for (std::size_t i = 0; i < requests_.size(); ++i) {
    requests_[i] =
        &registry.counter("spillway_http_requests_total", "HTTP requests by response status class.",
                          with_label(labels, "code", kCodes[i]));
  }
}

void ServerMetrics::request_finished(int status, double duration_seconds) {
  const int cls = status / 100;
  const std::size_t index = (cls >= 1 && cls <= 5) ? static_cast<std::size_t>(cls - 1) : 5;
  requests_[index]->inc();
  duration_.observe(duration_seconds);
}

}  // namespace spillway::net
