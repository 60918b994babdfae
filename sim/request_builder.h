// Turns an arrival time and sampled lengths into a SimRequest: picks the tenant by weight,
// copies its priority, model and cache namespace, scales and clips the lengths, numbers the
// request, and assigns its shared prefix (system prompt or conversation, as sim/workload.h
// describes).
//
// Memory: O(tenants + open conversations), the latter bounded by max_open_conversations.
// Thread-safety: one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "core/status.h"

#include "sim/length_sampler.h"
#include "sim/sim_request.h"
#include "sim/workload.h"

namespace spillway::sim {

struct RequestBuilderOptions {
  double length_scale = 1;
  std::int32_t max_context = 0;  // 0 or >= 2.
  Nanos think_time{0};
  std::size_t max_open_conversations = 0;
  std::uint64_t seed = 1;
};

class RequestBuilder {
 public:
  // kInvalidArgument for a bad mix (validate_tenant_mix) or option.
  [[nodiscard]] static Result<RequestBuilder> create(std::vector<TenantShare> tenants,
                                                     const RequestBuilderOptions& options);

  // The next request. REQUIRES: arrival >= the previous call's arrival.
  [[nodiscard]] SimRequest build(Nanos arrival, LengthPair lengths);

  [[nodiscard]] std::size_t open_conversations() const { return open_count_; }

 private:
  struct OpenConversation {
    std::uint64_t id;
    Nanos eligible;       // The next turn may arrive from here on.
    std::int32_t prompt;  // The last turn's prompt and output.
    std::int32_t output;
  };

  RequestBuilder(std::vector<TenantShare> tenants, const RequestBuilderOptions& options);
  [[nodiscard]] std::size_t pick_tenant();

  std::vector<TenantShare> tenants_;
  std::vector<double> cumulative_;  // Prefix sums of the weights.
  // Per tenant, oldest first; allocated on a tenant's first conversation.
  std::vector<std::unique_ptr<std::deque<OpenConversation>>> open_;
  RequestBuilderOptions options_;
  SeededRandom rng_;
  std::uint64_t next_id_ = 1;
  std::uint64_t next_conversation_ = 1;
  std::size_t open_count_ = 0;
};

// Independent, reproducible random streams from one seed: mixes (seed, stream).
[[nodiscard]] std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);

}  // namespace spillway::sim
