// Routing: which ready replica serves a request. Policies are extension points registered by
// name (`make_routing_policy`); the gateway and `spillway sim` run the same objects, with
// replica state, time and randomness passed in.
//
// Common contract: only replicas of request.model in state kReady whose id is not in
// request.exclude are eligible; with none, choose() returns kUnavailable. Ties are broken
// with the Random given, so a seed reproduces a run.
//
//   round-robin   eligible replicas sorted by id, taken in turn (one counter per policy).
//   least-loaded  fewest waiting, then running, then lowest KV usage.
//   spillway      1. Where: replicas that are not saturated (waiting < saturation_waiting and
//                    kv_usage < saturation_kv_usage) and whose static cost is within
//                    static_cost_slack of the cheapest such replica. Static cost =
//                    capacity penalty (reserved 0, on-demand, spot) + cost_per_gpu_hour *
//                    cost_weight + rtt_ms * rtt_weight + spill_penalty when the replica is
//                    not in primary_provider. So traffic fills the primary provider's reserved
//                    replicas and spills to the next class (on-demand, the partner provider)
//                    only when every replica of the preferred class is saturated. Batch
//                    requests never spill (they wait in the cheapest class) unless
//                    batch_spills. When every replica is saturated, all eligible replicas
//                    form the set.
//                 2. Which: with a prefix key, the set member with the highest rendezvous
//                    hash of (prefix key, cache namespace, replica id): requests sharing a
//                    prefix stick to one replica, and when it leaves the set (saturated,
//                    excluded, unhealthy) only its prefixes move. Without a prefix key, the
//                    lowest load score (waiting + running_weight * running +
//                    kv_weight * kv_usage) plus static cost.
//
// Thread-safety: choose() may be called concurrently on one policy object (the only state,
// round-robin's counter, is atomic); each caller passes its own Random.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"
#include "core/status.h"

#include "fleet/priority.h"
#include "fleet/replica_state.h"

namespace spillway::fleet {

struct RouteRequest {
  std::string model;
  std::string tenant;
  std::string cache_namespace;
  // prefix_key_of(first bytes of the prompt); nullopt = no affinity.
  std::optional<std::uint64_t> prefix_key;
  Priority priority = Priority::kStandard;
  std::vector<std::string> exclude;  // Replica ids already tried for this request.
};

// Default number of leading prompt bytes that form the affinity key.
inline constexpr std::size_t kDefaultPrefixKeyBytes = 512;

// A stable 64-bit hash (same value on every platform) of the first max_bytes of `prompt`.
[[nodiscard]] std::uint64_t prefix_key_of(std::string_view prompt,
                                          std::size_t max_bytes = kDefaultPrefixKeyBytes);

class RoutingPolicy {
 public:
  virtual ~RoutingPolicy() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  // The id of the chosen replica (see the contract above).
  [[nodiscard]] virtual Result<std::string> choose(const RouteRequest& request,
                                                   std::span<const ReplicaView> replicas,
                                                   Random& random) = 0;
};

// Tuning of the `spillway` policy (ignored by the others).
struct RoutingOptions {
  std::string primary_provider;  // "" = no provider preferred over another.
  double spill_penalty = 1.0;    // Static cost of a replica outside primary_provider.
  double on_demand_penalty = 0.5;
  double spot_penalty = 0.75;
  double cost_weight = 0.05;  // Per $/GPU-hour.
  double rtt_weight = 0.01;   // Per ms of round trip.
  double static_cost_slack = 0.25;
  std::int64_t saturation_waiting = 4;
  double saturation_kv_usage = 0.95;
  double running_weight = 0.1;
  double kv_weight = 2.0;
  bool batch_spills = false;

  // kInvalidArgument naming the field for a negative or non-finite weight, a non-positive
  // saturation_waiting, or saturation_kv_usage outside (0, 1].
  [[nodiscard]] Status validate() const;
};

// The registered names: "round-robin", "least-loaded", "spillway".
[[nodiscard]] std::span<const std::string_view> routing_policy_names();
[[nodiscard]] bool is_routing_policy_name(std::string_view name);

// A new policy by name; kInvalidArgument for an unknown name or invalid options.
[[nodiscard]] Result<std::unique_ptr<RoutingPolicy>> make_routing_policy(
    std::string_view name, const RoutingOptions& options = {});

}  // namespace spillway::fleet
