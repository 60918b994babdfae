#include "gateway/tenant_quotas.h"

#include <algorithm>
#include <variant>

namespace spillway::gateway {
namespace {

std::int64_t output_bound(const std::optional<std::int32_t>& max_tokens,
                          std::int64_t context_tokens) {
  return max_tokens ? std::min<std::int64_t>(*max_tokens, context_tokens) : context_tokens;
}

}  // namespace

WorstCase worst_case(const openai::ChatCompletionRequest& request, std::int64_t context_tokens,
                     const TokenAllowance& allowance) {
  std::int64_t prompt = allowance.per_request;
  for (const openai::ChatMessage& m : request.messages) {
    prompt += static_cast<std::int64_t>(m.content.size()) + allowance.per_message;
    if (m.name) prompt += static_cast<std::int64_t>(m.name->size());
  }
  prompt = std::min(prompt, context_tokens);
  WorstCase out;
  out.prompt_tokens = prompt;
  out.total_tokens = prompt + std::int64_t{request.sampling.n} *
                                  output_bound(request.sampling.max_tokens, context_tokens);
  return out;
}

WorstCase worst_case(const openai::CompletionRequest& request, std::int64_t context_tokens,
                     const TokenAllowance& allowance) {
  WorstCase out;
  const std::int64_t output =
      std::int64_t{request.sampling.n} * output_bound(request.sampling.max_tokens, context_tokens);
  for (const openai::CompletionPrompt& p : request.prompts) {
    std::int64_t prompt = allowance.per_request;
    if (const auto* text = std::get_if<std::string>(&p)) {
      prompt += static_cast<std::int64_t>(text->size());
    } else {
      prompt += static_cast<std::int64_t>(std::get<std::vector<std::int32_t>>(p).size());
    }
    prompt = std::min(prompt, context_tokens);
    out.prompt_tokens += prompt;
    out.total_tokens += prompt + output;
  }
  return out;
}

TenantQuotas::TenantQuotas(const fleet::FleetSpec& spec, const Clock& clock,
                           const fleet::QuotaOptions& options) {
  for (const fleet::TenantSpec& t : spec.tenants) {
    fleet::QuotaLimits limits;
    limits.tokens_per_minute = t.tokens_per_minute;
    limits.requests_per_minute = t.requests_per_minute;
    quotas_.emplace(t.name, std::make_unique<fleet::TokenQuota>(limits, clock, options));
  }
}

fleet::TokenQuota* TenantQuotas::find(std::string_view tenant) const {
  const auto it = quotas_.find(tenant);
  return it == quotas_.end() ? nullptr : it->second.get();
}

}  // namespace spillway::gateway
