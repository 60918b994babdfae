// The HTTP server's metrics, registered once in a MetricsRegistry:
//   spillway_http_connections_open                  gauge
//   spillway_http_connections_rejected_total        counter (over max_connections)
//   spillway_http_requests_total{code="2xx"}        counter per status class 1xx..5xx, and
//                                                   code="aborted" for requests that ended
//                                                   before any response status was sent
//   spillway_http_request_duration_seconds          histogram, end of request headers to the
//                                                   last response byte written (or the close)
// Each series also carries the server's constant labels (HttpServerOptions::metrics_labels).
//
// Thread-safety: every method is safe for concurrent use (metric updates are atomic).
#pragma once

#include <array>

#include "core/metrics.h"

namespace spillway::net {

class ServerMetrics {
 public:
  // `registry` must outlive this object.
  ServerMetrics(MetricsRegistry& registry, const MetricLabels& labels);

  void connection_opened() { open_.add(1); }
  void connection_closed() { open_.add(-1); }
  void connection_rejected() { rejected_.inc(); }
  // `status` 0 means no status was sent (the request was aborted).
  void request_finished(int status, double duration_seconds);

 private:
  Gauge& open_;
  Counter& rejected_;
  std::array<Counter*, 6> requests_{};  // 1xx..5xx, then aborted.
  Histogram& duration_;
};

}  // namespace spillway::net
