#include "gateway/gateway_metrics.h"

#include <charconv>
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>

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

namespace {

// The cache key of a labelled counter: the name and the label values, NUL-separated (label
// values never contain NUL: they come from the fleet file or are fixed words). Built in a
// per-thread buffer, so a lookup that hits allocates nothing.
std::string_view cache_key(std::string_view name,
                           std::initializer_list<GatewayMetrics::Label> labels) {
  thread_local std::string key;
  key.assign(name);
  for (const GatewayMetrics::Label& label : labels) {
    key.push_back('\0');
    key.append(label.second);
  }
  return key;
}

constexpr std::string_view kRequestsName = "spillway_gateway_requests_total";
constexpr std::string_view kRequestsHelp = "Requests answered by the gateway, by HTTP status.";

std::string_view status_text(int status, char (&buffer)[16]) {
  const auto end = std::to_chars(std::begin(buffer), std::end(buffer), status).ptr;
  return std::string_view(buffer, static_cast<std::size_t>(end - buffer));
}

}  // namespace

Counter& GatewayMetrics::counter(std::string_view name, std::string_view help,
                                 std::initializer_list<Label> labels) {
  const std::string_view key = cache_key(name, labels);
  {
    std::lock_guard lock(mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) return *it->second;
  }
  MetricLabels owned;
  owned.reserve(labels.size());
  for (const Label& label : labels)
    owned.emplace_back(label.first, label.second);
  // The registry returns the existing counter if another thread registered it first.
  Counter& c = registry_.counter(name, help, std::move(owned));
  std::lock_guard lock(mutex_);
  cache_.emplace(std::string(key), &c);
  return c;
}

void GatewayMetrics::request(std::string_view tenant, std::string_view model, int status) {
  char digits[16];
  counter(kRequestsName, kRequestsHelp,
          {{"tenant", tenant}, {"model", model}, {"code", status_text(status, digits)}})
      .inc();
}

void GatewayMetrics::tokens(std::string_view tenant, std::int64_t prompt, std::int64_t completion) {
  if (prompt <= 0 && completion <= 0) return;
  const auto [prompt_counter, completion_counter] = token_counters(tenant);
  add_tokens({.prompt_tokens = prompt_counter, .completion_tokens = completion_counter}, prompt,
             completion);
}

void GatewayMetrics::add_tokens(const SuccessCounters& counters, std::int64_t prompt,
                                std::int64_t completion) {
  if (prompt > 0) counters.prompt_tokens->inc(static_cast<double>(prompt));
  if (completion > 0) counters.completion_tokens->inc(static_cast<double>(completion));
}

GatewayMetrics::SuccessCounters GatewayMetrics::success_counters(std::string_view tenant,
                                                                 std::string_view model) {
  const auto [prompt, completion] = token_counters(tenant);
  return {.requests = &counter(kRequestsName, kRequestsHelp,
                               {{"tenant", tenant}, {"model", model}, {"code", "200"}}),
          .prompt_tokens = prompt,
          .completion_tokens = completion};
}

std::pair<Counter*, Counter*> GatewayMetrics::token_counters(std::string_view tenant) {
  std::pair<Counter*, Counter*> counters{nullptr, nullptr};
  {
    std::lock_guard lock(mutex_);
    const auto it = token_counters_.find(tenant);
    if (it != token_counters_.end()) counters = it->second;
  }
  if (counters.first == nullptr) {
    constexpr std::string_view kName = "spillway_gateway_tokens_total";
    constexpr std::string_view kHelp = "Tokens used by requests, as the replicas reported them.";
    counters = {&counter(kName, kHelp, {{"tenant", tenant}, {"kind", "prompt"}}),
                &counter(kName, kHelp, {{"tenant", tenant}, {"kind", "completion"}})};
    std::lock_guard lock(mutex_);
    token_counters_.emplace(std::string(tenant), counters);
  }
  return counters;
}

void GatewayMetrics::quota_rejection(std::string_view tenant) {
  counter("spillway_gateway_quota_rejections_total",
          "Requests refused (429) by the tenant's token or request budget.", {{"tenant", tenant}})
      .inc();
}

void GatewayMetrics::upstream_failure(std::string_view reason) {
  counter("spillway_gateway_upstream_failures_total",
          "Failed upstream attempts, by kind: connect, timeout, broken, status.",
          {{"reason", reason}})
      .inc();
}

}  // namespace spillway::gateway
