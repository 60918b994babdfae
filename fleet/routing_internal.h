// Shared by the routing policy implementations; not part of the component's API.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "fleet/routing.h"

namespace spillway::fleet::internal {

// The replicas the common contract allows for `request`, sorted by id.
[[nodiscard]] std::vector<const ReplicaView*> eligible_replicas(
    const RouteRequest& request, std::span<const ReplicaView> replicas);

// kUnavailable naming the model and how many replicas were excluded.
[[nodiscard]] Error no_eligible_replica(const RouteRequest& request);

// Stable 64-bit hashes (FNV-1a, then a splitmix64 finalizer).
[[nodiscard]] std::uint64_t hash64(std::string_view bytes);
[[nodiscard]] std::uint64_t mix64(std::uint64_t x);

std::unique_ptr<RoutingPolicy> make_round_robin_policy();
std::unique_ptr<RoutingPolicy> make_least_loaded_policy();
std::unique_ptr<RoutingPolicy> make_spillway_policy(const RoutingOptions& options);

}  // namespace spillway::fleet::internal
