// A simulated model replica: the serving core's iteration-level behaviour (continuous
// batching under a per-step token budget, chunked prefill, a KV cache of fixed blocks, prefix
// caching per namespace, priorities, preemption) advanced on simulated time, with each step's
// duration from a PerfModel.
//
// Two implementations share this interface (make_replica_model picks one by name):
//   "exact"  runs engine::Scheduler — the serving core's own scheduler — one step at a time.
//            Same code as `spillway serve`; cost grows with steps x running sequences.
//   "fast"   applies the same rules with aggregated decode steps (many identical steps in one
//            event), for fleets of thousands of replicas; tests hold it to "exact".
//
// Driving contract (the simulator's event loop):
//   - submit() queues a request at time `now`; the replica starts a step at once if idle.
//   - next_event_time() is when the replica next has something to report (the end of its
//     current step or aggregated steps); nullopt when idle.
//   - advance(t, sink) runs every step that ends at or before t, reporting first tokens and
//     finishes in time order through `sink`. REQUIRES: t >= the last time given.
//   - Time never goes backwards; the same calls give the same reports (deterministic).
//
// Thread-safety: none; the simulator's one thread drives each replica.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "sim/perf_model.h"
#include "sim/sim_request.h"

namespace spillway::sim {

struct ReplicaConfig {
  std::int32_t kv_blocks = 0;  // KV-cache blocks (PerfModel::kv_cache_blocks gives a default).
  std::int32_t block_tokens = 16;
  std::int32_t max_batch_tokens = 2048;  // Tokens computed per step.
  std::int32_t max_running = 256;        // Sequences in the batch.
  std::int32_t max_waiting = 1024;       // Queued requests; beyond: kResourceExhausted.
  std::int32_t max_context = 0;          // Prompt + output per request; 0 = the model's.
};

// What a replica reports as its steps complete.
class ReplicaEventSink {
 public:
  virtual ~ReplicaEventSink() = default;
  // The request's first output token is out at `at` (end of the step that sampled it).
  virtual void on_first_token(RequestId id, Nanos at) = 0;
  // The request produced all its output_tokens; the last one at `at`.
  virtual void on_finished(RequestId id, Nanos at) = 0;
};

// Live load, as routing and autoscaling see it (fleet::ReplicaView's fields).
struct ReplicaLoad {
  std::int64_t running = 0;
  std::int64_t waiting = 0;
  double kv_usage = 0;  // Blocks in use / kv_blocks.
};

struct ReplicaStats {
  std::uint64_t steps = 0;
  std::uint64_t prefill_tokens = 0;  // Computed (prefix-cache hits excluded).
  std::uint64_t decode_tokens = 0;
  std::uint64_t prefix_query_tokens = 0;
  std::uint64_t prefix_hit_tokens = 0;
  std::uint64_t preemptions = 0;
  Nanos busy{0};  // Time spent in steps.
};

class ReplicaModel {
 public:
  virtual ~ReplicaModel() = default;

  // kResourceExhausted when max_waiting requests are queued; kOutOfRange when the request
  // could never fit (longer than max_context or the whole cache); kInvalidArgument for an
  // invalid request (validate_sim_request).
  [[nodiscard]] virtual Status submit(const SimRequest& request, Nanos now) = 0;
  [[nodiscard]] virtual std::optional<Nanos> next_event_time() const = 0;
  virtual void advance(Nanos t, ReplicaEventSink& sink) = 0;
  // Drops every request (replica crash, pool outage, spot preemption) and frees the cache;
  // returns the ids dropped, running and waiting, in id order. No reports for them.
  virtual std::vector<RequestId> fail_all() = 0;
  // Drops one request (client gone, deadline); false when unknown.
  virtual bool cancel(RequestId id) = 0;

  [[nodiscard]] virtual ReplicaLoad load() const = 0;
  [[nodiscard]] virtual const ReplicaStats& stats() const = 0;
};

// "exact" or "fast"; kInvalidArgument naming the valid names otherwise, or for an invalid
// config (blocks < 1, budget < 1, ...). `perf` must outlive the replica.
[[nodiscard]] Result<std::unique_ptr<ReplicaModel>> make_replica_model(std::string_view kind,
                                                                       const PerfModel& perf,
                                                                       const ReplicaConfig& config);

}  // namespace spillway::sim
