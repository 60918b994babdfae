// round-robin: eligible replicas (sorted by id) in turn.
#include <algorithm>
#include <atomic>
#include <cstddef>

#include "fleet/routing_internal.h"

namespace spillway::fleet::internal {

namespace {

class RoundRobinPolicy final : public RoutingPolicy {
 public:
  std::string_view name() const override { return "round-robin"; }

  Result<std::string> choose(const RouteRequest& request, std::span<const ReplicaView> replicas,
                             Random& /*random*/) override {
    std::vector<const ReplicaView*> eligible = eligible_replicas(request, replicas);
    if (eligible.empty()) return no_eligible_replica(request);
    const std::uint64_t turn = next_.fetch_add(1, std::memory_order_relaxed);
    // The turn-th by id: a selection, O(eligible), not a sort.
    const auto nth = eligible.begin() + static_cast<std::ptrdiff_t>(turn % eligible.size());
    std::nth_element(eligible.begin(), nth, eligible.end(),
                     [](const ReplicaView* a, const ReplicaView* b) { return a->id < b->id; });
    return (*nth)->id;
  }

 private:
  std::atomic<std::uint64_t> next_{0};
};

}  // namespace

std::unique_ptr<RoutingPolicy> make_round_robin_policy() {
  return std::make_unique<RoundRobinPolicy>();
}

}  // namespace spillway::fleet::internal
