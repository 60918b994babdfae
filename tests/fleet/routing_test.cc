#include "fleet/routing.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/random.h"

namespace spillway::fleet {
namespace {

ReplicaView replica(const std::string& id, const std::string& provider = "azure",
                    CapacityKind capacity = CapacityKind::kReserved) {
  ReplicaView r;
  r.id = id;
  r.model = "m";
  r.provider = provider;
  r.region = "r";
  r.pool = provider + "-pool";
  r.url = "http://" + id;
  r.state = ReplicaState::kReady;
  r.capacity = capacity;
  r.rtt_ms = 2;
  r.cost_per_gpu_hour = 2;
  return r;
}

RouteRequest request(std::optional<std::uint64_t> prefix = std::nullopt) {
  RouteRequest r;
  r.model = "m";
  r.tenant = "t";
  r.cache_namespace = "tenant/t";
  r.prefix_key = prefix;
  return r;
}

std::unique_ptr<RoutingPolicy> policy(std::string_view name, const RoutingOptions& options = {}) {
  auto p = make_routing_policy(name, options);
  EXPECT_TRUE(p.ok()) << p.error().message();
  return std::move(p).value();
}

std::string choose(RoutingPolicy& p, const RouteRequest& req,
                   const std::vector<ReplicaView>& replicas, std::uint64_t seed = 1) {
  SeededRandom random(seed);
  auto chosen = p.choose(req, replicas, random);
  if (!chosen.ok()) return "error: " + chosen.error().message();
  return *chosen;
}

TEST(Routing, FactoryKnowsTheRegisteredNames) {
  for (std::string_view name : routing_policy_names()) {
    auto p = make_routing_policy(name);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)->name(), name);
    EXPECT_TRUE(is_routing_policy_name(name));
  }
  auto unknown = make_routing_policy("random");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(unknown.error().message(),
            "unknown routing policy 'random' (known: round-robin, least-loaded, spillway)");
  RoutingOptions bad;
  bad.saturation_kv_usage = 1.5;
  EXPECT_FALSE(make_routing_policy("spillway", bad).ok());
}

TEST(Routing, OnlyReadyReplicasOfTheModelNotExcludedAreEligible) {
  std::vector<ReplicaView> replicas = {replica("a"), replica("b"), replica("c"), replica("d"),
                                       replica("e")};
  replicas[0].state = ReplicaState::kStarting;
  replicas[1].state = ReplicaState::kDraining;
  replicas[2].state = ReplicaState::kUnhealthy;
  replicas[3].model = "other";
  RouteRequest req = request();
  for (std::string_view name : routing_policy_names()) {
    auto p = policy(name);
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(choose(*p, req, replicas, static_cast<std::uint64_t>(i)), "e") << name;
    req.exclude = {"e"};
    const std::string none = choose(*p, req, replicas);
    EXPECT_EQ(none, "error: no ready replica of model 'm' besides the 1 already tried") << name;
    req.exclude.clear();
    SeededRandom random(1);
    auto result = p->choose(request(), std::vector<ReplicaView>{}, random);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
  }
}

TEST(Routing, RoundRobinTakesTurnsInIdOrder) {
  auto p = policy("round-robin");
  const std::vector<ReplicaView> replicas = {replica("c"), replica("a"), replica("b")};
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i)
    order.push_back(choose(*p, request(), replicas));
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c", "a", "b", "c"}));
}

TEST(Routing, LeastLoadedPrefersFewestWaitingThenRunningThenKv) {
  auto p = policy("least-loaded");
  std::vector<ReplicaView> replicas = {replica("a"), replica("b"), replica("c")};
  replicas[0].waiting = 2;
  replicas[1].waiting = 1;
  replicas[1].running = 8;
  replicas[2].waiting = 1;
  replicas[2].running = 3;
  EXPECT_EQ(choose(*p, request(), replicas), "c");
  replicas[1].running = 3;
  replicas[1].kv_usage = 0.2;
  replicas[2].kv_usage = 0.5;
  EXPECT_EQ(choose(*p, request(), replicas), "b");
  // Exact ties are broken by the Random: both get picked over a few seeds.
  replicas[2].kv_usage = 0.2;
  std::set<std::string> picked;
  for (std::uint64_t seed = 0; seed < 32; ++seed)
    picked.insert(choose(*p, request(), replicas, seed));
  EXPECT_EQ(picked, (std::set<std::string>{"b", "c"}));
}

TEST(Routing, SpillwayFillsReservedBeforeOnDemand) {
  auto p = policy("spillway");
  std::vector<ReplicaView> replicas = {replica("od", "azure", CapacityKind::kOnDemand),
                                       replica("res", "azure", CapacityKind::kReserved)};
  replicas[1].waiting = 2;  // Busier, but not saturated.
  replicas[1].running = 16;
  EXPECT_EQ(choose(*p, request(), replicas), "res");
  replicas[1].waiting = 4;  // Saturated: spill to on-demand.
  EXPECT_EQ(choose(*p, request(), replicas), "od");
}

TEST(Routing, SpillwayPicksTheLeastLoadedWithinTheClass) {
  auto p = policy("spillway");
  std::vector<ReplicaView> replicas = {replica("a"), replica("b"), replica("c")};
  replicas[0].waiting = 2;
  replicas[1].running = 10;
  replicas[2].running = 4;
  replicas[2].kv_usage = 0.2;
  EXPECT_EQ(choose(*p, request(), replicas), "c");  // 0.4 + 0.4 < 1.0 < 2.0
}

