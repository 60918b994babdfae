// The tenant mix of a simulated workload: which tenants send requests, in what shares, with
// which priority, model, cache namespace and shared prefixes.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

#include "fleet/fleet_spec.h"

#include "sim/workload.h"

namespace spillway::sim {

struct TenantMixOptions {
  // Every tenant's shared system prompt (TenantShare::system_prompt_tokens).
  std::int32_t system_prompt_tokens = 0;
  // Every tenant's mean turns per conversation (TenantShare::conversation_turns).
  double conversation_turns = 1;
};

// One share per (tenant, model it may call) of the fleet, in file order: every tenant gets the
// same total weight 1, split evenly over its models (all the fleet's models for models = ["*"]);
// priority and cache namespace come from the tenant's spec. A fleet without tenants gets one
// tenant "default" (standard priority, namespace "tenant/default") spread over all its models
// (model "" when the fleet has none).
[[nodiscard]] std::vector<TenantShare> default_tenant_mix(const fleet::FleetSpec& fleet,
                                                          const TenantMixOptions& options = {});

// kInvalidArgument naming the share and field: an empty mix or name, a weight that is not
// finite and > 0, system_prompt_tokens < 0, conversation_turns not finite and >= 1.
[[nodiscard]] Status validate_tenant_mix(const std::vector<TenantShare>& tenants);

}  // namespace spillway::sim
