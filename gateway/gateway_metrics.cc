#include "gateway/gateway_metrics.h"

#include <charconv>
#include <initializer_list>
#include <iterator>
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
std::string& key_buffer() {
  thread_local std::string buffer;
  return buffer;
}

std::string_view cache_key(std::string_view name, std::initializer_list<std::string_view> values) {
  std::string& key = key_buffer();
  key.assign(name);
  for (const std::string_view v : values) {
    key.push_back('\0');
    key.append(v);
  }
  return key;
}

std::string_view status_text(int status, char (&buffer)[16]) {
  const auto end = std::to_chars(std::begin(buffer), std::end(buffer), status).ptr;
  return std::string_view(buffer, static_cast<std::size_t>(end - buffer));
}

}  // namespace

Counter* GatewayMetrics::cached(std::string_view key) {
  std::lock_guard lock(mutex_);
  const auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

Counter& GatewayMetrics::labelled(std::string_view key, std::string_view name,
                                  std::string_view help, MetricLabels labels) {
  Counter& c = registry_.counter(name, help, std::move(labels));
  std::lock_guard lock(mutex_);
  cache_.emplace(std::string(key), &c);
  return c;
}

void GatewayMetrics::request(std::string_view tenant, std::string_view model, int status) {
  char digits[16];
  const std::string_view code = status_text(status, digits);
  constexpr std::string_view kName = "spillway_gateway_requests_total";
  const std::string_view key = cache_key(kName, {tenant, model, code});
  if (Counter* c = cached(key)) {
    c->inc();
    return;
  }
  labelled(
      key, kName, "Requests answered by the gateway, by HTTP status.",
      {{"tenant", std::string(tenant)}, {"model", std::string(model)}, {"code", std::string(code)}})
      .inc();
}

void GatewayMetrics::tokens(std::string_view tenant, std::int64_t prompt, std::int64_t completion) {
  constexpr std::string_view kName = "spillway_gateway_tokens_total";
  constexpr std::string_view kHelp = "Tokens used by requests, as the replicas reported them.";
  for (const auto& [kind, n] :
       {std::pair<std::string_view, std::int64_t>{"prompt", prompt},
        std::pair<std::string_view, std::int64_t>{"completion", completion}}) {
    if (n <= 0) continue;
    const std::string_view key = cache_key(kName, {tenant, kind});
    Counter* c = cached(key);
    if (c == nullptr) {
      c = &labelled(key, kName, kHelp,
                    {{"tenant", std::string(tenant)}, {"kind", std::string(kind)}});
    }
    c->inc(static_cast<double>(n));
  }
}

void GatewayMetrics::quota_rejection(std::string_view tenant) {
  constexpr std::string_view kName = "spillway_gateway_quota_rejections_total";
  const std::string_view key = cache_key(kName, {tenant});
  if (Counter* c = cached(key)) {
    c->inc();
    return;
  }
  labelled(key, kName, "Requests refused (429) by the tenant's token or request budget.",
           {{"tenant", std::string(tenant)}})
      .inc();
}

void GatewayMetrics::upstream_failure(std::string_view reason) {
  constexpr std::string_view kName = "spillway_gateway_upstream_failures_total";
  const std::string_view key = cache_key(kName, {reason});
  if (Counter* c = cached(key)) {
    c->inc();
    return;
  }
  labelled(key, kName, "Failed upstream attempts, by kind: connect, timeout, broken, status.",
           {{"reason", std::string(reason)}})
      .inc();
}

}  // namespace spillway::gateway