TEST(Routing, PrefixAffinitySticksAndMovesWhenOverloadedOrExcluded) {
  auto p = policy("spillway");
  std::vector<ReplicaView> replicas;
  for (const char* id : {"r1", "r2", "r3", "r4"})
    replicas.push_back(replica(id));
  const std::uint64_t key = prefix_key_of("You are a helpful assistant. Tell me a story");
  const std::string home = choose(*p, request(key), replicas);
  // Same prefix, different seeds and modest load elsewhere: always the same replica.
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    EXPECT_EQ(choose(*p, request(key), replicas, seed), home);
  }
  for (auto& r : replicas)
    if (r.id == home) r.waiting = 3;  // Busier than the others, still under saturation.
  EXPECT_EQ(choose(*p, request(key), replicas), home);
  // Different prefixes spread over the replicas.
  std::set<std::string> homes;
  for (int i = 0; i < 64; ++i)
    homes.insert(choose(*p, request(prefix_key_of("prompt " + std::to_string(i))), replicas));
  EXPECT_EQ(homes.size(), 4u);
  // Overloaded: moves, and to the same second choice every time.
  for (auto& r : replicas)
    if (r.id == home) r.waiting = 4;
  const std::string second = choose(*p, request(key), replicas);
  EXPECT_NE(second, home);
  EXPECT_EQ(choose(*p, request(key), replicas, 99), second);
  // Excluded (e.g. it failed this request) while healthy again: the same second choice.
  for (auto& r : replicas)
    if (r.id == home) r.waiting = 0;
  RouteRequest retry = request(key);
  retry.exclude = {home};
  EXPECT_EQ(choose(*p, retry, replicas), second);
}

TEST(Routing, ARemovedReplicaMovesOnlyItsOwnPrefixes) {
  auto p = policy("spillway");
  std::vector<ReplicaView> replicas;
  for (const char* id : {"r1", "r2", "r3", "r4", "r5"})
    replicas.push_back(replica(id));
  std::vector<ReplicaView> without_r3;
  for (const auto& r : replicas)
    if (r.id != "r3") without_r3.push_back(r);
  int moved = 0;
  for (int i = 0; i < 200; ++i) {
    const RouteRequest req = request(prefix_key_of("conversation " + std::to_string(i)));
    const std::string before = choose(*p, req, replicas);
    const std::string after = choose(*p, req, without_r3);
    if (before == "r3") {
      EXPECT_NE(after, "r3");
      ++moved;
    } else {
      EXPECT_EQ(after, before) << i;
    }
  }
  EXPECT_GT(moved, 0);
}

TEST(Routing, PrefixKeysDependOnTheLeadingBytesOnly) {
  EXPECT_EQ(prefix_key_of("abcdef", 3), prefix_key_of("abcxyz", 3));
  EXPECT_NE(prefix_key_of("abcdef", 4), prefix_key_of("abcxyz", 4));
  EXPECT_EQ(prefix_key_of("ab", 3), prefix_key_of("ab"));
}

TEST(Routing, TwoProviderFleetSpillsToThePartnerWhenThePrimaryIsSaturated) {
  RoutingOptions options;
  options.primary_provider = "azure";
  auto p = policy("spillway", options);
  std::vector<ReplicaView> replicas = {replica("azure-1", "azure"), replica("azure-2", "azure"),
                                       replica("oci-1", "oci"), replica("oci-2", "oci")};
  for (auto& r : replicas)
    if (r.provider == "oci") r.rtt_ms = 12;
  // Lightly loaded primary: everything stays home, with or without a prefix.
  replicas[0].waiting = 1;
  replicas[1].waiting = 2;
  for (int i = 0; i < 16; ++i) {
    const std::string chosen = choose(*p, request(prefix_key_of(std::to_string(i))), replicas);
    EXPECT_EQ(chosen.rfind("azure", 0), 0u) << chosen;
  }
  EXPECT_EQ(choose(*p, request(), replicas), "azure-1");
  // Primary saturated (queues or KV): spill over.
  replicas[0].waiting = 6;
  replicas[1].kv_usage = 0.97;
  replicas[2].waiting = 1;
  EXPECT_EQ(choose(*p, request(), replicas), "oci-2");
  for (int i = 0; i < 16; ++i) {
    const std::string chosen = choose(*p, request(prefix_key_of(std::to_string(i))), replicas);
    EXPECT_EQ(chosen.rfind("oci", 0), 0u) << chosen;
  }
  // Batch traffic waits at home instead of spilling.
  RouteRequest batch = request();
  batch.priority = Priority::kBatch;
  EXPECT_EQ(choose(*p, batch, replicas).rfind("azure", 0), 0u);
  // Primary unhealthy: the partner takes everything, batch included.
  replicas[0].state = ReplicaState::kUnhealthy;
  replicas[1].state = ReplicaState::kUnhealthy;
  EXPECT_EQ(choose(*p, batch, replicas), "oci-2");
  // Everything saturated: the least loaded overall, preferring home on equal load.
  replicas[0].state = ReplicaState::kReady;
  replicas[1].state = ReplicaState::kReady;
  replicas[1].kv_usage = 0;
  replicas[1].waiting = 5;
  replicas[2].waiting = 9;
  replicas[3].waiting = 5;
  EXPECT_EQ(choose(*p, request(), replicas), "azure-2");
}

}  // namespace
}  // namespace spillway::fleet
