#include "cli/fleet_models.h"

#include <optional>

#include "engine/gguf.h"
#include "engine/kv_cache.h"
#include "engine/model_config.h"

namespace spillway::cli {

namespace {

Result<engine::ModelConfig> read_model_config(const std::string& path) {
  SPW_ASSIGN_OR_RETURN(engine::GgufFile file, engine::GgufFile::open(path));
  return engine::model_config_from_gguf(file);
}

}  // namespace

Status check_local_pool_models(const fleet::FleetSpec& spec,
                               const std::map<std::string, std::string, std::less<>>& model_paths) {
  for (const fleet::ModelSpec& model : spec.models) {
    const auto override_path = model_paths.find(model.name);
    const std::string& path =
        override_path != model_paths.end() ? override_path->second : model.path;
    std::optional<Result<engine::ModelConfig>> config;  // Read at the first pool that needs it.
    for (const fleet::PoolSpec* pool : spec.pools()) {
      if (!pool->local || !pool->accepts_inference() || pool->local->kv_type == "f16") continue;
      SPW_ASSIGN_OR_RETURN(const engine::KvType type, engine::parse_kv_type(pool->local->kv_type));
      if (!config) config.emplace(read_model_config(path));
      if (!config->ok()) break;  // Not a GGUF file this can read: its replicas will say so.
      if (Status s = engine::check_kv_type(**config, type); !s.ok()) {
        return make_error(ErrorCode::kInvalidArgument,
                          "pool '{}' keeps its KV cache in {}, which model '{}' cannot use: {}",
                          pool->name, pool->local->kv_type, model.name, s.error().message());
      }
    }
  }
  return Status();
}

}  // namespace spillway::cli
