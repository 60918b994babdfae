// The library a template calls into: attribute and item access, iteration, the filters and
// tests of Jinja 3.1 that chat templates use (with transformers' `tojson`), the Python string
// and dict methods they call (.strip(), .split(), .items(), ...), and the global functions
// (range, dict, namespace, raise_exception, strftime_now).
//
// Filters: abs attr batch capitalize center count d default dictsort e escape first float
//   forceescape indent int items join last length list lower map max min reject rejectattr
//   replace reverse round safe select selectattr sort string sum title tojson trim unique
//   upper wordcount.
// Tests: boolean callable defined divisibleby eq equalto escaped even false filter float ge
//   greaterthan gt in integer iterable le lessthan lower lt mapping ne none number odd sameas
//   sequence string test true undefined upper, and == != < <= > >=.
// str methods: capitalize count endswith find isalnum isalpha isdigit islower isspace isupper
//   join lower lstrip replace rfind rsplit rstrip split splitlines startswith strip title
//   upper. dict methods: get items keys values. list methods: count index.
// Filters that are lazy in Jinja (select, reject, selectattr, rejectattr, map, unique, batch,
// items, reverse) return ListKind::kIterator values, which are true even when empty and have
// no length, as Python generators.
//
// Everything charges the render's Budget for the strings and collections it builds.
// raise_exception fails with kInvalidArgument and the template's message; other failures are
// kFailedPrecondition (wrong argument types, ...) or kOutOfRange (limits), without position.
//
// Thread-safety: pure functions of their arguments and the Budget.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

#include "serve/jinja_budget.h"
#include "serve/jinja_value.h"

namespace spillway::serve::jinja {

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

[[nodiscard]] bool is_filter(std::string_view name);
[[nodiscard]] bool is_test(std::string_view name);

[[nodiscard]] Result<Value> apply_filter(std::string_view name, const Value& operand, CallArgs args,
                                         Budget& budget);
[[nodiscard]] Result<bool> apply_test(std::string_view name, const Value& operand,
                                      const CallArgs& args, Budget& budget);

// obj.name as Jinja resolves it: a method of a str or dict (bound to it), else a dict key or a
// namespace attribute, else Undefined. Fails only when `obj` itself is Undefined.
[[nodiscard]] Result<Value> get_attribute(const Value& obj, std::string_view name);
// obj[key]: a dict key, list or str index (negative from the end), else what obj.key gives
// for a string key, else Undefined.
[[nodiscard]] Result<Value> get_item(const Value& obj, const Value& key);
// obj[start:stop:step] of a list, tuple or str, with Python's slice semantics; null bounds
// are absent ones.
[[nodiscard]] Result<Value> get_slice(const Value& obj, const Value* start, const Value* stop,
                                      const Value* step, Budget& budget);
// The items a for loop visits: list items, dict keys, str characters; none for Undefined.
[[nodiscard]] Result<std::vector<Value>> iterate(const Value& v, Budget& budget);

// Calls a bound method (Callable::Kind::kMethod).
[[nodiscard]] Result<Value> call_method(const Value& receiver, std::string_view name, CallArgs args,
                                        Budget& budget);

// The global functions a render defines: range, dict, namespace, raise_exception, and
// strftime_now when a time is given (the template sees it as undefined otherwise).
[[nodiscard]] std::vector<std::string_view> global_function_names(bool with_clock);
// `unix_time_s` is the time strftime_now formats, in UTC.
[[nodiscard]] Result<Value> call_global(std::string_view name, CallArgs args, Budget& budget,
                                        std::optional<std::int64_t> unix_time_s);

}  // namespace spillway::serve::jinja
