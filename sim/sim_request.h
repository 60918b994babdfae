// One simulated request as the simulator's parts see it: when it arrives, who sends it, how
// long its prompt is (and how much of it is a prefix shared with other requests), and how many
// tokens it generates.
//
// Prefix sharing is described, not spelled out token by token: the first `prefix_tokens` of
// the prompt are the same for every request with the same (cache_namespace, prefix_id) — a
// tenant's system prompt, or a conversation's earlier turns — and the rest is unique to the
// request. prefix_id == 0 means no shared prefix.
//
// Thread-safety: plain value.
#pragma once

#include <cstdint>
#include <string>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/priority.h"

namespace spillway::sim {

using RequestId = std::uint64_t;

struct SimRequest {
  RequestId id = 0;  // Unique in a run; also the arrival order.
  Nanos arrival{0};  // Since the start of the simulation.
  std::string tenant;
  std::string model;
  fleet::Priority priority = fleet::Priority::kStandard;
  std::string cache_namespace;
  std::int32_t prompt_tokens = 1;  // >= 1.
  std::int32_t output_tokens = 1;  // >= 1: generated exactly (no early EOS in the simulator).
  std::uint64_t prefix_id = 0;     // 0 = no shared prefix.
  std::int32_t prefix_tokens = 0;  // In [0, prompt_tokens]; 0 when prefix_id == 0.
};

// kInvalidArgument naming the field for a length < 1, a negative arrival or a prefix that does
// not fit the prompt.
[[nodiscard]] Status validate_sim_request(const SimRequest& request);

}  // namespace spillway::sim
