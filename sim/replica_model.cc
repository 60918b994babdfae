// make_replica_model: the registry of replica models by name.
#include "sim/replica_model.h"

#include "sim/fast_replica.h"
#include "sim/scheduler_replica.h"

namespace spillway::sim {

Result<std::unique_ptr<ReplicaModel>> make_replica_model(std::string_view kind,
                                                         const PerfModel& perf,
                                                         const ReplicaConfig& config) {
  if (kind == "exact") return make_scheduler_replica(perf, config);
  if (kind == "fast") return make_fast_replica(perf, config);
  return make_error(ErrorCode::kInvalidArgument, "unknown replica model '{}' (known: exact, fast)",
                    kind);
}

}  // namespace spillway::sim
