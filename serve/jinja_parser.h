// Parses a Jinja template into a syntax tree, with Jinja 3.1's grammar and operator
// precedence (lowest first): `x if c else y`, or, and, not, comparisons (chained) and `in`,
// + -, ~, * / // %, **, unary - +, then postfix .attr [item] [a:b:c] (call) |filter `is test`.
//
// Statements: if/elif/else, for (with `else`, a filter `if`, tuple targets), set (to a name,
// names, or a namespace attribute; block form), macro, break, continue, filter blocks,
// print, and transformers' `generation` block. Not supported (a syntax error): extends,
// block, include, import, call blocks, recursive loops, `with`.
//
// Unknown filters and tests are syntax errors, as in Jinja, so a template that needs one this
// interpreter lacks fails when it is loaded rather than on some later request.
//
// Errors: kInvalidArgument "line:column: message"; kOutOfRange when the template exceeds
// limits.max_template_bytes, max_nesting_depth or max_syntax_height.
//
// Thread-safety: a pure function.
#pragma once

#include <string_view>

#include "core/status.h"

#include "serve/jinja_ast.h"
#include "serve/jinja_limits.h"

namespace spillway::serve::jinja {

[[nodiscard]] Result<Program> parse_template(std::string_view source, const JinjaLimits& limits);

}  // namespace spillway::serve::jinja
