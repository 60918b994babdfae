// The fleet simulator's driver (`spillway sim`): one discrete-event loop in which the
// production fleet policies — fleet::choose_pool, fleet::make_routing_policy, fleet::TokenQuota,
// fleet::AdmissionQueue, fleet::Autoscaler — run on simulated time (a ManualClock the loop
// advances) against modelled replicas (sim/replica_model.h), fed by a Workload
// (sim/workload.h). docs/SIMULATOR.md describes the model; this header is the contract.
//
// Events (sim/event_queue.h, ordered by time then push order): request arrivals (pulled from
// the workload one at a time), replica step ends, cold starts finishing, autoscaler ticks,
// timeseries samples, admission-queue timeouts and fleet events (sim/fleet_events.h).
//
// The gateway path of each request: tenant quota (reserve prompt + output tokens; a refusal
// is a 429, counted) → routing over the model's ready replicas → submit; a replica that
// refuses (kResourceExhausted: its queue is full) is excluded and the next choice tried, up to
// max_attempts; when no replica takes it the request waits in the model's admission queue
// (bounded, at most max_queue_wait) and is retried whenever a replica of the model frees
// capacity. The region's round trip is added to TTFT and end-to-end latency.
//
// Determinism: the same fleet, workload, options and seed give the same SimReport (and the
// same JSON, byte for byte). Nothing here reads the wall clock; the caller times the run.
//
// Thread-safety: run_simulation is reentrant (all state is local to a call).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/autoscaler.h"
#include "fleet/fleet_spec.h"
#include "fleet/routing.h"

#include "sim/fleet_events.h"
#include "sim/perf_model.h"
#include "sim/replica_model.h"
#include "sim/sim_report.h"
#include "sim/tenant_mix.h"
#include "sim/workload.h"

namespace spillway::sim {

// How many replicas each model starts with.
enum class StartReplicas {
  kMin,   // min_replicas (what `spillway up` starts).
  kFill,  // As many as the pools hold, up to max_replicas, shared between models in
          // proportion to their demand (tenant weight x parameters); used by --plan.
};

struct SimOptions {
  std::string policy;  // Routing policy name; "" = the fleet's [gateway] routing.
  fleet::RoutingOptions routing;
  std::uint64_t seed = 1;
  Nanos duration{0};  // Arrivals stop after this; 0 = the workload's own end.
  // Once arrivals stop, requests in flight get at most this long to finish (then counted as
  // unfinished).
  Nanos drain_limit = std::chrono::minutes(10);

  // "exact", "fast" or "auto": exact when the models' max_replicas sum to at most
  // auto_exact_max_replicas, else fast.
  std::string replica_model = "auto";
  std::int64_t auto_exact_max_replicas = 64;
  // Per-replica limits; kv_blocks = 0 takes PerfModel::kv_cache_blocks(block_tokens,
  // kv_memory_fraction). max_context = 0 takes the model's context_tokens.
  ReplicaConfig replica;
  double kv_memory_fraction = 0.9;
  // Profiles that replace the built-in one of the same name (--gpu-profile).
  std::vector<GpuProfile> gpu_profiles;

  StartReplicas start = StartReplicas::kMin;
  bool autoscale = true;  // false: each model keeps its initial count (lost ones replaced).
  fleet::AutoscalerOptions autoscaler;
  Nanos autoscale_interval = std::chrono::seconds(5);
  // Model load on scale-out: cold_start_fixed + weight bytes / (tp x load_bytes_per_s), or
  // exactly cold_start when set.
  Nanos cold_start_fixed = std::chrono::seconds(20);
  double load_bytes_per_s = 2e9;
  std::optional<Nanos> cold_start;

  // Gateway.
  std::int32_t max_attempts = 3;      // Replicas tried per dispatch, [1, 16].
  std::size_t queue_capacity = 1024;  // Admission queue per model, >= 1.
  Nanos max_queue_wait = std::chrono::seconds(10);
  std::size_t max_open_reservations = 1 << 24;  // Per tenant quota.

  std::vector<FleetEventSpec> events;

  // Timeseries: one CSV row per sample_interval when non-null.
  std::ostream* timeseries = nullptr;
  Nanos sample_interval = std::chrono::seconds(10);

  // Tenant mix of the workload; empty = default_tenant_mix(fleet, tenant_mix)
  // (sim/tenant_mix.h).
  std::vector<TenantShare> tenants;
  TenantMixOptions tenant_mix;

  // kInvalidArgument naming the field.
  [[nodiscard]] Status validate() const;
};

// The profile of a model: from its GGUF when the file exists, else the built-in shape named
// by the model's name; kNotFound naming the model otherwise.
[[nodiscard]] Result<ModelProfile> resolve_model_profile(const fleet::ModelSpec& model);

// Runs one simulation. Errors: kInvalidArgument for bad options, an unknown policy or GPU
// profile, an event naming an unknown pool (or a spot-preempt of a non-spot pool); kNotFound
// for a missing workload file or an unknown model shape.
[[nodiscard]] Result<SimReport> run_simulation(const fleet::FleetSpec& fleet,
                                               const WorkloadSpec& workload,
                                               const SimOptions& options);

}  // namespace spillway::sim
