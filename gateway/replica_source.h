// Where the gateway learns which replicas exist, their state and their live load, and where it
// reports replicas that failed a request.
//
// Implementations: the control plane (replicas it supervises, load from their /metrics), and
// StaticReplicaSource (static_replica_source.h: a fixed list of upstream URLs, for
// `spillway gateway --upstream URL` with no control plane).
//
// Thread-safety: implementations must be safe for concurrent use; the gateway calls the
// methods from its worker threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fleet/replica_state.h"

namespace spillway::gateway {

// An immutable list of replicas, shared by everyone who read it while it was current.
using ReplicaSnapshot = std::shared_ptr<const std::vector<fleet::ReplicaView>>;

class ReplicaSource {
 public:
  virtual ~ReplicaSource() = default;

  // Every known replica (any state); the routing policy picks among the ready ones. Never
  // null. Called once per routing attempt, so it must be cheap: no I/O, and no copy of the
  // list per call (implementations keep the snapshot they made and make a new one only after
  // something in it changed).
  [[nodiscard]] virtual ReplicaSnapshot replicas() const = 0;

  // The gateway could not reach `replica_id` (connection refused or reset, timeout, broken
  // response). The source should stop offering it as ready until it passes a health check
  // again (a circuit breaker). Unknown ids are ignored.
  virtual void report_failure(const std::string& replica_id) = 0;

  // `replica_id` answered a request completely (any status it chose to give). A source that
  // ejects after several failures in a row restarts that count here, so failures spread over
  // hours never add up to an ejection. Unknown ids are ignored.
  virtual void report_success(const std::string& replica_id) = 0;
};

}  // namespace spillway::gateway
