// Per-tenant token and request budgets (fleet::TokenQuota, one per tenant of the fleet), and
// the worst case a request is charged before it runs.
//
// The worst case must never be below what the request can use, so that admitted requests can
// never exceed a tenant's budget: prompt tokens are bounded by the prompt's bytes (every token
// of a byte-fallback or byte-level tokenizer stands for at least one byte of text) plus a
// per-message and per-request allowance for the chat template's own tokens; output tokens by
// max_tokens (or the model's context when absent) for each of the n choices of each prompt.
// Both are capped by the model's context, which bounds each sequence on the replica.
//
// Thread-safety: TenantQuotas is immutable after construction (the quotas themselves are safe
// for concurrent use); the functions are pure.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"

#include "openai/chat_request.h"
#include "openai/completion_request.h"

#include "fleet/fleet_spec.h"
#include "fleet/quota.h"

namespace spillway::gateway {

struct TokenAllowance {
  std::int64_t per_message = 16;  // Template tokens around each chat message.
  std::int64_t per_request = 16;  // BOS, generation prompt, per completions prompt.
};

struct WorstCase {
  std::int64_t prompt_tokens = 0;  // Upper bound of the prompt tokens (all prompts).
  std::int64_t total_tokens = 0;   // Prompt bound + every choice's output bound.
};

[[nodiscard]] WorstCase worst_case(const openai::ChatCompletionRequest& request,
                                   std::int64_t context_tokens, const TokenAllowance& allowance);
[[nodiscard]] WorstCase worst_case(const openai::CompletionRequest& request,
                                   std::int64_t context_tokens, const TokenAllowance& allowance);

class TenantQuotas {
 public:
  // REQUIRES: `clock` outlives this object.
  TenantQuotas(const fleet::FleetSpec& spec, const Clock& clock,
               const fleet::QuotaOptions& options = {});

  // The tenant's quota, or nullptr for a tenant not in the fleet.
  [[nodiscard]] fleet::TokenQuota* find(std::string_view tenant) const;

 private:
  std::map<std::string, std::unique_ptr<fleet::TokenQuota>, std::less<>> quotas_;
};

}  // namespace spillway::gateway
