#include "fleet/fleet_spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string_view>

#include "core/config.h"

#include "fleet/api_key.h"
#include "fleet/routing.h"

namespace spillway::fleet {

namespace {

constexpr std::size_t kMaxNameBytes = 64;
constexpr std::size_t kMaxModelNameBytes = 128;
constexpr std::size_t kMaxPathBytes = 4096;

bool is_lower_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}
bool is_model_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == ':' || c == '/';
}

// A required name at `key` made of [a-z0-9-]+ (or model-name characters).
Result<std::string> read_name(const ConfigTable& t, std::string_view key, bool model_name = false) {
  SPW_ASSIGN_OR_RETURN(std::string name, t.string(key));
  const std::size_t max_bytes = model_name ? kMaxModelNameBytes : kMaxNameBytes;
  if (name.empty()) return t.error_at(key, "must not be empty");
  if (name.size() > max_bytes) {
    return t.error_at(key, fmt::format("is {} bytes; the limit is {}", name.size(), max_bytes));
  }
  const bool valid = model_name ? std::all_of(name.begin(), name.end(), is_model_name_char)
                                : std::all_of(name.begin(), name.end(), is_lower_name_char);
  if (!valid) {
    return t.error_at(key, model_name
                               ? fmt::format("'{}' may only contain A-Z a-z 0-9 - _ . : /", name)
                               : fmt::format("'{}' may only contain a-z 0-9 -", name));
  }
  return name;
}

// Tables of an optional array-of-tables key, bounded by `limit`.
Result<std::vector<ConfigTable>> read_tables(const ConfigTable& t, std::string_view key,
                                             bool required, std::size_t limit,
                                             std::string_view what) {
  if (!t.has(key)) {
    if (required) return t.error_at(key, fmt::format("at least one {} is required", what));
    return std::vector<ConfigTable>{};
  }
  SPW_ASSIGN_OR_RETURN(std::vector<ConfigTable> tables, t.tables(key));
  if (required && tables.empty()) {
    return t.error_at(key, fmt::format("at least one {} is required", what));
  }
  if (tables.size() > limit) {
    return t.error_at(key,
                      fmt::format("{} {}s exceed the limit of {}", tables.size(), what, limit));
  }
  return tables;
}

// Remembers names and where they were defined, to report duplicates.
class NameSet {
 public:
  explicit NameSet(std::string_view what) : what_(what) {}
  Status add(const ConfigTable& t, const std::string& name) {
    auto [it, inserted] = first_.emplace(name, t.path());
    if (!inserted) {
      return t.error_at("name",
                        fmt::format("{} name '{}' is already used by {}", what_, name, it->second));
    }
    return Status();
  }

 private:
  std::string_view what_;
  std::map<std::string, std::string, std::less<>> first_;
};

Result<LocalPoolSpec> parse_local(const ConfigTable& t) {
  SPW_TRY(t.check_keys({"threads", "kv_cache_mib", "kv_type", "port_base"}));
  LocalPoolSpec local;
  SPW_ASSIGN_OR_RETURN(std::int64_t threads, t.integer_or("threads", 1, 1, 1024));
  SPW_ASSIGN_OR_RETURN(std::int64_t kv, t.integer_or("kv_cache_mib", 64, 1, 1 << 20));
  SPW_ASSIGN_OR_RETURN(std::int64_t port, t.integer_or("port_base", 0, 0, 65535));
  // The replica checks the type against its model (q8_0 needs head_dim a multiple of 32).
  SPW_ASSIGN_OR_RETURN(local.kv_type, t.string_or("kv_type", "f16"));
  if (std::find(std::begin(kLocalKvTypes), std::end(kLocalKvTypes), local.kv_type) ==
      std::end(kLocalKvTypes)) {
    return t.error_at("kv_type", fmt::format("'{}' is not one of {}", local.kv_type,
                                             fmt::join(kLocalKvTypes, ", ")));
  }
  local.threads = static_cast<int>(threads);
  local.kv_cache_mib = static_cast<int>(kv);
  local.port_base = static_cast<int>(port);
  return local;
}

