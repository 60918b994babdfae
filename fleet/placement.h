// Placement: which pool gets the next replica of a model. Pure: no clock, no randomness.
//
// Eligible pools: accept inference (workloads include it, or a training pool with
// allow_spillover), are not drained, and have gpus - used >= gpus_per_replica free GPUs.
// Among them the choice is the first by, in order:
//   1. SLO fit: the pool's network round trip may use at most half the model's TTFT budget
//      (2 * rtt_ms < slo_ttft_ms). Pools that miss it are used only when no fitting pool has
//      room (a slow replica beats none).
//   2. Spread: a pool in a provider that holds no replica of the model yet. Once the model has
//      a replica, the next one therefore goes to another provider when one can take it, so a
//      model with two or more replicas spans at least two providers when possible.
//   3. Reserved capacity before on-demand and spot (it is paid for either way).
//   4. Lower cost_per_gpu_hour.
//   5. On-demand before spot at equal cost (spot can be taken back).
//   6. Fewer replicas of the model already in the pool's provider (evens out the spread).
//   7. Lower rtt_ms, then pool name (deterministic).
// Existing replicas in state kStopped are ignored.
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

#include "fleet/fleet_spec.h"
#include "fleet/replica_state.h"

namespace spillway::fleet {

// GPUs in use per pool name (absent = 0), counting every model's replicas.
using PoolUsage = std::map<std::string, std::int64_t, std::less<>>;

// The pool for one more replica of `model`, or kResourceExhausted naming why no pool fits.
[[nodiscard]] Result<std::string> choose_pool(const FleetSpec& fleet, const ModelSpec& model,
                                              const PoolUsage& used_gpus_per_pool,
                                              const std::vector<ReplicaView>& existing_replicas,
                                              const std::set<std::string>& drained_pools);

}  // namespace spillway::fleet
