// The gateway's Prometheus series (in the MetricsRegistry it is given):
//   spillway_gateway_requests_total{tenant,model,code}   requests answered, by HTTP status
//   spillway_gateway_tokens_total{tenant,kind}           kind = prompt | completion (settled)
//   spillway_gateway_quota_rejections_total{tenant}      429s from the tenant's budget
//   spillway_gateway_retries_total                       attempts beyond the first
//   spillway_gateway_failovers_total                     requests served by a later attempt
//   spillway_gateway_upstream_failures_total{reason}     connect | timeout | broken | status
//   spillway_gateway_queue_rejections_total              503s for lack of forwarding capacity
//   spillway_gateway_upstream_latency_seconds            request sent → response head
// Labels come from the fleet (tenants, models), never from unvalidated client input: an
// unknown tenant is "unauthenticated" and an unknown model "other".
//
// Thread-safety: safe for concurrent use.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "core/metrics.h"

namespace spillway::gateway {

class GatewayMetrics {
 public:
  // REQUIRES: `registry` outlives this object.
  explicit GatewayMetrics(MetricsRegistry& registry);

  void request(std::string_view tenant, std::string_view model, int status);
  void tokens(std::string_view tenant, std::int64_t prompt, std::int64_t completion);
  void quota_rejection(std::string_view tenant);
  void upstream_failure(std::string_view reason);

  Counter& retries;
  Counter& failovers;
  Counter& queue_rejections;
  Histogram& upstream_latency;

 private:
  // The counter cached under `key` (see gateway_metrics.cc), or nullptr.
  Counter* cached(std::string_view key);
  // Registers the counter (the registry returns the existing one if another thread was first)
  // and caches it under `key`.
  Counter& labelled(std::string_view key, std::string_view name, std::string_view help,
                    MetricLabels labels);

  MetricsRegistry& registry_;
  std::mutex mutex_;
  // (name, label values...) joined → counter; saves the registry's lookup per request.
  std::map<std::string, Counter*, std::less<>> cache_;  // Guarded by mutex_.
};

}  // namespace spillway::gateway
