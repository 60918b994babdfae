// What a simulation run reports: latency distributions (overall, per tenant, per priority),
// SLO attainment and goodput, rejections and failures, GPU-hours, cost and utilization per
// pool and provider, the share of requests each provider served, and the run's event count.
//
// Percentiles come from LatencyHistogram, a log-bucket histogram with 256 buckets per octave:
// a reported percentile is within 0.2% of the exact sample percentile (nearest rank), and
// memory per histogram is bounded (at most ~9,000 counters for values up to 1 day) whatever
// the number of requests. Means, minima and maxima are exact.
//
// Everything here is deterministic: maps are ordered by name, and no wall-clock figure is in
// the report except `wall_s`, which the caller fills and which to_json() prints only when
// asked (so JSON output of two runs can be compared byte for byte).
//
// Thread-safety: plain values.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/clock.h"

#include "fleet/priority.h"

namespace spillway::sim {

class LatencyHistogram {
 public:
  // REQUIRES: v >= 0 (negative values count as 0).
  void add(Nanos v);
  void clear();

  [[nodiscard]] std::uint64_t count() const { return count_; }
  // The q-quantile (q in [0, 1]) by nearest rank, to within 0.2%; 0 when empty.
  [[nodiscard]] Nanos quantile(double q) const;
  [[nodiscard]] double mean_s() const;
  [[nodiscard]] Nanos max() const { return max_; }

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  long double sum_ns_ = 0;
  Nanos min_{0};
  Nanos max_{0};
};

struct LatencySummary {
  std::uint64_t count = 0;
  double mean_s = 0, p50_s = 0, p90_s = 0, p99_s = 0;
};
[[nodiscard]] LatencySummary summarize(const LatencyHistogram& histogram);

// Latency and SLO counts of one group of requests (all, a tenant, a priority class).
struct GroupStats {
  std::uint64_t offered = 0;   // Arrived.
  std::uint64_t finished = 0;  // Produced all their tokens.
  std::uint64_t slo_met = 0;   // Finished with TTFT <= slo_ttft and TPOT <= slo_tpot.
  std::uint64_t rejected = 0;  // Quota or admission queue.
  std::uint64_t failed = 0;    // Lost or unservable.
  LatencyHistogram ttft, tpot, e2e;
};

struct PoolReport {
  std::string name, provider, region, gpu, capacity;
  std::int64_t gpus = 0;           // The pool's size in the fleet simulated.
  std::int64_t peak_replicas = 0;  // Replicas holding GPUs at once, at most.
  std::int64_t peak_gpus = 0;      // GPUs held by replicas at once, at most.
  std::int64_t final_replicas = 0;
  double gpu_hours = 0;  // GPUs held by replicas x time held.
  double cost = 0;       // gpu_hours x cost_per_gpu_hour.
  double busy_gpu_hours = 0;
  std::uint64_t served = 0;  // Requests that finished on its replicas.
  [[nodiscard]] double utilization() const {
    return gpu_hours > 0 ? busy_gpu_hours / gpu_hours : 0;
  }
};

struct ProviderReport {
  std::string name;
  double gpu_hours = 0, cost = 0, busy_gpu_hours = 0;
  std::int64_t peak_gpus = 0;  // Sum over its pools of their peak GPUs.
  std::uint64_t served = 0;
  double served_share = 0;  // served / all finished requests.
  [[nodiscard]] double utilization() const {
    return gpu_hours > 0 ? busy_gpu_hours / gpu_hours : 0;
  }
};

struct ModelReport {
  std::string name;
  std::int64_t initial_replicas = 0, peak_replicas = 0, final_replicas = 0;
  std::uint64_t scale_outs = 0, scale_ins = 0, placement_failures = 0;
};

struct SimReport {
  std::string policy;
  std::string replica_model;
  std::uint64_t seed = 0;
  double offered_window_s = 0;  // Arrivals span [0, this]: the goodput denominator.
  double end_s = 0;             // When the last event ran.

  GroupStats all;
  std::map<std::string, GroupStats> tenants;
  std::array<GroupStats, fleet::kNumPriorities> priorities;

  std::uint64_t rejected_quota = 0;     // The tenant's TokenQuota refused.
  std::uint64_t rejected_queue = 0;     // Admission queue full, displaced or timed out.
  std::uint64_t failed_lost = 0;        // Replica lost after the first token.
  std::uint64_t failed_unservable = 0;  // Longer than any replica's context or cache.
  std::uint64_t failovers = 0;          // Retried on another replica (lost before 1st token).
  std::uint64_t replica_refusals = 0;   // kResourceExhausted from a replica (retried).
  std::uint64_t unfinished = 0;         // Still in flight when the run stopped.
  std::uint64_t queued_peak = 0;
  std::uint64_t crashes = 0;        // Replicas lost to crash events.
  std::uint64_t replicas_lost = 0;  // Replicas lost to outages and spot preemption.

  std::uint64_t prefill_tokens = 0, decode_tokens = 0, prefix_query_tokens = 0,
                prefix_hit_tokens = 0, preemptions = 0;

  std::vector<PoolReport> pools;          // Fleet file order.
  std::vector<ProviderReport> providers;  // Fleet file order.
  std::vector<ModelReport> models;        // Fleet file order.
  std::uint64_t events = 0;               // Events the loop processed.
  double wall_s = 0;                      // Filled by the caller; not deterministic.

  [[nodiscard]] double slo_attainment() const;  // slo_met / offered.
  [[nodiscard]] double goodput_rps() const;     // slo_met / offered_window_s.
  [[nodiscard]] double cost() const;
  [[nodiscard]] double gpu_hours() const;
  // One JSON object; "wall_s" and "events_per_wall_s" only when with_timing.
  [[nodiscard]] std::string to_json(bool with_timing) const;
  // The human summary (always includes the timing line when wall_s > 0).
  [[nodiscard]] std::string to_text() const;
};

// Side-by-side summary of runs of the same workload under several policies (--compare).
[[nodiscard]] std::string compare_to_text(const std::vector<SimReport>& runs);
[[nodiscard]] std::string compare_to_json(const std::vector<SimReport>& runs, bool with_timing);

// A JSON string literal (quotes and escapes).
[[nodiscard]] std::string json_string(std::string_view s);

}  // namespace spillway::sim
