// Spillway's own response field, between a replica and the gateway: a complete (non-streaming)
// answer of `spillway serve` carries its usage in a header as well as in the body,
//   X-Spillway-Usage: prompt_tokens=7 completion_tokens=3
// so that the gateway settles the tenant's quota and counts tokens without reading the JSON
// body. The numbers are the body's "usage" ones. An answer without the field, or with one
// that does not parse, is read from the body instead (other OpenAI-compatible upstreams).
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "openai/response_types.h"

namespace spillway::openai {

inline constexpr std::string_view kUsageHeader = "X-Spillway-Usage";

// The field's value for `usage` (negative counts are written as 0).
[[nodiscard]] std::string render_usage_header(const Usage& usage);

// The counts of a value written by render_usage_header, exactly in that form (decimal digits,
// at most 18 of them per count); nullopt for anything else.
[[nodiscard]] std::optional<Usage> parse_usage_header(std::string_view value);

}  // namespace spillway::openai
