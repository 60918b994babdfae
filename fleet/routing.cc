#include "fleet/routing.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "fleet/routing_internal.h"

namespace spillway::fleet {

namespace {

constexpr std::array<std::string_view, 3> kPolicyNames = {"round-robin", "least-loaded",
                                                          "spillway"};

}  // namespace

namespace internal {

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t hash64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return mix64(h);
}

std::vector<const ReplicaView*> eligible_replicas(const RouteRequest& request,
                                                  std::span<const ReplicaView> replicas) {
  std::vector<const ReplicaView*> out;
  for (const ReplicaView& r : replicas) {
    if (r.state != ReplicaState::kReady || r.model != request.model) continue;
    if (std::find(request.exclude.begin(), request.exclude.end(), r.id) != request.exclude.end()) {
      continue;
    }
    out.push_back(&r);
  }
  std::sort(out.begin(), out.end(),
            [](const ReplicaView* a, const ReplicaView* b) { return a->id < b->id; });
  return out;
}

Error no_eligible_replica(const RouteRequest& request) {
  if (request.exclude.empty()) {
    return make_error(ErrorCode::kUnavailable, "no ready replica of model '{}'", request.model);
  }
  return make_error(ErrorCode::kUnavailable,
                    "no ready replica of model '{}' besides the {} already tried", request.model,
                    request.exclude.size());
}

}  // namespace internal

std::uint64_t prefix_key_of(std::string_view prompt, std::size_t max_bytes) {
  return internal::hash64(prompt.substr(0, std::min(max_bytes, prompt.size())));
}

Status RoutingOptions::validate() const {
  struct Field {
    const char* name;
    double value;
  };
  for (const Field& f :
       {Field{"spill_penalty", spill_penalty}, Field{"on_demand_penalty", on_demand_penalty},
        Field{"spot_penalty", spot_penalty}, Field{"cost_weight", cost_weight},
        Field{"rtt_weight", rtt_weight}, Field{"static_cost_slack", static_cost_slack},
        Field{"running_weight", running_weight}, Field{"kv_weight", kv_weight}}) {
    if (!std::isfinite(f.value) || f.value < 0) {
      return make_error(ErrorCode::kInvalidArgument, "routing.{}: {} is not a finite value >= 0",
                        f.name, f.value);
    }
  }
  if (saturation_waiting <= 0) {
    return make_error(ErrorCode::kInvalidArgument, "routing.saturation_waiting: {} is not >= 1",
                      saturation_waiting);
  }
  if (!(saturation_kv_usage > 0 && saturation_kv_usage <= 1)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "routing.saturation_kv_usage: {} is not in (0, 1]", saturation_kv_usage);
  }
  return Status();
}

std::span<const std::string_view> routing_policy_names() {
  return kPolicyNames;
}

bool is_routing_policy_name(std::string_view name) {
  return std::find(kPolicyNames.begin(), kPolicyNames.end(), name) != kPolicyNames.end();
}

Result<std::unique_ptr<RoutingPolicy>> make_routing_policy(std::string_view name,
                                                           const RoutingOptions& options) {
  if (name == "round-robin") return internal::make_round_robin_policy();
  if (name == "least-loaded") return internal::make_least_loaded_policy();
  if (name == "spillway") {
    SPW_TRY(options.validate());
    return internal::make_spillway_policy(options);
  }
  return make_error(ErrorCode::kInvalidArgument, "unknown routing policy '{}' (known: {})", name,
                    fmt::join(kPolicyNames, ", "));
}

}  // namespace spillway::fleet
