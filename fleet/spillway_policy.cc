// spillway: fill the preferred capacity class, spill when it saturates, keep prefixes on one
// replica (rendezvous hashing). The rules are in fleet/routing.h.
#include <algorithm>
#include <limits>

#include "fleet/routing_internal.h"

namespace spillway::fleet::internal {

namespace {

class SpillwayPolicy final : public RoutingPolicy {
 public:
  explicit SpillwayPolicy(const RoutingOptions& options) : options_(options) {}

  std::string_view name() const override { return "spillway"; }

  Result<std::string> choose(const RouteRequest& request, std::span<const ReplicaView> replicas,
                             Random& random) override {
    const std::vector<const ReplicaView*> eligible = eligible_replicas(request, replicas);
    if (eligible.empty()) return no_eligible_replica(request);

    // 1. Where: the cheapest static class among unsaturated replicas (batch: among all).
    const bool may_spill = request.priority != Priority::kBatch || options_.batch_spills;
    double cheapest = std::numeric_limits<double>::infinity();
    for (const ReplicaView* r : eligible) {
      if (!may_spill || !saturated(*r)) cheapest = std::min(cheapest, static_cost(*r));
    }
    std::vector<const ReplicaView*> set;
    for (const ReplicaView* r : eligible) {
      if (may_spill && saturated(*r)) continue;
      if (static_cost(*r) <= cheapest + options_.static_cost_slack) set.push_back(r);
    }
    if (set.empty()) set = eligible;  // Everything is saturated: least score over all.

    // 2. Which: prefix affinity, else the lowest score.
    if (request.prefix_key) {
      const std::uint64_t key = mix64(*request.prefix_key ^ hash64(request.cache_namespace));
      // Highest weight; among equal weights the lowest id (eligible replicas are not sorted).
      const ReplicaView* top = nullptr;
      std::uint64_t top_weight = 0;
      PrefixHasher id_hash;  // hash64 of each id, reusing the prefixes ids share.
      for (const ReplicaView* r : set) {
        const std::uint64_t weight = mix64(key ^ id_hash.hash64(r->id));
        if (top == nullptr || weight > top_weight || (weight == top_weight && r->id < top->id)) {
          top = r;
          top_weight = weight;
        }
      }
      // Saturated replicas only reach the set when all are; then load decides, not affinity.
      if (!saturated(*top)) return top->id;
    }
    std::vector<const ReplicaView*> best;
    double best_score = 0;
    for (const ReplicaView* r : set) {
      const double score = load_score(*r) + static_cost(*r);
      if (best.empty() || score < best_score) {
        best.assign(1, r);
        best_score = score;
      } else if (score == best_score) {
        best.push_back(r);
      }
    }
    if (best.size() == 1) return best.front()->id;
    sort_by_id(best);  // Random among equals, indexed in id order.
    return best[random.below(best.size())]->id;
  }

 private:
  bool saturated(const ReplicaView& r) const {
    return r.waiting >= options_.saturation_waiting || r.kv_usage >= options_.saturation_kv_usage;
  }

  double static_cost(const ReplicaView& r) const {
    double cost = r.cost_per_gpu_hour * options_.cost_weight + r.rtt_ms * options_.rtt_weight;
    if (r.capacity == CapacityKind::kOnDemand) cost += options_.on_demand_penalty;
    if (r.capacity == CapacityKind::kSpot) cost += options_.spot_penalty;
    if (!options_.primary_provider.empty() && r.provider != options_.primary_provider) {
      cost += options_.spill_penalty;
    }
    return cost;
  }

  double load_score(const ReplicaView& r) const {
    return static_cast<double>(r.waiting) +
           options_.running_weight * static_cast<double>(r.running) +
           options_.kv_weight * r.kv_usage;
  }

  RoutingOptions options_;
};

}  // namespace

std::unique_ptr<RoutingPolicy> make_spillway_policy(const RoutingOptions& options) {
  return std::make_unique<SpillwayPolicy>(options);
}

}  // namespace spillway::fleet::internal
