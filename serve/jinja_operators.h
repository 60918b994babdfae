// Jinja's operators with Python's semantics: int arithmetic that fails on overflow instead of
// wrapping (Python's ints are unbounded), / always giving a float, // and % flooring toward
// negative infinity, + and * on strings and lists, ~ concatenating the str() of both sides,
// and `in` as substring, element or key test.
//
// Errors: kFailedPrecondition for TypeErrors, division by zero and overflow; kOutOfRange when
// a string or list would exceed the Budget's limits.
//
// Thread-safety: pure functions of their arguments and the Budget.
#pragma once

#include <cstdint>

#include "core/status.h"

#include "serve/jinja_budget.h"
#include "serve/jinja_value.h"

namespace spillway::serve::jinja {

enum class Op : std::uint8_t {
  kNone,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kFloorDiv,
  kMod,
  kPow,
  kConcat,  // ~
  kAnd,
  kOr,
  kNot,
  kNeg,
  kPos,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIn,
  kNotIn,
};

// The operator's spelling in templates ("+", "not in", ...).
[[nodiscard]] const char* op_symbol(Op op);

// a op b for the arithmetic operators and ~.
[[nodiscard]] Result<Value> binary_op(Op op, const Value& a, const Value& b, Budget& budget);
// -a and +a.
[[nodiscard]] Result<Value> unary_op(Op op, const Value& a);
// a op b for == != < <= > >= in, not in.
[[nodiscard]] Result<bool> compare_op(Op op, const Value& a, const Value& b);
// item in container.
[[nodiscard]] Result<bool> contains(const Value& container, const Value& item);

}  // namespace spillway::serve::jinja
