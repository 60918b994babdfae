// The fleet description: providers → regions → GPU pools, the models served on them and the
// tenants allowed to call them, read from TOML (see docs/FLEET.md for a full example).
//
//   [[providers]]                       name: [a-z0-9-]+, unique
//     [[providers.regions]]             name: [a-z0-9-]+, unique within the provider
//     rtt_ms = 2.0                      gateway <-> region round trip, [0, 10000]
//       [[providers.regions.pools]]     name: [a-z0-9-]+, unique in the whole fleet
//       gpu = "H100"                    GPU type (free text, non-empty, at most 64 bytes)
//       gpus = 64                       [1, limits.max_gpus_per_pool]
//       gpus_per_node = 8               >= 1, divides gpus
//       cost_per_gpu_hour = 2.5         [0, 10000]
//       capacity = "reserved"           reserved | on-demand | spot
//       workloads = ["inference"]       non-empty subset of {inference, training}, no repeats
//       allow_spillover = false         a training-only pool takes inference only when true
//       max_gpus = 64                   optional ceiling for autoscaling/planning; >= gpus,
//                                       a multiple of gpus_per_node (default: gpus)
//         [providers.regions.pools.local]  optional: replicas are local `spillway serve`s
//         threads = 1                   [1, 1024]
//         kv_cache_mib = 64             [1, 1048576]
//         kv_type = "f16"               f16 | f32 | q8_0: the replicas' `--kv-type`
//         port_base = 0                 [0, 65535]; 0 = any free port
//   [[models]]                          name: [A-Za-z0-9._:/-]+, unique, at most 128 bytes
//   path = "models/x.gguf"              relative to the fleet file's directory
//   gpus_per_replica = 1                [1, limits.max_gpus_per_pool]
//   min_replicas = 1, max_replicas = 4  0 <= min <= max, max >= 1
//   context_tokens = 4096               [1, 10^7]: the gateway's worst case per request
//   slo_ttft_ms = 2000, slo_tpot_ms = 200   > 0
//   [[tenants]]                         name: [a-z0-9-]+, unique
//   api_keys = ["sha256$<salt>$<hash>"] salted hashes only (fleet/api_key.h); optional
//   priority = "standard"               interactive | standard | batch (default standard)
//   tokens_per_minute = 0               0 = unlimited (default)
//   requests_per_minute = 0             0 = unlimited (default)
//   models = ["*"]                      model names or "*" for all (default ["*"])
//   cache = "private"                   private | shared:<[a-z0-9-]+> (default private)
//   [gateway]                           optional
//   routing = "spillway"                round-robin | least-loaded | spillway
//
// Every section rejects unknown keys. Cross-checks: every tenant's models exist; every model
// has an inference-capable pool with gpus >= gpus_per_replica (a pool is inference-capable
// when its workloads include inference, or it allows spillover); the inference-capable pools
// together can hold min_replicas replicas of each model on its own; no stored key hash
// appears twice. Every error is one line naming file:line:col and the key path, e.g.
//   fleet.toml:10:21: providers[0].regions[0].pools[0].gpus_per_node: 6 does not divide gpus (64)
// (line and column of the offending value).
//
// Thread-safety: the structs are plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "fleet/capacity.h"
#include "fleet/priority.h"

