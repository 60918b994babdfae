// A metrics registry (counters, gauges, histograms, each with optional constant labels) that
// renders the Prometheus text exposition format (version 0.0.4).
//
// Thread-safety: registering and rendering are safe for concurrent use (one mutex, taken only
// there); updating a metric (inc/set/observe) is lock-free and safe from any thread.
// Lifetime: the references that registration returns stay valid for the registry's lifetime.
// Registering an existing name+labels again returns the same metric.
//
// Names and label names must match Prometheus' rules and one name has one type; breaking
// either is a programmer error, reported by throwing std::logic_error at registration.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  // REQUIRES: delta >= 0 (counters only go up).
  void inc(double delta = 1.0);
  [[nodiscard]] double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double delta);
  [[nodiscard]] double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `upper_bounds` must be strictly increasing and finite; "+Inf" is implicit.
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);

  [[nodiscard]] const std::vector<double>& upper_bounds() const { return bounds_; }
  // Non-cumulative count of bucket i (i == upper_bounds().size() is the +Inf bucket).
  [[nodiscard]] std::uint64_t bucket_count(std::size_t i) const;
  [[nodiscard]] std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  [[nodiscard]] double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

// Bucket bounds for latencies in seconds, from 1 ms to 60 s.
[[nodiscard]] std::vector<double> latency_buckets_seconds();

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter& counter(std::string_view name, std::string_view help, MetricLabels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, MetricLabels labels = {});
  // A gauge whose value is computed at render time. `fn` must be safe to call from the
  // rendering thread for the registry's lifetime.
  void gauge_fn(std::string_view name, std::string_view help, std::function<double()> fn,
                MetricLabels labels = {});
  Histogram& histogram(std::string_view name, std::string_view help,
                       std::vector<double> upper_bounds, MetricLabels labels = {});

  // The whole registry in Prometheus text format, families in registration order.
  [[nodiscard]] std::string render_prometheus() const;

 private:
  struct Family;
  Family& family(std::string_view name, std::string_view help, int type);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;  // Guarded by mu_.
};

// Text-format helpers, exposed for tests.
[[nodiscard]] bool is_valid_metric_name(std::string_view name);
[[nodiscard]] bool is_valid_label_name(std::string_view name);
[[nodiscard]] std::string escape_label_value(std::string_view value);
[[nodiscard]] std::string format_metric_value(double v);

}  // namespace spillway
