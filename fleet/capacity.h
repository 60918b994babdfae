// How a pool's GPUs are bought: the capacity kind drives placement order and routing cost.
//
// reserved: paid for whether used or not, so it is filled first. on-demand: billed per use.
// spot: cheapest but may be taken back by the provider at any time.
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace spillway::fleet {

enum class CapacityKind : std::uint8_t { kReserved = 0, kOnDemand = 1, kSpot = 2 };

// "reserved", "on-demand", "spot".
[[nodiscard]] std::string_view capacity_kind_name(CapacityKind kind);
// The inverse of capacity_kind_name; nullopt for any other string.
[[nodiscard]] std::optional<CapacityKind> parse_capacity_kind(std::string_view name);

}  // namespace spillway::fleet