Result<PoolSpec> parse_pool(const ConfigTable& t, const FleetLimits& limits) {
  SPW_TRY(t.check_keys({"name", "gpu", "gpus", "gpus_per_node", "cost_per_gpu_hour", "capacity",
                        "workloads", "allow_spillover", "max_gpus", "local"}));
  PoolSpec pool;
  SPW_ASSIGN_OR_RETURN(pool.name, read_name(t, "name"));
  SPW_ASSIGN_OR_RETURN(pool.gpu, t.string("gpu"));
  if (pool.gpu.empty()) return t.error_at("gpu", "must not be empty");
  if (pool.gpu.size() > kMaxNameBytes) {
    return t.error_at("gpu",
                      fmt::format("is {} bytes; the limit is {}", pool.gpu.size(), kMaxNameBytes));
  }
  SPW_ASSIGN_OR_RETURN(pool.gpus, t.integer("gpus", 1, limits.max_gpus_per_pool));
  SPW_ASSIGN_OR_RETURN(pool.gpus_per_node, t.integer("gpus_per_node", 1, limits.max_gpus_per_pool));
  if (pool.gpus % pool.gpus_per_node != 0) {
    return t.error_at("gpus_per_node",
                      fmt::format("{} does not divide gpus ({})", pool.gpus_per_node, pool.gpus));
  }
  SPW_ASSIGN_OR_RETURN(pool.cost_per_gpu_hour, t.number("cost_per_gpu_hour", 0, 10000));
  SPW_ASSIGN_OR_RETURN(std::string capacity, t.string("capacity"));
  const std::optional<CapacityKind> kind = parse_capacity_kind(capacity);
  if (!kind) {
    return t.error_at("capacity",
                      fmt::format("'{}' is not one of reserved, on-demand, spot", capacity));
  }
  pool.capacity = *kind;
  SPW_ASSIGN_OR_RETURN(std::vector<std::string> workloads, t.strings("workloads"));
  if (workloads.empty()) return t.error_at("workloads", "must name inference and/or training");
  for (const std::string& w : workloads) {
    bool* flag = w == "inference" ? &pool.inference : w == "training" ? &pool.training : nullptr;
    if (flag == nullptr) {
      return t.error_at("workloads", fmt::format("'{}' is not one of inference, training", w));
    }
    if (*flag) return t.error_at("workloads", fmt::format("'{}' appears twice", w));
    *flag = true;
  }
  SPW_ASSIGN_OR_RETURN(pool.allow_spillover, t.boolean_or("allow_spillover", false));
  SPW_ASSIGN_OR_RETURN(pool.max_gpus,
                       t.integer_or("max_gpus", pool.gpus, 1, limits.max_gpus_per_pool));
  if (pool.max_gpus < pool.gpus) {
    return t.error_at("max_gpus", fmt::format("{} is below gpus ({})", pool.max_gpus, pool.gpus));
  }
  if (pool.max_gpus % pool.gpus_per_node != 0) {
    return t.error_at("max_gpus", fmt::format("{} is not a multiple of gpus_per_node ({})",
                                              pool.max_gpus, pool.gpus_per_node));
  }
  if (t.has("local")) {
    SPW_ASSIGN_OR_RETURN(ConfigTable local, t.table("local"));
    SPW_ASSIGN_OR_RETURN(LocalPoolSpec parsed, parse_local(local));
    pool.local = parsed;
  }
  return pool;
}

