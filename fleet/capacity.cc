#include "fleet/capacity.h"

namespace spillway::fleet {

std::string_view capacity_kind_name(CapacityKind kind) {
  switch (kind) {
    case CapacityKind::kReserved:
      return "reserved";
    case CapacityKind::kOnDemand:
      return "on-demand";
    case CapacityKind::kSpot:
      return "spot";
  }
  return "unknown";
}

std::optional<CapacityKind> parse_capacity_kind(std::string_view name) {
  if (name == "reserved") return CapacityKind::kReserved;
  if (name == "on-demand") return CapacityKind::kOnDemand;
  if (name == "spot") return CapacityKind::kSpot;
  return std::nullopt;
}

}  // namespace spillway::fleet
