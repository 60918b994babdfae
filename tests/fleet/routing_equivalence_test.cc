// The routing policies choose without sorting every candidate by id (fleet/routing_internal.h).
// These tests hold them to the decisions of the sorted formulation they replaced: a reference
// copy of that formulation below is run side by side on random fleets, with the same seed,
// and must choose the same replica and consume the same random numbers; and a choice must not
// depend on the order the replicas are listed in.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/random.h"

#include "fleet/routing.h"
#include "fleet/routing_internal.h"

namespace spillway::fleet {
namespace {

// ---------------------------------------------------------------- the sorted formulation

std::vector<const ReplicaView*> sorted_eligible(const RouteRequest& request,
                                                const std::vector<ReplicaView>& replicas) {
  std::vector<const ReplicaView*> out;
  for (const ReplicaView& r : replicas) {
    if (r.state != ReplicaState::kReady || r.model != request.model) continue;
    if (std::find(request.exclude.begin(), request.exclude.end(), r.id) != request.exclude.end()) {
      continue;
    }
    out.push_back(&r);
  }
  std::sort(out.begin(), out.end(),
            [](const ReplicaView* a, const ReplicaView* b) { return a->id < b->id; });
  return out;
}

std::optional<std::string> reference_round_robin(const RouteRequest& request,
                                                 const std::vector<ReplicaView>& replicas,
                                                 std::uint64_t& turn) {
  const auto eligible = sorted_eligible(request, replicas);
  if (eligible.empty()) return std::nullopt;
  return eligible[turn++ % eligible.size()]->id;
}

std::optional<std::string> reference_least_loaded(const RouteRequest& request,
                                                  const std::vector<ReplicaView>& replicas,
                                                  Random& random) {
  const auto eligible = sorted_eligible(request, replicas);
  if (eligible.empty()) return std::nullopt;
  auto load = [](const ReplicaView* r) { return std::tuple(r->waiting, r->running, r->kv_usage); };
  std::vector<const ReplicaView*> best;
  for (const ReplicaView* r : eligible) {
    if (best.empty() || load(r) < load(best.front())) {
      best.assign(1, r);
    } else if (load(r) == load(best.front())) {
      best.push_back(r);
    }
  }
  return best[best.size() == 1 ? 0 : random.below(best.size())]->id;
}

std::optional<std::string> reference_spillway(const RoutingOptions& o, const RouteRequest& request,
                                              const std::vector<ReplicaView>& replicas,
                                              Random& random) {
  const auto eligible = sorted_eligible(request, replicas);
  if (eligible.empty()) return std::nullopt;
  auto saturated = [&](const ReplicaView& r) {
    return r.waiting >= o.saturation_waiting || r.kv_usage >= o.saturation_kv_usage;
  };
  auto static_cost = [&](const ReplicaView& r) {
    double cost = r.cost_per_gpu_hour * o.cost_weight + r.rtt_ms * o.rtt_weight;
    if (r.capacity == CapacityKind::kOnDemand) cost += o.on_demand_penalty;
    if (r.capacity == CapacityKind::kSpot) cost += o.spot_penalty;
    if (!o.primary_provider.empty() && r.provider != o.primary_provider) cost += o.spill_penalty;
    return cost;
  };
  const bool may_spill = request.priority != Priority::kBatch || o.batch_spills;
  double cheapest = std::numeric_limits<double>::infinity();
  for (const ReplicaView* r : eligible) {
    if (!may_spill || !saturated(*r)) cheapest = std::min(cheapest, static_cost(*r));
  }
  std::vector<const ReplicaView*> set;
  for (const ReplicaView* r : eligible) {
    if (may_spill && saturated(*r)) continue;
    if (static_cost(*r) <= cheapest + o.static_cost_slack) set.push_back(r);
  }
  if (set.empty()) set = eligible;
  if (request.prefix_key) {
    const std::uint64_t key =
        internal::mix64(*request.prefix_key ^ internal::hash64(request.cache_namespace));
    const ReplicaView* top = nullptr;
    std::uint64_t top_weight = 0;
    for (const ReplicaView* r : set) {
      const std::uint64_t weight = internal::mix64(key ^ internal::hash64(r->id));
      if (top == nullptr || weight > top_weight) {
        top = r;
        top_weight = weight;
      }
    }
    if (!saturated(*top)) return top->id;
  }
  std::vector<const ReplicaView*> best;
  double best_score = 0;
  for (const ReplicaView* r : set) {
    const double score = static_cast<double>(r->waiting) +
                         o.running_weight * static_cast<double>(r->running) +
                         o.kv_weight * r->kv_usage + static_cost(*r);
    if (best.empty() || score < best_score) {
      best.assign(1, r);
      best_score = score;
    } else if (score == best_score) {
      best.push_back(r);
    }
  }
  return best[best.size() == 1 ? 0 : random.below(best.size())]->id;
}

// ---------------------------------------------------------------- random fleets

struct PoolShape {
  const char* name;
  const char* provider;
  CapacityKind capacity;
  double cost;
  double rtt;
};

constexpr PoolShape kPools[] = {
    {"azure-eastus-h100", "azure", CapacityKind::kReserved, 2.5, 2},
    {"azure-eastus-h200-od", "azure", CapacityKind::kOnDemand, 4.5, 2},
    {"azure-westus3-h100-spot", "azure", CapacityKind::kSpot, 1.6, 35},
    {"oci-ashburn-supercluster", "oci", CapacityKind::kReserved, 3.0, 12},
};

// Replicas of two models across the pools, ids "<pool>-r<seq>" as the simulator names them
// (shared prefixes, as the prefix-reusing hash exploits), loads drawn from small ranges so
// that ties are common, and some replicas not ready.
std::vector<ReplicaView> random_fleet(Random& random, std::size_t n) {
  std::vector<ReplicaView> out;
  for (std::size_t i = 0; i < n; ++i) {
    const PoolShape& pool = kPools[random.below(std::size(kPools))];
    ReplicaView r;
    r.id = fmt::format("{}-r{}", pool.name, random.below(3 * n));
    if (std::any_of(out.begin(), out.end(), [&](const ReplicaView& o) { return o.id == r.id; })) {
      continue;  // Ids are unique in a fleet.
    }
    r.model = random.below(4) == 0 ? "llama-3-70b" : "llama-3-8b";
    r.provider = pool.provider;
    r.pool = pool.name;
    r.region = "region";
    r.capacity = pool.capacity;
    r.cost_per_gpu_hour = pool.cost;
    r.rtt_ms = pool.rtt;
    r.state = random.below(8) == 0 ? ReplicaState::kDraining : ReplicaState::kReady;
    r.waiting = static_cast<std::int64_t>(random.below(6));
    r.running = static_cast<std::int64_t>(random.below(3));
    r.kv_usage = static_cast<double>(random.below(3)) * 0.48;  // 0, 0.48 or 0.96 (saturated).
    out.push_back(std::move(r));
  }
  return out;
}

RouteRequest random_request(Random& random, const std::vector<ReplicaView>& fleet) {
  RouteRequest request;
  request.model = random.below(4) == 0 ? "llama-3-70b" : "llama-3-8b";
  request.tenant = "t";
  request.cache_namespace = random.below(2) == 0 ? "tenant/a" : "shared:prompts";
  if (random.below(3) != 0) request.prefix_key = random.next_u64();
  request.priority = static_cast<Priority>(random.below(3));
  for (std::uint64_t k = random.below(3); k > 0 && !fleet.empty(); --k)
    request.exclude.push_back(fleet[random.below(fleet.size())].id);
  return request;
}

void shuffle(std::vector<ReplicaView>& v, Random& random) {
  for (std::size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[random.below(i)]);
}

std::optional<std::string> choose(RoutingPolicy& policy, const RouteRequest& request,
                                  const std::vector<ReplicaView>& replicas, Random& random) {
  auto chosen = policy.choose(request, replicas, random);
  if (!chosen.ok()) return std::nullopt;
  return *chosen;
}

RoutingOptions spillway_options(std::uint64_t variant) {
  RoutingOptions o;
  if (variant % 2 == 1) o.primary_provider = "azure";
  if (variant % 3 == 1) o.batch_spills = true;
  if (variant % 5 == 1) o.static_cost_slack = 0;   // Only the cheapest class.
  if (variant % 7 == 1) o.static_cost_slack = 10;  // Every class.
  return o;
}

TEST(RoutingEquivalence, SameChoicesAndRandomDrawsAsTheSortedFormulation) {
  SeededRandom gen(20261123);
  std::size_t decided = 0;
  std::size_t spillway_draws = 0;  // Choices among equals (a random draw).
  std::size_t least_draws = 0;
  for (std::uint64_t round = 0; round < 400; ++round) {
    const std::vector<ReplicaView> fleet = random_fleet(gen, 1 + gen.below(40));
    const RoutingOptions options = spillway_options(round);
    auto spillway = make_routing_policy("spillway", options);
    auto least = make_routing_policy("least-loaded");
    auto rr = make_routing_policy("round-robin");
    ASSERT_TRUE(spillway.ok() && least.ok() && rr.ok());
    std::uint64_t turn = 0;
    for (int q = 0; q < 25; ++q) {
      const RouteRequest request = random_request(gen, fleet);
      const std::uint64_t seed = gen.next_u64();
      const std::uint64_t undrawn = SeededRandom(seed).next_u64();
      {
        SeededRandom a(seed), b(seed);
        const auto got = choose(**spillway, request, fleet, a);
        const auto want = reference_spillway(options, request, fleet, b);
        ASSERT_EQ(got, want) << "spillway, round " << round;
        const std::uint64_t next = b.next_u64();
        ASSERT_EQ(a.next_u64(), next) << "spillway drew differently, round " << round;
        decided += got.has_value();
        spillway_draws += next != undrawn;
      }
      {
        SeededRandom a(seed), b(seed);
        const auto got = choose(**least, request, fleet, a);
        const auto want = reference_least_loaded(request, fleet, b);
        ASSERT_EQ(got, want) << "least-loaded, round " << round;
        const std::uint64_t next = b.next_u64();
        ASSERT_EQ(a.next_u64(), next) << "least-loaded drew differently, round " << round;
        least_draws += next != undrawn;
      }
      {
        SeededRandom a(seed);
        ASSERT_EQ(choose(**rr, request, fleet, a), reference_round_robin(request, fleet, turn))
            << "round-robin, round " << round;
      }
    }
  }
  // The random fleets exercised real decisions, ties among them.
  EXPECT_GT(decided, 5000u);
  EXPECT_GT(spillway_draws, 30u);
  EXPECT_GT(least_draws, 100u);
}

TEST(RoutingEquivalence, ChoiceDoesNotDependOnTheOrderReplicasAreListed) {
  SeededRandom gen(7);
  for (std::uint64_t round = 0; round < 200; ++round) {
    std::vector<ReplicaView> fleet = random_fleet(gen, 2 + gen.below(30));
    const RoutingOptions options = spillway_options(round);
    const RouteRequest request = random_request(gen, fleet);
    const std::uint64_t seed = gen.next_u64();
    for (std::string_view name : {"spillway", "least-loaded", "round-robin"}) {
      auto p1 = make_routing_policy(name, options);
      auto p2 = make_routing_policy(name, options);
      ASSERT_TRUE(p1.ok() && p2.ok());
      std::vector<ReplicaView> shuffled = fleet;
      shuffle(shuffled, gen);
      SeededRandom a(seed), b(seed);
      EXPECT_EQ(choose(**p1, request, fleet, a), choose(**p2, request, shuffled, b))
          << name << ", round " << round;
    }
  }
}

// ---------------------------------------------------------------- the prefix-reusing hash

TEST(PrefixHasher, SameValuesAsHash64) {
  std::vector<std::string> inputs = {"", "a", "ab", "abc", "azure-eastus-h100-r1"};
  // Ids of many pools interleaved (more pools than slots), ids that extend and shorten one
  // another, and strings longer than the remembered prefix.
  SeededRandom gen(3);
  for (int i = 0; i < 3000; ++i) {
    const PoolShape& pool = kPools[gen.below(std::size(kPools))];
    inputs.push_back(fmt::format("{}-{}-r{}", pool.name, gen.below(12), gen.below(5000)));
  }
  inputs.push_back(std::string(internal::PrefixHasher::kMaxBytes, 'x'));
  inputs.push_back(std::string(internal::PrefixHasher::kMaxBytes + 1, 'x'));
  inputs.push_back(std::string(internal::PrefixHasher::kMaxBytes + 40, 'x') + "tail");
  inputs.push_back(std::string(internal::PrefixHasher::kMaxBytes + 40, 'x') + "other");
  inputs.push_back(std::string(3 * internal::PrefixHasher::kMaxBytes, 'y'));
  inputs.push_back("abc");
  inputs.push_back("ab");
  inputs.push_back("");
  internal::PrefixHasher hasher;
  for (const std::string& s : inputs) {
    ASSERT_EQ(hasher.hash64(s), internal::hash64(s)) << "'" << s << "'";
  }
  // And again in reverse, against the now-filled slots.
  for (auto it = inputs.rbegin(); it != inputs.rend(); ++it) {
    ASSERT_EQ(hasher.hash64(*it), internal::hash64(*it)) << "'" << *it << "'";
  }
}

}  // namespace
}  // namespace spillway::fleet