Status parse_providers(const ConfigTable& root, const FleetLimits& limits, FleetSpec& spec) {
  SPW_ASSIGN_OR_RETURN(std::vector<ConfigTable> providers,
                       read_tables(root, "providers", true, limits.max_providers, "provider"));
  NameSet provider_names("provider");
  NameSet pool_names("pool");
  std::size_t pool_count = 0;
  for (const ConfigTable& pt : providers) {
    SPW_TRY(pt.check_keys({"name", "regions"}));
    ProviderSpec provider;
    SPW_ASSIGN_OR_RETURN(provider.name, read_name(pt, "name"));
    SPW_TRY(provider_names.add(pt, provider.name));
    SPW_ASSIGN_OR_RETURN(
        std::vector<ConfigTable> regions,
        read_tables(pt, "regions", true, limits.max_regions_per_provider, "region"));
    NameSet region_names("region");
    for (const ConfigTable& rt : regions) {
      SPW_TRY(rt.check_keys({"name", "rtt_ms", "pools"}));
      RegionSpec region;
      SPW_ASSIGN_OR_RETURN(region.name, read_name(rt, "name"));
      SPW_TRY(region_names.add(rt, region.name));
      SPW_ASSIGN_OR_RETURN(region.rtt_ms, rt.number_or("rtt_ms", 0, 0, 10000));
      SPW_ASSIGN_OR_RETURN(std::vector<ConfigTable> pools,
                           read_tables(rt, "pools", true, limits.max_pools, "pool"));
      for (const ConfigTable& pool_table : pools) {
        if (++pool_count > limits.max_pools) {
          return pool_table.error_at(
              "", fmt::format("the fleet has more than {} pools", limits.max_pools));
        }
        SPW_ASSIGN_OR_RETURN(PoolSpec pool, parse_pool(pool_table, limits));
        SPW_TRY(pool_names.add(pool_table, pool.name));
        pool.provider = provider.name;
        pool.region = region.name;
        pool.rtt_ms = region.rtt_ms;
        region.pools.push_back(std::move(pool));
      }
      provider.regions.push_back(std::move(region));
    }
    spec.providers.push_back(std::move(provider));
  }
  return Status();
}

std::string resolve_path(const std::string& path, const std::string& source_name) {
  const std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  const std::filesystem::path base = std::filesystem::path(source_name).parent_path();
  if (base.empty()) return path;
  return (base / p).lexically_normal().string();
}

Status check_model_fits(const ConfigTable& t, const ModelSpec& model, const FleetSpec& spec) {
  std::int64_t largest = 0;
  std::int64_t replicas = 0;
  for (const PoolSpec* pool : spec.pools()) {
    if (!pool->accepts_inference()) continue;
    largest = std::max(largest, pool->gpus);
    replicas += pool->gpus / model.gpus_per_replica;
  }
  if (largest < model.gpus_per_replica) {
    return t.error_at("gpus_per_replica",
                      largest == 0
                          ? std::string("no pool accepts inference (workloads without "
                                        "\"inference\" and allow_spillover = false everywhere)")
                          : fmt::format("{} GPUs per replica do not fit any inference-capable "
                                        "pool (the largest has {})",
                                        model.gpus_per_replica, largest));
  }
  if (replicas < model.min_replicas) {
    return t.error_at("min_replicas",
                      fmt::format("{} replicas of {} GPUs do not fit; the inference-capable "
                                  "pools hold at most {}",
                                  model.min_replicas, model.gpus_per_replica, replicas));
  }
  return Status();
}

Status parse_models(const ConfigTable& root, const FleetLimits& limits,
                    const std::string& source_name, FleetSpec& spec) {
  SPW_ASSIGN_OR_RETURN(std::vector<ConfigTable> models,
                       read_tables(root, "models", true, limits.max_models, "model"));
  NameSet names("model");
  for (const ConfigTable& t : models) {
    SPW_TRY(t.check_keys({"name", "path", "gpus_per_replica", "min_replicas", "max_replicas",
                          "context_tokens", "slo_ttft_ms", "slo_tpot_ms"}));
    ModelSpec model;
    SPW_ASSIGN_OR_RETURN(model.name, read_name(t, "name", /*model_name=*/true));
    SPW_TRY(names.add(t, model.name));
    SPW_ASSIGN_OR_RETURN(std::string path, t.string("path"));
    if (path.empty()) return t.error_at("path", "must not be empty");
    if (path.size() > kMaxPathBytes) {
      return t.error_at("path",
                        fmt::format("is {} bytes; the limit is {}", path.size(), kMaxPathBytes));
    }
    model.path = resolve_path(path, source_name);
    SPW_ASSIGN_OR_RETURN(model.gpus_per_replica,
                         t.integer_or("gpus_per_replica", 1, 1, limits.max_gpus_per_pool));
    SPW_ASSIGN_OR_RETURN(model.min_replicas,
                         t.integer_or("min_replicas", 1, 0, limits.max_gpus_per_pool));
    SPW_ASSIGN_OR_RETURN(model.max_replicas,
                         t.integer_or("max_replicas", std::max<std::int64_t>(model.min_replicas, 1),
                                      1, limits.max_gpus_per_pool));
    if (model.min_replicas > model.max_replicas) {
      return t.error_at("min_replicas", fmt::format("{} exceeds max_replicas ({})",
                                                    model.min_replicas, model.max_replicas));
    }
    SPW_ASSIGN_OR_RETURN(model.context_tokens, t.integer_or("context_tokens", 4096, 1, 10'000'000));
    SPW_ASSIGN_OR_RETURN(model.slo_ttft_ms, t.number_or("slo_ttft_ms", 2000, 1e-3, 3.6e6));
    SPW_ASSIGN_OR_RETURN(model.slo_tpot_ms, t.number_or("slo_tpot_ms", 200, 1e-3, 3.6e6));
    SPW_TRY(check_model_fits(t, model, spec));
    spec.models.push_back(std::move(model));
  }
  return Status();
}

