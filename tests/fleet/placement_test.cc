#include "fleet/placement.h"

#include <gtest/gtest.h>

namespace spillway::fleet {
namespace {

struct PoolArgs {
  std::string provider;
  std::string name;
  std::int64_t gpus = 8;
  CapacityKind capacity = CapacityKind::kOnDemand;
  double cost = 2.0;
  double rtt_ms = 5;
  bool inference = true;
  bool training = false;
  bool spillover = false;
};

// A fleet with one region per provider, pools added in order.
class FleetBuilder {
 public:
  FleetBuilder& pool(const PoolArgs& a) {
    ProviderSpec* provider = nullptr;
    for (auto& p : spec_.providers)
      if (p.name == a.provider) provider = &p;
    if (provider == nullptr) {
      spec_.providers.push_back(ProviderSpec{a.provider, {RegionSpec{"r", a.rtt_ms, {}}}});
      provider = &spec_.providers.back();
    }
    PoolSpec pool;
    pool.name = a.name;
    pool.provider = a.provider;
    pool.region = "r";
    pool.rtt_ms = a.rtt_ms;
    pool.gpu = "H100";
    pool.gpus = a.gpus;
    pool.max_gpus = a.gpus;
    pool.cost_per_gpu_hour = a.cost;
    pool.capacity = a.capacity;
    pool.inference = a.inference;
    pool.training = a.training;
    pool.allow_spillover = a.spillover;
    provider->regions[0].pools.push_back(pool);
    return *this;
  }
  FleetSpec build() const { return spec_; }

