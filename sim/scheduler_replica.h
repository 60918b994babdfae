// The "exact" replica model: engine::Scheduler — the serving core's own scheduler — driven one
// step at a time on simulated time, each step's duration from the PerfModel. Token ids are
// synthetic (the shared prefix of a (namespace, prefix_id) gets the same ids everywhere, the
// rest are unique per request) so prefix caching behaves as it does in the engine.
#pragma once

#include <memory>

#include "core/status.h"

#include "sim/perf_model.h"
#include "sim/replica_model.h"

namespace spillway::sim {

// kInvalidArgument for an invalid config. `perf` must outlive the replica.
[[nodiscard]] Result<std::unique_ptr<ReplicaModel>> make_scheduler_replica(
    const PerfModel& perf, const ReplicaConfig& config);

}  // namespace spillway::sim
