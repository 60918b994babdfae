#include "serve/jinja_operators.h"

#include <fmt/core.h>

#include <cmath>
#include <limits>

namespace spillway::serve::jinja {
namespace {

Error type_error(std::string message) {
  return Error(ErrorCode::kFailedPrecondition, std::move(message));
}

Error unsupported(Op op, const Value& a, const Value& b) {
  if (a.is_undefined()) return type_error(a.undefined_message());
  if (b.is_undefined()) return type_error(b.undefined_message());
  return type_error(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op_symbol(op),
                                type_name(a), type_name(b)));
}

bool is_integral(const Value& v) {
  return v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool;
}

std::int64_t integer_of(const Value& v) {
  return v.kind() == Value::Kind::kBool ? (v.as_bool() ? 1 : 0) : v.as_int();
}

double double_of(const Value& v) {
  return v.kind() == Value::Kind::kFloat ? v.as_float() : static_cast<double>(integer_of(v));
}

Error overflow() {
  return type_error("integer overflow");
}

Result<Value> integer_op(Op op, std::int64_t x, std::int64_t y) {
  std::int64_t r = 0;
  switch (op) {
    case Op::kAdd:
      if (__builtin_add_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case Op::kSub:
      if (__builtin_sub_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case Op::kMul:
      if (__builtin_mul_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case Op::kDiv:
      if (y == 0) return type_error("division by zero");
      return Value::number(static_cast<double>(x) / static_cast<double>(y));
    case Op::kFloorDiv:
    case Op::kMod: {
      if (y == 0) return type_error("integer division or modulo by zero");
      if (x == std::numeric_limits<std::int64_t>::min() && y == -1) {
        if (op == Op::kMod) return Value::integer(0);
        return overflow();
      }
      std::int64_t q = x / y;
      std::int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {  // Floor toward negative infinity.
        --q;
        m += y;
      }
      return Value::integer(op == Op::kFloorDiv ? q : m);
    }
    case Op::kPow: {
      if (y < 0) {
        if (x == 0) return type_error("0 cannot be raised to a negative power");
        return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
      }
      std::int64_t result = 1;
      std::int64_t base = x;
      for (std::int64_t e = y; e > 0; e >>= 1) {
        if ((e & 1) != 0 && __builtin_mul_overflow(result, base, &result)) return overflow();
        if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow();
      }
      return Value::integer(result);
    }
    default:
      return type_error("not an arithmetic operator");
  }
}

Result<Value> float_op(Op op, double x, double y) {
  switch (op) {
    case Op::kAdd:
      return Value::number(x + y);
    case Op::kSub:
      return Value::number(x - y);
    case Op::kMul:
      return Value::number(x * y);
    case Op::kDiv:
      if (y == 0) return type_error("float division by zero");
      return Value::number(x / y);
    case Op::kFloorDiv:
      if (y == 0) return type_error("float divmod()");
      return Value::number(std::floor(x / y));
    case Op::kMod: {
      if (y == 0) return type_error("float modulo");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::number(m);
    }
    case Op::kPow:
      if (x == 0 && y < 0) return type_error("0.0 cannot be raised to a negative power");
      return Value::number(std::pow(x, y));
    default:
      return type_error("not an arithmetic operator");
  }
}

Result<Value> repeat(const Value& seq, std::int64_t times, Budget& budget) {
  const std::size_t n = times > 0 ? static_cast<std::size_t>(times) : 0;
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (n > 0 && s.size() > budget.limits().max_output_bytes / n)
      return budget.string(budget.limits().max_output_bytes + 1).error();
    SPW_TRY(budget.string(s.size() * n));
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i)
      out += s;
    return Value::string(std::move(out));
  }
  const List& list = seq.as_list();
  if (list.iterator())
    return type_error("unsupported operand type(s) for *: 'generator' and 'int'");
  if (n > 0 && list.items.size() > budget.limits().max_collection_items / n)
    return budget.items(budget.limits().max_collection_items + 1).error();
  SPW_TRY(budget.items(list.items.size() * n));
  std::vector<Value> items;
  items.reserve(list.items.size() * n);
  for (std::size_t i = 0; i < n; ++i)
    items.insert(items.end(), list.items.begin(), list.items.end());
  return Value::list(std::move(items), list.kind);
}

}  // namespace

const char* op_symbol(Op op) {
  switch (op) {
    case Op::kAdd:
      return "+";
    case Op::kSub:
    case Op::kNeg:
      return "-";
    case Op::kPos:
      return "+";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
    case Op::kFloorDiv:
      return "//";
    case Op::kMod:
      return "%";
    case Op::kPow:
      return "**";
    case Op::kConcat:
      return "~";
    case Op::kAnd:
      return "and";
    case Op::kOr:
      return "or";
    case Op::kNot:
      return "not";
    case Op::kEq:
      return "==";
    case Op::kNe:
      return "!=";
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
    case Op::kIn:
      return "in";
    case Op::kNotIn:
      return "not in";
    case Op::kNone:
      break;
  }
  return "?";
}

Result<Value> binary_op(Op op, const Value& a, const Value& b, Budget& budget) {
  if (op == Op::kConcat) {
    std::string out;
    SPW_TRY(append_str(a, &out, budget.limits().max_output_bytes));
    SPW_TRY(append_str(b, &out, budget.limits().max_output_bytes));
    SPW_TRY(budget.string(out.size()));
    return Value::string(std::move(out));
  }
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return integer_op(op, integer_of(a), integer_of(b));
    return float_op(op, double_of(a), double_of(b));
  }
  if (op == Op::kAdd && a.is_string() && b.is_string()) {
    SPW_TRY(budget.string(a.as_string().size() + b.as_string().size()));
    return Value::string(a.as_string() + b.as_string());
  }
  if (op == Op::kAdd && a.is_list() && b.is_list() && a.as_list().kind == b.as_list().kind &&
      !a.as_list().iterator()) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    SPW_TRY(budget.items(x.size() + y.size()));
    std::vector<Value> items;
    items.reserve(x.size() + y.size());
    items.insert(items.end(), x.begin(), x.end());
    items.insert(items.end(), y.begin(), y.end());
    Value out = Value::list(std::move(items), a.as_list().kind);
    SPW_TRY(budget.nesting(out));
    return out;
  }
  if (op == Op::kMul) {
    if ((a.is_string() || a.is_list()) && is_integral(b)) return repeat(a, integer_of(b), budget);
    if ((b.is_string() || b.is_list()) && is_integral(a)) return repeat(b, integer_of(a), budget);
  }
  if (op == Op::kMod && a.is_string())
    return type_error("string formatting with % is not supported");
  return unsupported(op, a, b);
}