 private:
  FleetSpec spec_;
};

ModelSpec model(std::int64_t gpus_per_replica = 1, double slo_ttft_ms = 2000) {
  ModelSpec m;
  m.name = "m";
  m.gpus_per_replica = gpus_per_replica;
  m.min_replicas = 1;
  m.max_replicas = 8;
  m.slo_ttft_ms = slo_ttft_ms;
  return m;
}

ReplicaView replica_in(const std::string& provider, const std::string& pool) {
  ReplicaView r;
  r.id = provider + "-" + pool;
  r.model = "m";
  r.provider = provider;
  r.pool = pool;
  r.state = ReplicaState::kReady;
  return r;
}

std::string choose(const FleetSpec& fleet, const ModelSpec& m, const PoolUsage& used = {},
                   const std::vector<ReplicaView>& existing = {},
                   const std::set<std::string>& drained = {}) {
  Result<std::string> pool = choose_pool(fleet, m, used, existing, drained);
  if (!pool.ok()) return "error: " + pool.error().message();
  return *pool;
}

TEST(Placement, ReservedCapacityFirstThenCheapest) {
  const FleetSpec fleet = FleetBuilder()
                              .pool({.provider = "a", .name = "a-od-cheap", .cost = 1.0})
                              .pool({.provider = "a",
                                     .name = "a-reserved",
                                     .capacity = CapacityKind::kReserved,
                                     .cost = 3.0})
                              .pool({.provider = "a", .name = "a-od-pricey", .cost = 4.0})
                              .build();
  EXPECT_EQ(choose(fleet, model()), "a-reserved");
  // Reserved pool full: the cheapest of the rest.
  EXPECT_EQ(choose(fleet, model(), {{"a-reserved", 8}}), "a-od-cheap");
  EXPECT_EQ(choose(fleet, model(), {{"a-reserved", 8}, {"a-od-cheap", 7}}), "a-od-cheap");
  EXPECT_EQ(choose(fleet, model(2), {{"a-reserved", 8}, {"a-od-cheap", 7}}), "a-od-pricey");
}

TEST(Placement, OnDemandBeforeSpotAtEqualCostAndNameBreaksTies) {
  const FleetSpec fleet =
      FleetBuilder()
          .pool({.provider = "a", .name = "z-spot", .capacity = CapacityKind::kSpot})
          .pool({.provider = "a", .name = "y-od"})
          .pool({.provider = "a", .name = "x-od"})
          .build();
  EXPECT_EQ(choose(fleet, model()), "x-od");
  EXPECT_EQ(choose(fleet, model(), {{"x-od", 8}, {"y-od", 8}}), "z-spot");
}

TEST(Placement, TrainingOnlyPoolsNeedSpillover) {
  const FleetSpec no_spill = FleetBuilder()
                                 .pool({.provider = "a",
                                        .name = "train",
                                        .capacity = CapacityKind::kReserved,
                                        .cost = 0.5,
                                        .inference = false,
                                        .training = true})
                                 .pool({.provider = "a", .name = "infer", .cost = 5})
                                 .build();
  EXPECT_EQ(choose(no_spill, model()), "infer");
  EXPECT_EQ(choose(no_spill, model(), {{"infer", 8}}),
            "error: no pool can take a replica of model 'm' (1 GPUs): 1 pools accept inference, "
            "0 drained, 1 without 1 free GPUs");
  const FleetSpec spill = FleetBuilder()
                              .pool({.provider = "a",
                                     .name = "train",
                                     .capacity = CapacityKind::kReserved,
                                     .cost = 0.5,
                                     .inference = false,
                                     .training = true,
                                     .spillover = true})
                              .pool({.provider = "a", .name = "infer", .cost = 5})
                              .build();
  EXPECT_EQ(choose(spill, model()), "train");
}

TEST(Placement, SpreadsAModelOverTwoProviders) {
  const FleetSpec fleet = FleetBuilder()
                              .pool({.provider = "azure",
                                     .name = "azure-reserved",
                                     .gpus = 64,
                                     .capacity = CapacityKind::kReserved,
                                     .cost = 2})
                              .pool({.provider = "oci", .name = "oci-od", .gpus = 64, .cost = 4})
                              .build();
  EXPECT_EQ(choose(fleet, model()), "azure-reserved");
  // The second replica goes to the other provider despite reserved capacity at home...
  EXPECT_EQ(
      choose(fleet, model(), {{"azure-reserved", 1}}, {replica_in("azure", "azure-reserved")}),
      "oci-od");
  // ...and once both providers have one, cost and capacity kind decide again.
  EXPECT_EQ(choose(fleet, model(), {{"azure-reserved", 1}, {"oci-od", 1}},
                   {replica_in("azure", "azure-reserved"), replica_in("oci", "oci-od")}),
            "azure-reserved");
  // Stopped replicas do not count.
  ReplicaView stopped = replica_in("oci", "oci-od");
  stopped.state = ReplicaState::kStopped;
  EXPECT_EQ(choose(fleet, model(), {{"azure-reserved", 1}},
                   {replica_in("azure", "azure-reserved"), stopped}),
            "oci-od");
}

TEST(Placement, SpreadFallsBackToOneProviderWhenTheOtherIsFull) {
  const FleetSpec fleet = FleetBuilder()
                              .pool({.provider = "azure", .name = "azure-1"})
                              .pool({.provider = "oci", .name = "oci-1"})
                              .build();
  EXPECT_EQ(
      choose(fleet, model(), {{"azure-1", 1}, {"oci-1", 8}}, {replica_in("azure", "azure-1")}),
      "azure-1");
}

TEST(Placement, DrainedPoolsAreSkipped) {
  const FleetSpec fleet =
      FleetBuilder()
          .pool({.provider = "a", .name = "a-reserved", .capacity = CapacityKind::kReserved})
          .pool({.provider = "b", .name = "b-od"})
          .build();
  EXPECT_EQ(choose(fleet, model(), {}, {}, {"a-reserved"}), "b-od");
  EXPECT_EQ(choose(fleet, model(), {}, {}, {"a-reserved", "b-od"}),
            "error: no pool can take a replica of model 'm' (1 GPUs): 2 pools accept inference, "
            "2 drained, 0 without 1 free GPUs");
}

TEST(Placement, PoolsWithinTheTtftBudgetComeFirst) {
  const FleetSpec fleet = FleetBuilder()
                              .pool({.provider = "far",
                                     .name = "far-reserved",
                                     .capacity = CapacityKind::kReserved,
                                     .cost = 1,
                                     .rtt_ms = 150})
                              .pool({.provider = "near", .name = "near-od", .cost = 4, .rtt_ms = 5})
                              .build();
  // 2 * 150 ms >= 250 ms: the far pool misses the SLO, so the dearer near pool wins.
  EXPECT_EQ(choose(fleet, model(1, 250)), "near-od");
  // With a loose SLO the reserved far pool is fine.
  EXPECT_EQ(choose(fleet, model(1, 2000)), "far-reserved");
  // When only the far pool has room, it is used anyway.
  EXPECT_EQ(choose(fleet, model(1, 250), {{"near-od", 8}}), "far-reserved");
}

TEST(Placement, NothingFits) {
  const FleetSpec fleet =
      FleetBuilder().pool({.provider = "a", .name = "small", .gpus = 4}).build();
  Result<std::string> pool = choose_pool(fleet, model(8), {}, {}, {});
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(pool.error().message(),
            "no pool can take a replica of model 'm' (8 GPUs): 1 pools accept inference, 0 "
            "drained, 1 without 8 free GPUs");
}

}  // namespace
}  // namespace spillway::fleet
