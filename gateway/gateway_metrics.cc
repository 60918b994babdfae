#include "gateway/gateway_metrics.h"

#include <fmt/format.h>

namespace spillway::gateway {

GatewayMetrics::GatewayMetrics(MetricsRegistry& registry)
    : retries(registry.counter("spillway_gateway_retries_total",
                               "Upstream attempts beyond the first one of a request.")),
      failovers(registry.counter("spillway_gateway_failovers_total",
                                 "Requests answered by a replica other than the first chosen.")),
      queue_rejections(registry.counter(
          "spillway_gateway_queue_rejections_total",
          "Requests refused (503) because every forwarding slot was busy for too long.")),
      upstream_latency(
          registry.histogram("spillway_gateway_upstream_latency_seconds",
                             "Time from sending a request to a replica to its response head.",
                             latency_buckets_seconds())),
      registry_(registry) {}

Counter& GatewayMetrics::labelled(std::string_view name, std::string_view help,
                                  MetricLabels labels) {
  std::string key(name);
  for (const auto& [k, v] : labels) {
    key.push_back('\0');
    key.append(v);
  }
  std::lock_guard lock(mutex_);
  const auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;
  Counter& c = registry_.counter(name, help, std::move(labels));
  cache_.emplace(std::move(key), &c);
  return c;
}

void GatewayMetrics::request(std::string_view tenant, std::string_view model, int status) {
  labelled("spillway_gateway_requests_total", "Requests answered by the gateway, by HTTP status.",
           {{"tenant", std::string(tenant)},
            {"model", std::string(model)},
            {"code", std::to_string(status)}})
      .inc();
}

void GatewayMetrics::tokens(std::string_view tenant, std::int64_t prompt, std::int64_t completion) {
  constexpr std::string_view kHelp = "Tokens used by requests, as the replicas reported them.";
  if (prompt > 0) {
    labelled("spillway_gateway_tokens_total", kHelp,
             {{"tenant", std::string(tenant)}, {"kind", "prompt"}})
        .inc(static_cast<double>(prompt));
  }
  if (completion > 0) {
    labelled("spillway_gateway_tokens_total", kHelp,
             {{"tenant", std::string(tenant)}, {"kind", "completion"}})
        .inc(static_cast<double>(completion));
  }
}

void GatewayMetrics::quota_rejection(std::string_view tenant) {
  labelled("spillway_gateway_quota_rejections_total",
           "Requests refused (429) by the tenant's token or request budget.",
           {{"tenant", std::string(tenant)}})
      .inc();
}

void GatewayMetrics::upstream_failure(std::string_view reason) {
  labelled("spillway_gateway_upstream_failures_total",
           "Failed upstream attempts, by kind: connect, timeout, broken, status.",
           {{"reason", std::string(reason)}})
      .inc();
}

}  // namespace spillway::gateway