Status parse_tenants(const ConfigTable& root, const FleetLimits& limits, FleetSpec& spec) {
  SPW_ASSIGN_OR_RETURN(std::vector<ConfigTable> tenants,
                       read_tables(root, "tenants", false, limits.max_tenants, "tenant"));
  NameSet names("tenant");
  std::map<std::string, std::string, std::less<>> key_owner;  // stored hash -> tenant path
  for (const ConfigTable& t : tenants) {
    SPW_TRY(t.check_keys({"name", "api_keys", "priority", "tokens_per_minute",
                          "requests_per_minute", "models", "cache"}));
    TenantSpec tenant;
    SPW_ASSIGN_OR_RETURN(tenant.name, read_name(t, "name"));
    SPW_TRY(names.add(t, tenant.name));
    if (t.has("api_keys")) {
      SPW_ASSIGN_OR_RETURN(tenant.api_key_hashes, t.strings("api_keys"));
    }
    if (tenant.api_key_hashes.size() > limits.max_api_keys_per_tenant) {
      return t.error_at("api_keys",
                        fmt::format("{} keys exceed the limit of {} per tenant",
                                    tenant.api_key_hashes.size(), limits.max_api_keys_per_tenant));
    }
    for (std::size_t i = 0; i < tenant.api_key_hashes.size(); ++i) {
      const std::string& stored = tenant.api_key_hashes[i];
      if (!is_hashed_api_key(stored)) {
        // Never echo the value: it may be a plaintext key.
        return t.error_at("api_keys",
                          fmt::format("entry {} is not a salted hash "
                                      "(\"sha256$<32 hex salt>$<64 hex digest>\"); plaintext "
                                      "keys are not allowed in fleet files",
                                      i));
      }
      auto [it, inserted] = key_owner.emplace(stored, t.path());
      if (!inserted) {
        return t.error_at("api_keys", fmt::format("entry {} is also listed by {}", i, it->second));
      }
    }
    if (key_owner.size() > limits.max_api_keys) {
      return t.error_at("api_keys",
                        fmt::format("the fleet has more than {} API keys", limits.max_api_keys));
    }
    SPW_ASSIGN_OR_RETURN(std::string priority, t.string_or("priority", "standard"));
    const std::optional<Priority> parsed_priority = parse_priority(priority);
    if (!parsed_priority) {
      return t.error_at("priority",
                        fmt::format("'{}' is not one of interactive, standard, batch", priority));
    }
    tenant.priority = *parsed_priority;
    SPW_ASSIGN_OR_RETURN(tenant.tokens_per_minute,
                         t.integer_or("tokens_per_minute", 0, 0, 1'000'000'000'000));
    SPW_ASSIGN_OR_RETURN(tenant.requests_per_minute,
                         t.integer_or("requests_per_minute", 0, 0, 1'000'000'000));
    if (t.has("models")) {
      SPW_ASSIGN_OR_RETURN(std::vector<std::string> models, t.strings("models"));
      if (models.empty()) return t.error_at("models", "must name at least one model or \"*\"");
      if (models.size() > limits.max_models_per_tenant) {
        return t.error_at("models", fmt::format("{} entries exceed the limit of {}", models.size(),
                                                limits.max_models_per_tenant));
      }
      tenant.all_models = false;
      for (const std::string& m : models) {
        if (m == "*") {
          tenant.all_models = true;
        } else if (spec.find_model(m) == nullptr) {
          return t.error_at("models", fmt::format("model '{}' is not defined in [[models]]", m));
        }
      }
      if (!tenant.all_models) tenant.models = std::move(models);
    }
    SPW_ASSIGN_OR_RETURN(std::string cache, t.string_or("cache", "private"));
    if (cache == "private") {
      tenant.cache_namespace = "tenant/" + tenant.name;
    } else if (cache.starts_with("shared:")) {
      const std::string_view ns = std::string_view(cache).substr(7);
      if (ns.empty() || ns.size() > kMaxNameBytes ||
          !std::all_of(ns.begin(), ns.end(), is_lower_name_char)) {
        return t.error_at("cache", fmt::format("'{}': the shared namespace must be 1 to {} "
                                               "characters of a-z 0-9 -",
                                               cache, kMaxNameBytes));
      }
      tenant.shared_cache = true;
      tenant.cache_namespace = fmt::format("shared/{}", ns);
    } else {
      return t.error_at("cache",
                        fmt::format("'{}' is not \"private\" or \"shared:<namespace>\"", cache));
    }
    spec.tenants.push_back(std::move(tenant));
  }
  return Status();
}

Status parse_gateway(const ConfigTable& root, FleetSpec& spec) {
  if (!root.has("gateway")) return Status();
  SPW_ASSIGN_OR_RETURN(ConfigTable t, root.table("gateway"));
  SPW_TRY(t.check_keys({"routing"}));
  SPW_ASSIGN_OR_RETURN(spec.gateway.routing, t.string_or("routing", "spillway"));
  if (!is_routing_policy_name(spec.gateway.routing)) {
    return t.error_at("routing", fmt::format("'{}' is not one of {}", spec.gateway.routing,
                                             fmt::join(routing_policy_names(), ", ")));
  }
  return Status();
}

Result<FleetSpec> parse_document(const ConfigDocument& doc, const FleetLimits& limits) {
  const ConfigTable root = doc.root();
  SPW_TRY(root.check_keys({"providers", "models", "tenants", "gateway"}));
  FleetSpec spec;
  SPW_TRY(parse_providers(root, limits, spec));
  SPW_TRY(parse_models(root, limits, doc.source_name(), spec));
  SPW_TRY(parse_tenants(root, limits, spec));
  SPW_TRY(parse_gateway(root, spec));
  return spec;
}

}  // namespace

bool TenantSpec::allows_model(std::string_view model) const {
  return all_models || std::find(models.begin(), models.end(), model) != models.end();
}

std::vector<const PoolSpec*> FleetSpec::pools() const {
  std::vector<const PoolSpec*> out;
  for (const ProviderSpec& provider : providers)
    for (const RegionSpec& region : provider.regions)
      for (const PoolSpec& pool : region.pools)
        out.push_back(&pool);
  return out;
}

const PoolSpec* FleetSpec::find_pool(std::string_view name) const {
  for (const PoolSpec* pool : pools())
    if (pool->name == name) return pool;
  return nullptr;
}

const ModelSpec* FleetSpec::find_model(std::string_view name) const {
  for (const ModelSpec& model : models)
    if (model.name == name) return &model;
  return nullptr;
}

const TenantSpec* FleetSpec::find_tenant(std::string_view name) const {
  for (const TenantSpec& tenant : tenants)
    if (tenant.name == name) return &tenant;
  return nullptr;
}

std::int64_t FleetSpec::total_gpus() const {
  std::int64_t total = 0;
  for (const PoolSpec* pool : pools())
    total += pool->gpus;
  return total;
}

Result<FleetSpec> parse_fleet_spec(std::string_view toml, std::string source_name,
                                   const FleetLimits& limits) {
  SPW_ASSIGN_OR_RETURN(ConfigDocument doc, ConfigDocument::parse(toml, std::move(source_name)));
  return parse_document(doc, limits);
}

Result<FleetSpec> load_fleet_spec(const std::string& path, const FleetLimits& limits) {
  SPW_ASSIGN_OR_RETURN(ConfigDocument doc, ConfigDocument::load_file(path));
  return parse_document(doc, limits);
}

}  // namespace spillway::fleet
