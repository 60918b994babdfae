#include "fleet/routing.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

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

namespace {

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

std::uint64_t fnv_step(std::uint64_t h, char c) {
  return (h ^ static_cast<unsigned char>(c)) * kFnvPrime;
}

// Length of the common prefix of a[0, n) and b[0, n), eight bytes at a time.
std::size_t common_prefix(const char* a, const char* b, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t x = 0;
    std::uint64_t y = 0;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) break;
  }
  while (i < n && a[i] == b[i])
    ++i;
  return i;
}

// a == b, inline: the per-candidate model check of every request (a libc memcmp call per
// replica costs more than the comparison of a short name).
bool same_bytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && common_prefix(a.data(), b.data(), a.size()) == a.size();
}

}  // namespace

std::uint64_t hash64(std::string_view bytes) {
  std::uint64_t h = kFnvOffset;
  for (char c : bytes)
    h = fnv_step(h, c);
  return mix64(h);
}

std::uint64_t PrefixHasher::hash64(std::string_view bytes) {
  const std::size_t kept = std::min(bytes.size(), kMaxBytes);
  Slot* slot = nullptr;
  std::size_t shared = 0;
  for (std::size_t i = 0; i < used_; ++i) {
    const std::size_t n =
        common_prefix(slots_[i].bytes.data(), bytes.data(), std::min(slots_[i].size, kept));
    if (slot == nullptr || n > shared) {
      slot = &slots_[i];
      shared = n;
    }
  }
  if (slot == nullptr || shared == 0) {
    // Nothing shared: take a free slot, else the next in turn.
    slot = &slots_[used_ < kSlots ? used_++ : next_victim_++ % kSlots];
    slot->states[0] = kFnvOffset;
    shared = 0;
  }
  // slot->states[0, shared] hold the state after each byte of the shared prefix.
  std::uint64_t h = slot->states[shared];
  for (std::size_t i = shared; i < kept; ++i) {
    h = fnv_step(h, bytes[i]);
    slot->bytes[i] = bytes[i];
    slot->states[i + 1] = h;
  }
  slot->size = kept;
  for (std::size_t i = kept; i < bytes.size(); ++i)
    h = fnv_step(h, bytes[i]);
  return mix64(h);
}

std::vector<const ReplicaView*> eligible_replicas(const RouteRequest& request,
                                                  std::span<const ReplicaView> replicas) {
  std::vector<const ReplicaView*> out;
  out.reserve(replicas.size());
  for (const ReplicaView& r : replicas) {
    if (r.state != ReplicaState::kReady || !same_bytes(r.model, request.model)) continue;
    if (std::find(request.exclude.begin(), request.exclude.end(), r.id) != request.exclude.end()) {
      continue;
    }
    out.push_back(&r);
  }
  return out;
}

void sort_by_id(std::vector<const ReplicaView*>& replicas) {
  std::sort(replicas.begin(), replicas.end(),
            [](const ReplicaView* a, const ReplicaView* b) { return a->id < b->id; });
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
