// Fleet events injected into a simulation from the command line (`spillway sim --event`):
//
//   outage:POOL@START[-END]         the pool goes down at START: its replicas fail (requests
//                                   not yet streaming fail over to other replicas, the others
//                                   fail) and placement avoids it until END (or the end of the
//                                   run). Replacements go wherever placement finds room.
//   crash:REPLICA_INDEX@T           the replica created REPLICA_INDEX-th (0-based, in creation
//                                   order, initial replicas first) crashes at T; the
//                                   autoscaler's target then places a replacement.
//   spot-preempt:POOL@T[-END]       a spot pool's capacity is taken back at T: as an outage of
//                                   that pool (until END, or the end of the run); only valid
//                                   for pools with capacity = "spot".
//
// Times are simulated seconds from the start (decimals allowed), or with a unit suffix: s, m,
// h (e.g. 90s, 15m, 1.5h).
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace spillway::sim {

struct FleetEventSpec {
  enum class Kind { kOutage, kCrash, kSpotPreempt } kind = Kind::kOutage;
  std::string pool;                // kOutage, kSpotPreempt.
  std::int64_t replica_index = 0;  // kCrash.
  Nanos start{0};
  std::optional<Nanos> end;  // kOutage, kSpotPreempt; nullopt = until the end of the run.
};

// Parses one --event value; kInvalidArgument naming the problem (pool names are checked
// against the fleet by the simulator).
[[nodiscard]] Result<FleetEventSpec> parse_fleet_event(std::string_view text);
// "outage", "crash", "spot-preempt".
[[nodiscard]] std::string_view fleet_event_kind_name(FleetEventSpec::Kind kind);
// A time as above ("90", "90s", "15m", "1.5h"); kInvalidArgument otherwise.
[[nodiscard]] Result<Nanos> parse_sim_time(std::string_view text);

}  // namespace spillway::sim
