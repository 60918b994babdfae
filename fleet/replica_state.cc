#include "fleet/replica_state.h"

namespace spillway::fleet {

std::string_view replica_state_name(ReplicaState state) {
  switch (state) {
    case ReplicaState::kStarting:
      return "starting";
    case ReplicaState::kReady:
      return "ready";
    case ReplicaState::kDraining:
      return "draining";
    case ReplicaState::kUnhealthy:
      return "unhealthy";
    case ReplicaState::kStopped:
      return "stopped";
  }
  return "unknown";
}

std::optional<ReplicaState> parse_replica_state(std::string_view name) {
  for (ReplicaState s : {ReplicaState::kStarting, ReplicaState::kReady, ReplicaState::kDraining,
                         ReplicaState::kUnhealthy, ReplicaState::kStopped}) {
    if (replica_state_name(s) == name) return s;
  }
  return std::nullopt;
}

}  // namespace spillway::fleet
