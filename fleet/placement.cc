#include "fleet/placement.h"

#include <fmt/format.h>

#include <tuple>

namespace spillway::fleet {

Result<std::string> choose_pool(const FleetSpec& fleet, const ModelSpec& model,
                                const PoolUsage& used_gpus_per_pool,
                                const std::vector<ReplicaView>& existing_replicas,
                                const std::set<std::string>& drained_pools) {
  std::map<std::string, std::int64_t, std::less<>> replicas_per_provider;
  for (const ReplicaView& replica : existing_replicas) {
    if (replica.state != ReplicaState::kStopped) ++replicas_per_provider[replica.provider];
  }
  auto replicas_in = [&](const std::string& provider) -> std::int64_t {
    auto it = replicas_per_provider.find(provider);
    return it == replicas_per_provider.end() ? 0 : it->second;
  };

  // Lexicographic rank, lower is better; see the header for the order.
  using Rank = std::tuple<bool, bool, bool, double, int, std::int64_t, double, std::string_view>;
  const PoolSpec* best = nullptr;
  Rank best_rank;
  int inference_pools = 0;
  int drained = 0;
  int full = 0;
  for (const PoolSpec* pool : fleet.pools()) {
    if (!pool->accepts_inference()) continue;
    ++inference_pools;
    if (drained_pools.contains(pool->name)) {
      ++drained;
      continue;
    }
    auto used_it = used_gpus_per_pool.find(pool->name);
    const std::int64_t used = used_it == used_gpus_per_pool.end() ? 0 : used_it->second;
    if (pool->gpus - used < model.gpus_per_replica) {
      ++full;
      continue;
    }
    const std::int64_t in_provider = replicas_in(pool->provider);
    const Rank rank{!(2 * pool->rtt_ms < model.slo_ttft_ms),
                    in_provider > 0,
                    pool->capacity != CapacityKind::kReserved,
                    pool->cost_per_gpu_hour,
                    pool->capacity == CapacityKind::kSpot ? 1 : 0,
                    in_provider,
                    pool->rtt_ms,
                    pool->name};
    if (best == nullptr || rank < best_rank) {
      best = pool;
      best_rank = rank;
    }
  }
  if (best == nullptr) {
    return make_error(ErrorCode::kResourceExhausted,
                      "no pool can take a replica of model '{}' ({} GPUs): {} pools accept "
                      "inference, {} drained, {} without {} free GPUs",
                      model.name, model.gpus_per_replica, inference_pools, drained, full,
                      model.gpus_per_replica);
  }
  return best->name;
}

}  // namespace spillway::fleet
