#include "fleet/priority.h"

namespace spillway::fleet {

std::string_view priority_name(Priority priority) {
  switch (priority) {
    case Priority::kInteractive:
      return "interactive";
    case Priority::kStandard:
      return "standard";
    case Priority::kBatch:
      return "batch";
  }
  return "unknown";
}

std::optional<Priority> parse_priority(std::string_view name) {
  if (name == "interactive") return Priority::kInteractive;
  if (name == "standard") return Priority::kStandard;
  if (name == "batch") return Priority::kBatch;
  return std::nullopt;
}

}  // namespace spillway::fleet
