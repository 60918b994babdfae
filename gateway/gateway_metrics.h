// The gateway's Prometheus series (in the MetricsRegistry it is given):
//   spillway_gateway_requests_total{tenant,model,code}   requests answered, by HTTP status
//   spillway_gateway_tokens_total{tenant,kind}           kind = prompt | completion (settled;
//                                                        both from a tenant's first tokens or
//                                                        first success)
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

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/metrics.h"

namespace spillway::gateway {

class GatewayMetrics {
 public:
  // REQUIRES: `registry` outlives this object.
  explicit GatewayMetrics(MetricsRegistry& registry);

  // (label name, label value); copied only when a counter is first registered.
  using Label = std::pair<std::string_view, std::string_view>;

  void request(std::string_view tenant, std::string_view model, int status);
  void tokens(std::string_view tenant, std::int64_t prompt, std::int64_t completion);

  // What request(tenant, model, 200) and tokens(tenant, ...) increment: the gateway keeps
  // them per tenant and model, so the end of a successful request (before its answer reaches
  // the client) only adds to them, with no lookup.
  struct SuccessCounters {
    Counter* requests = nullptr;
    Counter* prompt_tokens = nullptr;
    Counter* completion_tokens = nullptr;
  };
  [[nodiscard]] SuccessCounters success_counters(std::string_view tenant, std::string_view model);
  // Adds the positive counts to the token counters of `counters` (what tokens() adds).
  static void add_tokens(const SuccessCounters& counters, std::int64_t prompt,
                         std::int64_t completion);
  void quota_rejection(std::string_view tenant);
  void upstream_failure(std::string_view reason);

  Counter& retries;
  Counter& failovers;
  Counter& queue_rejections;
  Histogram& upstream_latency;

 private:
  // The counter `name` with these labels, from the cache (name and label values joined; see
  // gateway_metrics.cc), else registered (the registry returns the existing one if another
  // thread was first) and cached. A hit allocates nothing.
  Counter& counter(std::string_view name, std::string_view help,
                   std::initializer_list<Label> labels);

  MetricsRegistry& registry_;
  // Hashes string_view and string alike, so a lookup needs no std::string.
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const {
      return std::hash<std::string_view>{}(key);
    }
  };

  [[nodiscard]] std::pair<Counter*, Counter*> token_counters(std::string_view tenant);

  std::mutex mutex_;
  // (name, label values...) joined → counter; saves the registry's lookup per request.
  std::unordered_map<std::string, Counter*, KeyHash, std::equal_to<>> cache_;  // Guarded by mutex_.
  // tenant → its (prompt, completion) token counters: one lookup per settled request.
  std::unordered_map<std::string, std::pair<Counter*, Counter*>, KeyHash, std::equal_to<>>
      token_counters_;  // Guarded by mutex_.
};

}  // namespace spillway::gateway
