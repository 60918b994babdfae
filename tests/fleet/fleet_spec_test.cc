#include "fleet/fleet_spec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "test_support.h"

namespace spillway::fleet {
namespace {

// Errors point at the offending value: line numbers count from this text's first line, columns
// are where the value starts.
constexpr const char* kValid = R"([[providers]]
name = "azure"
  [[providers.regions]]
  name = "eastus"
  rtt_ms = 2.0
    [[providers.regions.pools]]
    name = "azure-eastus-h100"
    gpu = "H100"
    gpus = 64
    gpus_per_node = 8
    cost_per_gpu_hour = 2.5
    capacity = "reserved"
    workloads = ["inference"]
    max_gpus = 128
      [providers.regions.pools.local]
      threads = 2
      kv_cache_mib = 32
      port_base = 9000
[[providers]]
name = "oci"
  [[providers.regions]]
  name = "us-ashburn-1"
  rtt_ms = 12
    [[providers.regions.pools]]
    name = "oci-train"
    gpu = "B200"
    gpus = 1024
    gpus_per_node = 8
    cost_per_gpu_hour = 3
    capacity = "on-demand"
    workloads = ["training"]
    allow_spillover = true
[[models]]
name = "stories"
path = "models/stories260K.gguf"
gpus_per_replica = 1
min_replicas = 2
max_replicas = 4
context_tokens = 512
slo_ttft_ms = 2000
slo_tpot_ms = 200
[[tenants]]
name = "demo"
api_keys = ["sha256$00112233445566778899aabbccddeeff$0000000000000000000000000000000000000000000000000000000000000000"]
priority = "interactive"
tokens_per_minute = 100000
requests_per_minute = 600
models = ["stories"]
cache = "shared:docs"
[[tenants]]
name = "other"
[gateway]
routing = "least-loaded"
)";

// kValid with the first occurrence of `from` replaced by `to`.
std::string with(std::string_view from, std::string_view to) {
  std::string text = kValid;
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::string error_of(const std::string& text) {
  Result<FleetSpec> spec = parse_fleet_spec(text, "fleet.toml");
  if (spec.ok()) return "(parsed)";
  EXPECT_EQ(spec.error().code(), ErrorCode::kInvalidArgument);
  return spec.error().message();
}

TEST(FleetSpec, ParsesEveryField) {
  Result<FleetSpec> parsed = parse_fleet_spec(kValid, "conf/fleet.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  const FleetSpec& spec = *parsed;
  ASSERT_EQ(spec.providers.size(), 2u);
  EXPECT_EQ(spec.providers[0].name, "azure");
  ASSERT_EQ(spec.providers[0].regions.size(), 1u);
  const RegionSpec& eastus = spec.providers[0].regions[0];
  EXPECT_EQ(eastus.name, "eastus");
  EXPECT_DOUBLE_EQ(eastus.rtt_ms, 2.0);
  ASSERT_EQ(eastus.pools.size(), 1u);
  const PoolSpec& h100 = eastus.pools[0];
  EXPECT_EQ(h100.name, "azure-eastus-h100");
  EXPECT_EQ(h100.provider, "azure");
  EXPECT_EQ(h100.region, "eastus");
  EXPECT_DOUBLE_EQ(h100.rtt_ms, 2.0);
  EXPECT_EQ(h100.gpu, "H100");
  EXPECT_EQ(h100.gpus, 64);
  EXPECT_EQ(h100.gpus_per_node, 8);
  EXPECT_DOUBLE_EQ(h100.cost_per_gpu_hour, 2.5);
  EXPECT_EQ(h100.capacity, CapacityKind::kReserved);
  EXPECT_TRUE(h100.inference);
  EXPECT_FALSE(h100.training);
  EXPECT_FALSE(h100.allow_spillover);
  EXPECT_EQ(h100.max_gpus, 128);
  ASSERT_TRUE(h100.local.has_value());
  EXPECT_EQ(h100.local->threads, 2);
  EXPECT_EQ(h100.local->kv_cache_mib, 32);
  EXPECT_EQ(h100.local->port_base, 9000);

  const PoolSpec* train = spec.find_pool("oci-train");
  ASSERT_NE(train, nullptr);
  EXPECT_EQ(train->capacity, CapacityKind::kOnDemand);
  EXPECT_TRUE(train->training);
  EXPECT_FALSE(train->inference);
  EXPECT_TRUE(train->allow_spillover);
  EXPECT_TRUE(train->accepts_inference());
  EXPECT_EQ(train->max_gpus, 1024);  // Defaults to gpus.
  EXPECT_FALSE(train->local.has_value());
  EXPECT_DOUBLE_EQ(train->rtt_ms, 12.0);
  EXPECT_EQ(spec.total_gpus(), 64 + 1024);
  EXPECT_EQ(spec.pools().size(), 2u);
  EXPECT_EQ(spec.find_pool("nope"), nullptr);

  ASSERT_EQ(spec.models.size(), 1u);
  const ModelSpec& model = spec.models[0];
  EXPECT_EQ(model.name, "stories");
  EXPECT_EQ(model.path, "conf/models/stories260K.gguf");  // Relative to the file.
  EXPECT_EQ(model.gpus_per_replica, 1);
  EXPECT_EQ(model.min_replicas, 2);
  EXPECT_EQ(model.max_replicas, 4);
  EXPECT_EQ(model.context_tokens, 512);
  EXPECT_DOUBLE_EQ(model.slo_ttft_ms, 2000);
  EXPECT_DOUBLE_EQ(model.slo_tpot_ms, 200);

  ASSERT_EQ(spec.tenants.size(), 2u);
  const TenantSpec& demo = spec.tenants[0];
  EXPECT_EQ(demo.name, "demo");
  ASSERT_EQ(demo.api_key_hashes.size(), 1u);
  EXPECT_EQ(demo.priority, Priority::kInteractive);
  EXPECT_EQ(demo.tokens_per_minute, 100000);
  EXPECT_EQ(demo.requests_per_minute, 600);
  EXPECT_FALSE(demo.all_models);
  EXPECT_TRUE(demo.allows_model("stories"));
  EXPECT_FALSE(demo.allows_model("other"));
  EXPECT_TRUE(demo.shared_cache);
  EXPECT_EQ(demo.cache_namespace, "shared/docs");

  const TenantSpec* other = spec.find_tenant("other");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->priority, Priority::kStandard);
  EXPECT_EQ(other->tokens_per_minute, 0);
  EXPECT_TRUE(other->all_models);
  EXPECT_TRUE(other->allows_model("anything"));
  EXPECT_TRUE(other->api_key_hashes.empty());
  EXPECT_FALSE(other->shared_cache);
  EXPECT_EQ(other->cache_namespace, "tenant/other");

  EXPECT_EQ(spec.gateway.routing, "least-loaded");
}

TEST(FleetSpec, AbsoluteAndBarePathsStayAsWritten) {
  auto bare = parse_fleet_spec(kValid, "fleet.toml");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->models[0].path, "models/stories260K.gguf");
  auto absolute = parse_fleet_spec(with("models/stories260K.gguf", "/m/x.gguf"), "a/fleet.toml");
  ASSERT_TRUE(absolute.ok());
  EXPECT_EQ(absolute->models[0].path, "/m/x.gguf");
}

TEST(FleetSpec, ErrorsNameFileLineColumnAndKeyPath) {
  EXPECT_EQ(error_of(with("gpus = 64", "gpus = \"many\"")),
            "fleet.toml:9:12: providers[0].regions[0].pools[0].gpus: expected an integer, got a "
            "string");
  EXPECT_EQ(error_of(with("gpus_per_node = 8", "gpus_per_node = 6")),
            "fleet.toml:10:21: providers[0].regions[0].pools[0].gpus_per_node: 6 does not divide "
            "gpus (64)");
  EXPECT_EQ(error_of(with("capacity = \"reserved\"", "capacity = \"yearly\"")),
            "fleet.toml:12:16: providers[0].regions[0].pools[0].capacity: 'yearly' is not one of "
            "reserved, on-demand, spot");
  EXPECT_EQ(error_of(with("workloads = [\"inference\"]", "workloads = [\"gaming\"]")),
            "fleet.toml:13:17: providers[0].regions[0].pools[0].workloads: 'gaming' is not one of "
            "inference, training");
  EXPECT_EQ(error_of(with("workloads = [\"inference\"]", "workloads = []")),
            "fleet.toml:13:17: providers[0].regions[0].pools[0].workloads: must name inference "
            "and/or training");
  EXPECT_EQ(error_of(with("max_gpus = 128", "max_gpus = 32")),
            "fleet.toml:14:16: providers[0].regions[0].pools[0].max_gpus: 32 is below gpus (64)");
  EXPECT_EQ(error_of(with("threads = 2", "threads = 0")),
            "fleet.toml:16:17: providers[0].regions[0].pools[0].local.threads: 0 is out of range "
            "[1, 1024]");
  EXPECT_EQ(error_of(with("name = \"oci\"", "name = \"Oracle Cloud\"")),
            "fleet.toml:20:8: providers[1].name: 'Oracle Cloud' may only contain a-z 0-9 -");
  EXPECT_EQ(error_of(with("name = \"oci-train\"", "name = \"azure-eastus-h100\"")),
            "fleet.toml:25:12: providers[1].regions[0].pools[0].name: pool name "
            "'azure-eastus-h100' is already used by providers[0].regions[0].pools[0]");
  EXPECT_EQ(error_of(with("min_replicas = 2", "min_replicas = 5")),
            "fleet.toml:37:16: models[0].min_replicas: 5 exceeds max_replicas (4)");
  EXPECT_EQ(error_of(with("priority = \"interactive\"", "priority = \"urgent\"")),
            "fleet.toml:45:12: tenants[0].priority: 'urgent' is not one of interactive, standard, "
            "batch");
  EXPECT_EQ(error_of(with("models = [\"stories\"]", "models = [\"stories\", \"gpt-5\"]")),
            "fleet.toml:48:10: tenants[0].models: model 'gpt-5' is not defined in [[models]]");
  EXPECT_EQ(error_of(with("cache = \"shared:docs\"", "cache = \"public\"")),
            "fleet.toml:49:9: tenants[0].cache: 'public' is not \"private\" or "
            "\"shared:<namespace>\"");
  EXPECT_EQ(error_of(with("routing = \"least-loaded\"", "routing = \"random\"")),
            "fleet.toml:53:11: gateway.routing: 'random' is not one of round-robin, least-loaded, "
            "spillway");
}

// A local pool's replicas take its KV cache type (f16 unless set); anything else is an error.
TEST(FleetSpec, LocalPoolsChooseTheirKvCacheType) {
  Result<FleetSpec> plain = parse_fleet_spec(kValid, "fleet.toml");
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  EXPECT_EQ(plain->find_pool("azure-eastus-h100")->local->kv_type, "f16");
  Result<FleetSpec> q8 = parse_fleet_spec(
      with("port_base = 9000", "port_base = 9000\n      kv_type = \"q8_0\""), "fleet.toml");
  ASSERT_TRUE(q8.ok()) << q8.error().message();
  EXPECT_EQ(q8->find_pool("azure-eastus-h100")->local->kv_type, "q8_0");
  EXPECT_EQ(error_of(with("port_base = 9000", "port_base = 9000\n      kv_type = \"q4_0\"")),
            "fleet.toml:19:17: providers[0].regions[0].pools[0].local.kv_type: 'q4_0' is not one "
            "of f16, f32, q8_0");
}

TEST(FleetSpec, UnknownAndMissingKeys) {
  EXPECT_EQ(error_of(with("gpus_per_node = 8", "gpus_per_node = 8\n    gpu_count = 3")),
            "fleet.toml:11:17: providers[0].regions[0].pools[0].gpu_count: unknown key (allowed "
            "here: name, gpu, gpus, gpus_per_node, cost_per_gpu_hour, capacity, workloads, "
            "allow_spillover, max_gpus, local)");
  EXPECT_EQ(error_of(with("    gpu = \"H100\"\n", "")),
            "fleet.toml:6:5: providers[0].regions[0].pools[0].gpu: required key is missing");
  EXPECT_EQ(error_of(with("[gateway]", "[gateways]")),
            "fleet.toml:52:1: gateways: unknown key (allowed here: providers, models, tenants, "
            "gateway)");
  // No [[models]] at all.
  const std::string text = kValid;
  const std::string no_models = text.substr(0, text.find("[[models]]"));
  EXPECT_EQ(error_of(no_models), "fleet.toml:1:1: models: at least one model is required");
}

TEST(FleetSpec, PlaintextKeysAreRejectedWithoutEchoingThem) {
  const std::string message =
      error_of(with("\"sha256$00112233445566778899aabbccddeeff$"
                    "0000000000000000000000000000000000000000000000000000000000000000\"",
                    "\"sk-spw-secretsecretsecret\""));
  EXPECT_EQ(message,
            "fleet.toml:44:12: tenants[0].api_keys: entry 0 is not a salted hash (\"sha256$<32 hex "
            "salt>$<64 hex digest>\"); plaintext keys are not allowed in fleet files");
  EXPECT_EQ(message.find("secret"), std::string::npos);
}

TEST(FleetSpec, ModelsMustFitAnInferenceCapablePool) {
  // 1024 GPUs in the training pool count only because it allows spillover.
  EXPECT_EQ(error_of(with("gpus_per_replica = 1", "gpus_per_replica = 512")), "(parsed)");
  // Without spillover the 64-GPU pool still holds 2 replicas of 1 GPU.
  EXPECT_EQ(error_of(with("allow_spillover = true", "allow_spillover = false")), "(parsed)");
  std::string no_spill = with("allow_spillover = true", "allow_spillover = false");
  no_spill.replace(no_spill.find("gpus_per_replica = 1"), 20, "gpus_per_replica = 512");
  EXPECT_EQ(error_of(no_spill),
            "fleet.toml:36:20: models[0].gpus_per_replica: 512 GPUs per replica do not fit any "
            "inference-capable pool (the largest has 64)");
  std::string too_many = with("max_replicas = 4", "max_replicas = 100");
  too_many.replace(too_many.find("min_replicas = 2"), 16, "min_replicas = 99");
  too_many.replace(too_many.find("gpus_per_replica = 1"), 20, "gpus_per_replica = 16");
  EXPECT_EQ(error_of(too_many),
            "fleet.toml:37:16: models[0].min_replicas: 99 replicas of 16 GPUs do not fit; the "
            "inference-capable pools hold at most 68");
}

TEST(FleetSpec, DuplicateNamesAndKeys) {
  EXPECT_EQ(error_of(with("name = \"other\"", "name = \"demo\"")),
            "fleet.toml:51:8: tenants[1].name: tenant name 'demo' is already used by tenants[0]");
  const std::string hash =
      "\"sha256$00112233445566778899aabbccddeeff$"
      "0000000000000000000000000000000000000000000000000000000000000000\"";
  EXPECT_EQ(error_of(with("name = \"other\"", "name = \"other\"\napi_keys = [" + hash + "]")),
            "fleet.toml:52:12: tenants[1].api_keys: entry 0 is also listed by tenants[0]");
}

TEST(FleetSpec, LimitsAreEnforced) {
  FleetLimits limits;
  limits.max_providers = 1;
  auto spec = parse_fleet_spec(kValid, "fleet.toml", limits);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.error().message(), "fleet.toml:1:1: providers: 2 providers exceed the limit of 1");
  limits = FleetLimits{};
  limits.max_gpus_per_pool = 100;
  spec = parse_fleet_spec(kValid, "fleet.toml", limits);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.error().message(),
            "fleet.toml:14:16: providers[0].regions[0].pools[0].max_gpus: 128 is out of range "
            "[1, 100]");
}

TEST(FleetSpec, SyntaxErrorsAndMissingFiles) {
  auto bad = parse_fleet_spec("[[providers]\nname = 1", "broken.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("broken.toml:1:", 0), 0u) << bad.error().message();
  auto missing = load_fleet_spec("/nonexistent/fleet.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST(FleetSpec, LoadsFromFileRelativeToItsDirectory) {
  const auto dir = testing::temp_dir("fleet_spec_load");
  {
    std::ofstream out(dir / "fleet.toml");
    out << kValid;
  }
  auto spec = load_fleet_spec((dir / "fleet.toml").string());
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->models[0].path, (dir / "models/stories260K.gguf").string());
}

}  // namespace
}  // namespace spillway::fleet
