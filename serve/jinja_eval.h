// Renders a parsed template: walks the syntax tree with Jinja's scoping rules and Python's
// semantics, writing the output text.
//
// Scoping, as in Jinja: the caller's variables and the global functions form the outermost
// scope; `set` at the top level of the template shadows them; each iteration of a for loop
// and each macro call has its own scope, so a `set` inside a loop body is not seen after the
// loop (templates use namespace() for that); `if` blocks open no scope. A macro sees its
// parameters and the template's top-level variables, not its caller's locals.
//
// Errors: see jinja_error.h. Every failure is an Error (never an exception or abort), and
// every resource is bounded by the JinjaLimits (see jinja_budget.h).
//
// Thread-safety: render() may run concurrently on one Program; each call has its own state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

#include "serve/jinja_ast.h"
#include "serve/jinja_limits.h"
#include "serve/jinja_value.h"

namespace spillway::serve::jinja {

using Variables = std::vector<std::pair<std::string, Value>>;

struct RenderOptions {
  JinjaLimits limits;
  // When set, the global strftime_now(format) is defined and formats this time (UTC, seconds
  // since the epoch); when not, templates see it as undefined and use their fallback.
  std::optional<std::int64_t> unix_time_s;
};

[[nodiscard]] Result<std::string> render(const Program& program, const Variables& variables,
                                         const RenderOptions& options);

}  // namespace spillway::serve::jinja