Result<Value> unary_op(Op op, const Value& a) {
  if (!a.is_number()) {
    if (a.is_undefined()) return type_error(a.undefined_message());
    return type_error(
        fmt::format("bad operand type for unary {}: '{}'", op_symbol(op), type_name(a)));
  }
  if (a.kind() == Value::Kind::kFloat)
    return Value::number(op == Op::kNeg ? -a.as_float() : a.as_float());
  const std::int64_t i = integer_of(a);
  if (op == Op::kPos) return Value::integer(i);
  if (i == std::numeric_limits<std::int64_t>::min()) return overflow();
  return Value::integer(-i);
}

Result<bool> compare_op(Op op, const Value& a, const Value& b) {
  switch (op) {
    case Op::kEq:
      return equals(a, b);
    case Op::kNe:
      return !equals(a, b);
    case Op::kLt:
      return less(a, b);
    case Op::kGt:
      return less(b, a);
    case Op::kLe: {
      SPW_ASSIGN_OR_RETURN(const bool lt, less(a, b));
      return lt || equals(a, b);
    }
    case Op::kGe: {
      SPW_ASSIGN_OR_RETURN(const bool gt, less(b, a));
      return gt || equals(a, b);
    }
    case Op::kIn:
      return contains(b, a);
    case Op::kNotIn: {
      SPW_ASSIGN_OR_RETURN(const bool in, contains(b, a));
      return !in;
    }
    default:
      return type_error("not a comparison operator");
  }
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        if (item.is_undefined()) return type_error(item.undefined_message());
        return type_error(
            fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      if (!container.as_list().error.empty()) return type_error(container.as_list().error);
      for (const Value& v : container.as_list().items)
        if (equals(v, item)) return true;
      return false;
    case Value::Kind::kDict:
      if (item.is_list() || item.is_dict() || item.kind() == Value::Kind::kNamespace)
        return type_error(fmt::format("unhashable type: '{}'", type_name(item)));
      return container.as_dict().find(item) != nullptr;
    default:
      return type_error(fmt::format("argument of type '{}' is not iterable", type_name(container)));
  }
}

}  // namespace spillway::serve::jinja
