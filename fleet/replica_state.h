// What the policies see of one replica: identity, placement, lifecycle state and live load.
// The control plane fills these from health checks and /metrics; the simulator from its
// model of each replica. Policies only read them.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fleet/capacity.h"

namespace spillway::fleet {

enum class ReplicaState : std::uint8_t {
  kStarting,   // Launched, not yet passing /ready: takes no traffic.
  kReady,      // Takes traffic.
  kDraining,   // Finishing in-flight requests: takes no new traffic.
  kUnhealthy,  // Failing health checks or ejected by the circuit breaker: no traffic.
  kStopped,    // Gone; kept only for display.
};

// "starting", "ready", "draining", "unhealthy", "stopped".
[[nodiscard]] std::string_view replica_state_name(ReplicaState state);
[[nodiscard]] std::optional<ReplicaState> parse_replica_state(std::string_view name);

struct ReplicaView {
  std::string id;  // Unique in the fleet.
  std::string model;
  std::string provider;
  std::string region;
  std::string pool;
  std::string url;  // Base URL of its OpenAI API, e.g. "http://127.0.0.1:9001".
  ReplicaState state = ReplicaState::kStarting;
  std::int64_t running = 0;  // Sequences in the running batch.
  std::int64_t waiting = 0;  // Requests queued in the replica.
  double kv_usage = 0;       // Fraction of KV-cache blocks in use, [0, 1].
  double ttft_p50_s = 0;     // Recent median time to first token; 0 = unknown.
  double rtt_ms = 0;         // Gateway <-> replica round trip (the region's).
  double cost_per_gpu_hour = 0;
  CapacityKind capacity = CapacityKind::kOnDemand;
};

}  // namespace spillway::fleet
