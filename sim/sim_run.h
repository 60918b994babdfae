// Internal to the simulator: the state of one run_simulation call and its parts, split by
// concept over simulator.cc (the loop and the report), sim_fleet.cc (pools, replicas,
// placement, autoscaling, fleet events) and sim_gateway.cc (quota, routing, admission queue,
// request accounting). Not part of the public API (simulator.h is).
//
// Thread-safety: one thread drives a SimRun.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "core/status.h"

#include "fleet/admission.h"
#include "fleet/autoscaler.h"
#include "fleet/placement.h"
#include "fleet/quota.h"
#include "fleet/routing.h"

#include "sim/event_queue.h"
#include "sim/simulator.h"

namespace spillway::sim::internal {

enum class ReplicaPhase { kStarting, kReady, kDraining, kStopped };

struct SimPool {
  const fleet::PoolSpec* spec = nullptr;
  std::size_t provider = 0;       // Index into SimRun::providers_.
  std::optional<GpuProfile> gpu;  // nullopt: unknown GPU name (no inference placed here).
  int down = 0;                   // Outages in force (nested).
  std::int64_t holding = 0;       // Replicas holding GPUs now.
  std::int64_t holding_gpus = 0;  // Their GPUs.
  PoolReport report;
};

struct SimReplica {
  std::string id;
  std::size_t model = 0;
  std::size_t pool = 0;
  ReplicaPhase phase = ReplicaPhase::kStarting;
  std::unique_ptr<ReplicaModel> impl;  // Released once stopped.
  Nanos since{0};                      // Holding GPUs since.
  std::uint64_t generation = 0;        // Of its pending kReplicaStep event.
  std::optional<Nanos> scheduled;      // When its pending kReplicaStep event fires.
  std::int64_t inflight = 0;           // Requests submitted and not finished or lost.
  std::size_t view_slot = 0;           // Index in its model's ready views while kReady.
  std::size_t placed_slot = 0;         // Index in its model's placed views while holding.
};

struct SimModel {
  const fleet::ModelSpec* spec = nullptr;
  ModelProfile profile;
  std::unique_ptr<fleet::Autoscaler> autoscaler;
  std::int64_t target = 0;   // Replicas wanted (autoscaler's desired, or the initial count).
  std::int64_t active = 0;   // Starting + ready.
  std::int64_t holding = 0;  // Not stopped (includes draining).
  // Ready replicas as routing sees them, and the replica index of each.
  std::vector<fleet::ReplicaView> views;
  std::vector<std::size_t> view_replica;
  // Replicas holding GPUs, as placement sees them.
  std::vector<fleet::ReplicaView> placed;
  std::vector<std::size_t> placed_replica;
  std::unique_ptr<fleet::AdmissionQueue> queue;
  LatencyHistogram ttft_window;  // Since the last autoscaler tick.
  double demand_weight = 0;
  bool queue_dirty = false;
  ModelReport report;
};

struct Pending {
  SimRequest request;
  std::size_t model = 0;
  fleet::TokenQuota* quota = nullptr;
  std::optional<fleet::Reservation> reservation;
  GroupStats* tenant = nullptr;
  std::optional<std::size_t> replica;
  std::optional<Nanos> first_token;
  std::uint64_t queue_epoch = 0;  // Matches the live kQueueTimeout event while queued.
  bool queued = false;
};

class SimRun final : public ReplicaEventSink {
 public:
  SimRun(const fleet::FleetSpec& fleet, const SimOptions& options);

  // Resolves profiles, policies, tenants and events; places the initial replicas.
  [[nodiscard]] Status init(const WorkloadSpec& workload);
  [[nodiscard]] SimReport run();

  void on_first_token(RequestId id, Nanos at) override;
  void on_finished(RequestId id, Nanos at) override;

 private:
  // --- fleet (sim_fleet.cc)
  [[nodiscard]] Status setup_pools();
  [[nodiscard]] Status setup_models();
  [[nodiscard]] Status check_events();
  void place_initial();
  // Places one replica of `model` (ready now when warm, else after its cold start); false
  // when no pool can take it.
  bool place_replica(std::size_t model, bool warm);
  [[nodiscard]] Nanos cold_start_of(std::size_t model, std::size_t pool) const;
  void make_ready(std::size_t r);
  void leave_ready(std::size_t r);
  void stop_replica(std::size_t r);
  void lose_replica(std::size_t r);
  void drain_replica(std::size_t r);
  void autoscale_tick();
  void reconcile(std::size_t model);
  void fleet_event(std::size_t index, bool end);
  void schedule_replica(std::size_t r);
  void advance_replica(std::size_t r, Nanos t);
  const PerfModel* perf_for(std::size_t pool, std::size_t model);
  std::int32_t kv_blocks_for(std::size_t pool, std::size_t model);
  void refresh_view(std::size_t r);

  // --- gateway (sim_gateway.cc)
  void arrive(const SimRequest& request);
  enum class Dispatch { kSubmitted, kNoReplica, kUnservable };
  Dispatch dispatch(Pending& p);
  // dispatch(), then queue the request when no replica took it, or fail it when none can.
  void dispatch_or_queue(RequestId id, Pending& p);
  void enqueue(RequestId id);
  void drain_queue(std::size_t model);
  void queue_timeout(RequestId id, std::uint64_t epoch);
  void reject(RequestId id, bool by_quota);
  void fail(RequestId id, bool lost);
  void requests_lost(std::size_t r, const std::vector<RequestId>& ids);
  [[nodiscard]] std::uint64_t prefix_key(const SimRequest& request) const;

  // --- loop and report (simulator.cc)
  void set_now(Nanos t);
  void after_event();
  void sample();
  [[nodiscard]] bool work_remains() const;
  void finalize();

  const fleet::FleetSpec& fleet_;
  const SimOptions& options_;
  std::string policy_name_;
  std::string replica_kind_;
  ManualClock clock_;
  Nanos now_{0};
  SeededRandom random_;
  std::unique_ptr<fleet::RoutingPolicy> policy_;
  std::unique_ptr<Workload> workload_;
  std::optional<SimRequest> next_arrival_;
  Nanos last_arrival_{0};
  bool arrivals_done_ = false;
  EventQueue events_;

  std::vector<SimPool> pools_;
  std::map<std::string, std::size_t, std::less<>> pool_by_name_;
  std::vector<ProviderReport> providers_;
  std::vector<SimModel> models_;
  std::map<std::string, std::size_t, std::less<>> model_by_name_;
  std::vector<SimReplica> replicas_;
  std::unordered_map<std::string, std::size_t> replica_by_id_;
  fleet::PoolUsage used_;
  std::uint64_t next_replica_seq_ = 0;
  // Per (pool, model): the perf model (null until needed) and KV blocks (-1 = unknown).
  std::vector<std::unique_ptr<PerfModel>> perf_;
  std::vector<std::int32_t> kv_blocks_;

  std::map<std::string, std::unique_ptr<fleet::TokenQuota>, std::less<>> quotas_;
  std::unordered_map<RequestId, Pending> pending_;
  std::vector<std::size_t> to_stop_;  // Drained replicas that went idle inside advance().

  // Timeseries window.
  std::uint64_t window_arrivals_ = 0;
  std::uint64_t window_finished_ = 0;
  LatencyHistogram window_ttft_;

  SimReport report_;
  ReplicaStats retired_stats_;  // Of replicas already stopped.
};

}  // namespace spillway::sim::internal
