// Request priority classes shared by tenants, admission and routing.
//
// Lower enum value = served first: interactive before standard before batch.
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace spillway::fleet {

enum class Priority : std::uint8_t { kInteractive = 0, kStandard = 1, kBatch = 2 };

inline constexpr int kNumPriorities = 3;

// "interactive", "standard", "batch".
[[nodiscard]] std::string_view priority_name(Priority priority);
// The inverse of priority_name; nullopt for any other string.
[[nodiscard]] std::optional<Priority> parse_priority(std::string_view name);

}  // namespace spillway::fleet
