// Shared by the routing policy implementations; not part of the component's API.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "fleet/routing.h"

namespace spillway::fleet::internal {

// The replicas the common contract allows for `request`, in the order of `replicas` (not
// sorted: a policy orders by id only what its decision depends on, so a choice costs
// O(replicas) and never O(replicas log replicas) string comparisons).
[[nodiscard]] std::vector<const ReplicaView*> eligible_replicas(
    const RouteRequest& request, std::span<const ReplicaView> replicas);

// Sorts `replicas` by id (the order every policy's tie-breaking is defined in).
void sort_by_id(std::vector<const ReplicaView*>& replicas);

// kUnavailable naming the model and how many replicas were excluded.
[[nodiscard]] Error no_eligible_replica(const RouteRequest& request);

// Stable 64-bit hashes (FNV-1a, then a splitmix64 finalizer).
[[nodiscard]] std::uint64_t hash64(std::string_view bytes);
[[nodiscard]] std::uint64_t mix64(std::uint64_t x);

// hash64 of many strings that share prefixes — replica ids such as "<pool>-r<seq>", hashed once
// per candidate per request by the affinity rule — with the same values as hash64. FNV-1a is
// a left fold over the bytes, so the state after a prefix already hashed is reused: each slot
// remembers one recent string and the state after each of its bytes; a new string resumes from
// the slot sharing its longest prefix and costs only its differing suffix. kSlots slots cover
// replicas interleaved from that many pools. Not thread-safe: one per choose() call.
class PrefixHasher {
 public:
  static constexpr std::size_t kSlots = 8;
  static constexpr std::size_t kMaxBytes = 96;  // Remembered per slot; longer tails are rehashed.

  [[nodiscard]] std::uint64_t hash64(std::string_view bytes);

 private:
  struct Slot {
    std::array<char, kMaxBytes> bytes;
    std::size_t size = 0;
    std::array<std::uint64_t, kMaxBytes + 1> states;  // states[i]: after bytes[0, i).
  };
  std::array<Slot, kSlots> slots_;
  std::size_t used_ = 0;
  std::size_t next_victim_ = 0;  // Round-robin replacement once every slot is used.
};

std::unique_ptr<RoutingPolicy> make_round_robin_policy();
std::unique_ptr<RoutingPolicy> make_least_loaded_policy();
std::unique_ptr<RoutingPolicy> make_spillway_policy(const RoutingOptions& options);

}  // namespace spillway::fleet::internal
