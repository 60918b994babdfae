// Request-target helpers (RFC 9112 §3.2 origin-form "/path?query"): splitting, percent-decoding
// and query parameters. Pure functions on untrusted input; failures are typed errors.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace spillway::net {

struct TargetParts {
  std::string_view path;   // Everything before '?', still percent-encoded.
  std::string_view query;  // Everything after the first '?', without it; may be empty.
};

// Splits an origin-form target. The views point into `target`.
[[nodiscard]] TargetParts split_target(std::string_view target);

// Decodes %XX escapes; with `plus_as_space`, '+' becomes ' ' (form/query encoding).
// Errors (kInvalidArgument): a '%' not followed by two hex digits, or a decoded NUL byte.
[[nodiscard]] Result<std::string> percent_decode(std::string_view text, bool plus_as_space);

// The decoded value of the first `name` parameter in a query string ("a=1&b=x%20y"), or
// nullopt when absent or not decodable. A parameter without '=' has the empty value.
[[nodiscard]] std::optional<std::string> query_param(std::string_view query, std::string_view name);

}  // namespace spillway::net
