#include "sim/tenant_mix.h"

#include <cmath>

namespace spillway::sim {

std::vector<TenantShare> default_tenant_mix(const fleet::FleetSpec& fleet,
                                            const TenantMixOptions& options) {
  std::vector<TenantShare> mix;
  auto add_tenant = [&](const std::string& name, fleet::Priority priority,
                        const std::string& cache_namespace,
                        const std::vector<std::string>& models) {
    for (const std::string& model : models) {
      TenantShare share;
      share.name = name;
      share.weight = 1.0 / static_cast<double>(models.size());
      share.priority = priority;
      share.model = model;
      share.cache_namespace = cache_namespace;
      share.system_prompt_tokens = options.system_prompt_tokens;
      share.conversation_turns = options.conversation_turns;
      mix.push_back(std::move(share));
    }
  };
  std::vector<std::string> all_models;
  for (const fleet::ModelSpec& model : fleet.models)
    all_models.push_back(model.name);
  for (const fleet::TenantSpec& tenant : fleet.tenants) {
    std::vector<std::string> models;
    for (const std::string& model : all_models) {
      if (tenant.allows_model(model)) models.push_back(model);
    }
    add_tenant(tenant.name, tenant.priority, tenant.cache_namespace, models);
  }
  if (mix.empty()) {
    if (all_models.empty()) all_models.emplace_back();
    add_tenant("default", fleet::Priority::kStandard, "tenant/default", all_models);
  }
  return mix;
}

Status validate_tenant_mix(const std::vector<TenantShare>& tenants) {
  if (tenants.empty()) return make_error(ErrorCode::kInvalidArgument, "tenants: empty mix");
  for (std::size_t i = 0; i < tenants.size(); ++i) {
    const TenantShare& t = tenants[i];
    if (t.name.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "tenants[{}].name: empty", i);
    }
    if (!std::isfinite(t.weight) || !(t.weight > 0)) {
      return make_error(ErrorCode::kInvalidArgument, "tenants[{}] ({}).weight: {} is not > 0", i,
                        t.name, t.weight);
    }
    if (t.system_prompt_tokens < 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "tenants[{}] ({}).system_prompt_tokens: {} < 0", i, t.name,
                        t.system_prompt_tokens);
    }
    if (!std::isfinite(t.conversation_turns) || !(t.conversation_turns >= 1)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "tenants[{}] ({}).conversation_turns: {} is not >= 1", i, t.name,
                        t.conversation_turns);
    }
  }
  return Status();
}

}  // namespace spillway::sim
