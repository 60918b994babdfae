// least-loaded: fewest waiting, then running, then lowest KV usage; random among equals.
#include <tuple>

#include "fleet/routing_internal.h"

namespace spillway::fleet::internal {

namespace {

class LeastLoadedPolicy final : public RoutingPolicy {
 public:
  std::string_view name() const override { return "least-loaded"; }

  Result<std::string> choose(const RouteRequest& request, std::span<const ReplicaView> replicas,
                             Random& random) override {
    const std::vector<const ReplicaView*> eligible = eligible_replicas(request, replicas);
    if (eligible.empty()) return no_eligible_replica(request);
    auto load = [](const ReplicaView* r) {
      return std::tuple(r->waiting, r->running, r->kv_usage);
    };
    std::vector<const ReplicaView*> best;
    for (const ReplicaView* r : eligible) {
      if (best.empty() || load(r) < load(best.front())) {
        best.assign(1, r);
      } else if (load(r) == load(best.front())) {
        best.push_back(r);
      }
    }
    if (best.size() == 1) return best.front()->id;
    sort_by_id(best);  // Random among equals, indexed in id order.
    return best[random.below(best.size())]->id;
  }
};

}  // namespace

std::unique_ptr<RoutingPolicy> make_least_loaded_policy() {
  return std::make_unique<LeastLoadedPolicy>();
}

}  // namespace spillway::fleet::internal