namespace spillway::fleet {

// Upper bounds on a fleet file; a description beyond them is rejected as a mistake.
struct FleetLimits {
  std::size_t max_providers = 64;
  std::size_t max_regions_per_provider = 64;
  std::size_t max_pools = 4096;  // In the whole fleet.
  std::size_t max_models = 1024;
  std::size_t max_tenants = 100'000;
  std::size_t max_api_keys_per_tenant = 16;
  // Across all tenants: a presented key that is not cached is checked against every stored
  // hash, so this bounds the cost of an unknown key.
  std::size_t max_api_keys = 4096;
  std::size_t max_models_per_tenant = 1024;
  std::int64_t max_gpus_per_pool = 1'000'000;
};

// The names a local pool's kv_type takes: `spillway serve --kv-type`'s (engine::parse_kv_type;
// fleet/ does not depend on the engine, so a test checks that the two lists agree).
inline constexpr std::string_view kLocalKvTypes[] = {"f16", "f32", "q8_0"};

struct LocalPoolSpec {
  int threads = 1;
  int kv_cache_mib = 64;
  std::string kv_type = "f16";  // f16, f32 or q8_0 (`spillway serve --kv-type`).
  int port_base = 0;            // 0 = any free port.
};

struct PoolSpec {
  std::string name;
  std::string provider;  // The enclosing provider's and region's names and RTT, copied here so
  std::string region;    // policies can work from a pool alone.
  double rtt_ms = 0;
  std::string gpu;
  std::int64_t gpus = 0;
  std::int64_t gpus_per_node = 1;
  double cost_per_gpu_hour = 0;
  CapacityKind capacity = CapacityKind::kOnDemand;
  bool inference = false;  // workloads include "inference".
  bool training = false;   // workloads include "training".
  bool allow_spillover = false;
  std::int64_t max_gpus = 0;
  std::optional<LocalPoolSpec> local;

  // Whether inference replicas may be placed here.
  [[nodiscard]] bool accepts_inference() const { return inference || allow_spillover; }
};

struct RegionSpec {
  std::string name;
  double rtt_ms = 0;
  std::vector<PoolSpec> pools;
};

struct ProviderSpec {
  std::string name;
  std::vector<RegionSpec> regions;
};

struct ModelSpec {
  std::string name;
  std::string path;  // Resolved against the fleet file's directory unless absolute.
  std::int64_t gpus_per_replica = 1;
  std::int64_t min_replicas = 1;
  std::int64_t max_replicas = 1;
  std::int64_t context_tokens = 4096;
  double slo_ttft_ms = 2000;
  double slo_tpot_ms = 200;
};

struct TenantSpec {
  std::string name;
  std::vector<std::string> api_key_hashes;  // Stored form, see fleet/api_key.h.
  Priority priority = Priority::kStandard;
  std::int64_t tokens_per_minute = 0;    // 0 = unlimited.
  std::int64_t requests_per_minute = 0;  // 0 = unlimited.
  bool all_models = true;                // models = ["*"].
  std::vector<std::string> models;       // When !all_models.
  bool shared_cache = false;
  // The KV prefix-cache namespace: "tenant/<name>" when private, "shared/<ns>" when
  // cache = "shared:<ns>". The prefixes keep a private namespace from ever equalling a shared
  // one, whatever the names.
  std::string cache_namespace;

  [[nodiscard]] bool allows_model(std::string_view model) const;
};

struct GatewaySpec {
  std::string routing = "spillway";
};

struct FleetSpec {
  std::vector<ProviderSpec> providers;
  std::vector<ModelSpec> models;
  std::vector<TenantSpec> tenants;
  GatewaySpec gateway;

  // Every pool, in file order. The pointers are valid while this spec lives unmodified.
  [[nodiscard]] std::vector<const PoolSpec*> pools() const;
  // nullptr when absent.
  [[nodiscard]] const PoolSpec* find_pool(std::string_view name) const;
  [[nodiscard]] const ModelSpec* find_model(std::string_view name) const;
  [[nodiscard]] const TenantSpec* find_tenant(std::string_view name) const;
  [[nodiscard]] std::int64_t total_gpus() const;
};

// Parses and validates a fleet description. `source_name` names the text in errors and its
// directory is the base for relative model paths ("" or a bare file name: paths stay as
// written). Errors are kInvalidArgument (kPayloadTooLarge for an oversized text).
[[nodiscard]] Result<FleetSpec> parse_fleet_spec(std::string_view toml, std::string source_name,
                                                 const FleetLimits& limits = {});
// Reads `path` and parses it as above (kNotFound when it cannot be opened).
[[nodiscard]] Result<FleetSpec> load_fleet_spec(const std::string& path,
                                                const FleetLimits& limits = {});

}  // namespace spillway::fleet
