// The example fleet files in examples/ parse and mean what their comments say.
#include <gtest/gtest.h>

#include <filesystem>

#include "fleet/api_key.h"
#include "fleet/fleet_spec.h"
#include "fleet/tenant_directory.h"

namespace spillway::fleet {
namespace {

std::string example(const std::string& name) {
  // tests/fleet/examples_test.cc -> repository root.
  const auto root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return (root / "examples" / name).string();
}

TEST(Examples, LocalTwoProviderFleet) {
  auto spec = load_fleet_spec(example("fleet.toml"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  ASSERT_EQ(spec->providers.size(), 2u);
  EXPECT_EQ(spec->providers[0].name, "azure");
  EXPECT_EQ(spec->providers[1].name, "oci");
  for (const PoolSpec* pool : spec->pools()) {
    EXPECT_TRUE(pool->local.has_value()) << pool->name;
    EXPECT_TRUE(pool->accepts_inference());
  }
  const ModelSpec* stories = spec->find_model("stories");
  ASSERT_NE(stories, nullptr);
  EXPECT_EQ(stories->min_replicas, 2);
  const TenantSpec* demo = spec->find_tenant("demo");
  ASSERT_NE(demo, nullptr);
  EXPECT_EQ(demo->priority, Priority::kInteractive);
  TenantDirectory directory(*spec);
  EXPECT_EQ(directory.find("sk-spw-DemoKeyForTheExampleFleetOnly000"), "demo");
  EXPECT_EQ(spec->gateway.routing, "spillway");
}

TEST(Examples, PlanningScaleFleet) {
  auto spec = load_fleet_spec(example("fleet-64k.toml"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  const PoolSpec* supercluster = spec->find_pool("oci-ashburn-supercluster");
  ASSERT_NE(supercluster, nullptr);
  EXPECT_EQ(supercluster->gpus, 64000);
  EXPECT_TRUE(supercluster->training);
  EXPECT_FALSE(supercluster->inference);
  EXPECT_TRUE(supercluster->allow_spillover);
  EXPECT_GE(spec->total_gpus(), 64000);
  std::set<std::string> azure_regions;
  for (const RegionSpec& r : spec->providers[0].regions)
    azure_regions.insert(r.name);
  EXPECT_EQ(azure_regions.size(), 2u);
  EXPECT_EQ(spec->models.size(), 2u);
  EXPECT_EQ(spec->find_tenant("chat-app")->cache_namespace, "shared/chat-system-prompts");
}

}  // namespace
}  // namespace spillway::fleet
