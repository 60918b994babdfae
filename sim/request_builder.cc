#include "sim/request_builder.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "sim/tenant_mix.h"

namespace spillway::sim {
namespace {

constexpr std::uint64_t kConversationBit = std::uint64_t{1} << 63;

}  // namespace

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
  // splitmix64 finalizer over both words: nearby (seed, stream) pairs give unrelated seeds.
  std::uint64_t z = seed ^ (stream * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Result<RequestBuilder> RequestBuilder::create(std::vector<TenantShare> tenants,
                                              const RequestBuilderOptions& options) {
  SPW_TRY(validate_tenant_mix(tenants));
  if (!(options.length_scale > 0) || options.length_scale > 1e6) {
    return make_error(ErrorCode::kInvalidArgument, "length: {} outside (0, 1e6]",
                      options.length_scale);
  }
  if (options.max_context < 0 || options.max_context == 1) {
    return make_error(ErrorCode::kInvalidArgument, "max_context: {} (need 0 or >= 2)",
                      options.max_context);
  }
  if (options.think_time < Nanos{0}) {
    return make_error(ErrorCode::kInvalidArgument, "think_time: negative");
  }
  return RequestBuilder(std::move(tenants), options);
}

RequestBuilder::RequestBuilder(std::vector<TenantShare> tenants,
                               const RequestBuilderOptions& options)
    : tenants_(std::move(tenants)), options_(options), rng_(options.seed) {
  double sum = 0;
  cumulative_.reserve(tenants_.size());
  for (const TenantShare& t : tenants_) {
    sum += t.weight;
    cumulative_.push_back(sum);
  }
  open_.resize(tenants_.size());
}

std::size_t RequestBuilder::pick_tenant() {
  if (tenants_.size() == 1) return 0;
  const double u = rng_.uniform() * cumulative_.back();
  const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
  return std::min(static_cast<std::size_t>(it - cumulative_.begin()), tenants_.size() - 1);
}

SimRequest RequestBuilder::build(Nanos arrival, LengthPair lengths) {
  const std::size_t index = pick_tenant();
  const TenantShare& tenant = tenants_[index];
  SimRequest request;
  request.id = next_id_++;
  request.arrival = arrival;
  request.tenant = tenant.name;
  request.model = tenant.model;
  request.priority = tenant.priority;
  request.cache_namespace = tenant.cache_namespace;
  lengths = scale_lengths(lengths, options_.length_scale);

  if (tenant.conversation_turns <= 1) {
    lengths = clip_lengths(lengths, options_.max_context);
    request.prompt_tokens = lengths.prompt;
    request.output_tokens = lengths.output;
    if (tenant.system_prompt_tokens > 0) {
      request.prefix_id = index + 1;
      request.prefix_tokens = std::min(tenant.system_prompt_tokens, lengths.prompt);
    }
    return request;
  }

  // A conversation turn: continue the oldest ready conversation of this tenant, if any.
  auto& open = open_[index];
  std::uint64_t conversation = 0;
  LengthPair turn = clip_lengths(lengths, options_.max_context);
  if (open != nullptr && !open->empty() && open->front().eligible <= arrival) {
    const OpenConversation previous = open->front();
    open->pop_front();
    --open_count_;
    // The prompt repeats the conversation so far and adds at least one token.
    const std::int64_t history = std::int64_t{previous.prompt} + previous.output;
    LengthPair grown = lengths;
    grown.prompt = static_cast<std::int32_t>(
        std::min<std::int64_t>(std::max<std::int64_t>(lengths.prompt, history + 1),
                               std::numeric_limits<std::int32_t>::max()));
    grown = clip_lengths(grown, options_.max_context);
    if (grown.prompt > history) {  // Else the history no longer fits: the conversation ends.
      conversation = previous.id;
      turn = grown;
    }
  }
  if (conversation == 0) conversation = kConversationBit | next_conversation_++;
  request.prompt_tokens = turn.prompt;
  request.output_tokens = turn.output;
  request.prefix_id = conversation;
  request.prefix_tokens = turn.prompt;  // The next turn starts with all of it.

  const double continue_probability = 1 - 1 / tenant.conversation_turns;
  if (rng_.uniform() < continue_probability && open_count_ < options_.max_open_conversations) {
    if (open == nullptr) open = std::make_unique<std::deque<OpenConversation>>();
    open->push_back({conversation, arrival + options_.think_time, turn.prompt, turn.output});
    ++open_count_;
  }
  return request;
}

}  // namespace spillway::sim
