// Checks that the filters and tests a template names exist, with Jinja's rule: an unknown
// filter or test is a syntax error unless it sits in a "soft" place, the condition or a
// branch of an if statement or an inline if, where it fails only if evaluated; templates guard
// features some environments lack that way. Loop bodies, macros, block sets and filter blocks
// are not soft, even inside an if.
//
// Errors: kInvalidArgument "line:column: no filter named 'x'" (or test).
//
// Thread-safety: a pure function.
#pragma once

#include "core/status.h"

#include "serve/jinja_ast.h"

namespace spillway::serve::jinja {

[[nodiscard]] Status check_filter_and_test_names(const Program& program);

}  // namespace spillway::serve::jinja
