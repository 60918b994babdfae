// A ReplicaSource over a fixed list of upstream replicas (`spillway gateway --upstream URL`,
// no control plane): each is a `spillway serve` (or any server with the same /ready and
// /metrics), probed in the background for health and live load.
//
// Health (a circuit breaker): replicas start ready. report_failure() marks one unhealthy at
// once; a probe whose GET /ready answers 200 makes it ready again, 503 marks it draining, and
// a failed probe marks it unhealthy. Load: the probe reads spillway:num_requests_waiting,
// spillway:num_requests_running and spillway:kv_cache_usage_perc from GET /metrics (missing
// series leave the last values). With poll_interval 0 there is no probing: a failed replica
// comes back after `eject_for`.
//
// Thread-safety: safe for concurrent use. One background thread (when probing), stopped and
// joined by the destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/capacity.h"
#include "gateway/replica_source.h"
#include "gateway/upstream_address.h"

namespace spillway::gateway {

struct StaticUpstream {
  std::string id;   // Unique; shown in routing decisions.
  std::string url;  // "http://127.0.0.1:9001".
  std::string model;
  std::string provider;
  std::string region;
  std::string pool;
  fleet::CapacityKind capacity = fleet::CapacityKind::kReserved;
  double cost_per_gpu_hour = 0;
  double rtt_ms = 0;
};

struct StaticReplicaSourceOptions {
  // Between two probes of every replica; 0 = never probe.
  std::chrono::milliseconds poll_interval{1000};
  // Connect and I/O timeouts of one probe request.
  std::chrono::milliseconds probe_timeout{1000};
  // Without probing: how long a reported replica stays unhealthy.
  std::chrono::milliseconds eject_for{5000};
  std::size_t max_metrics_bytes = 4u << 20;
};

class StaticReplicaSource final : public ReplicaSource {
 public:
  // kInvalidArgument for an empty list, a bad URL, an empty or repeated id or an empty model.
  [[nodiscard]] static Result<std::unique_ptr<StaticReplicaSource>> create(
      std::vector<StaticUpstream> upstreams, const StaticReplicaSourceOptions& options,
      const Clock& clock);
  ~StaticReplicaSource() override;
  StaticReplicaSource(const StaticReplicaSource&) = delete;
  StaticReplicaSource& operator=(const StaticReplicaSource&) = delete;

  [[nodiscard]] ReplicaSnapshot replicas() const override;
  void report_failure(const std::string& replica_id) override;
  // Nothing to restart: one failure ejects a replica here, and only a probe brings it back.
  void report_success(const std::string& replica_id) override;

  // Probes every replica once now (also what the background thread does).
  void probe_all();

 private:
  struct Entry {
    fleet::ReplicaView view;
    UpstreamAddress address;
    std::optional<TimePoint> ejected_until;  // Without probing.
  };

  StaticReplicaSource(std::vector<Entry> entries, const StaticReplicaSourceOptions& options,
                      const Clock& clock);
  void run();
  // Ends the ejections due by `now`, then makes snapshot_ from entries_. REQUIRES: mutex_ held.
  void make_snapshot(TimePoint now) const;

  const StaticReplicaSourceOptions options_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  // Guarded by mutex_ (the list itself never changes; replicas() ends due ejections).
  mutable std::vector<Entry> entries_;
  // Guarded by mutex_: entries_ as last read; null after a change, until the next read.
  mutable ReplicaSnapshot snapshot_;
  // Guarded by mutex_: the earliest ejected_until in entries_ (the snapshot's expiry).
  mutable std::optional<TimePoint> next_return_;
  bool stopping_ = false;  // Guarded by mutex_.
  std::condition_variable wake_;
  std::thread thread_;
};

// The value of an unlabelled (or first labelled) sample of `name` in Prometheus text, if any.
[[nodiscard]] std::optional<double> prometheus_sample(std::string_view text, std::string_view name);

}  // namespace spillway::gateway
