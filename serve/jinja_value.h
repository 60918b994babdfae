// The values a Jinja template computes with, and the Python object protocol the interpreter
// needs on them: truthiness, ==, <, str(), repr() and json.dumps(). Jinja runs on Python, and
// chat templates depend on Python's behaviour (str(True) is "True", 7 / 2 is 3.5, dicts keep
// insertion order), so these functions follow Python, not JavaScript or C++.
//
// Lists and dicts are immutable once built and shared by reference, so copying a Value is
// cheap; strings are copied. The one mutable kind is Namespace (Jinja's namespace()), which
// `{% set ns.attr = ... %}` changes in place. A namespace may not hold another namespace, at
// any depth, so values never form reference cycles.
//
// Undefined is Jinja's default Undefined: falsy, prints as "", iterates as empty, and fails
// with its hint (e.g. "'foo' is undefined") when used in arithmetic, called or subscripted.
//
// Errors: kFailedPrecondition for Python TypeErrors and the like, kOutOfRange when a result
// would exceed a size limit. Messages carry no position; the evaluator adds it.
//
// Thread-safety: a Value that holds no Namespace may be read from several threads; values are
// created and used by one render, on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace spillway::serve::jinja {

struct List;
struct Dict;
struct Namespace;
struct Callable;
struct Stmt;

// What kind of Python sequence a List stands for. kIterator is what Jinja's lazy filters
// (select, map, unique, ...) return: iterable, always true, without len() or indexing.
enum class ListKind : std::uint8_t { kList, kTuple, kIterator };

class Value {
 public:
  enum class Kind : std::uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,  // Also tuples and iterators (see ListKind).
    kDict,
    kNamespace,
    kCallable,
  };

  Value() = default;  // Undefined, without a hint.

  [[nodiscard]] static Value undefined(std::string hint);
  [[nodiscard]] static Value none();
  [[nodiscard]] static Value boolean(bool b);
  [[nodiscard]] static Value integer(std::int64_t i);
  [[nodiscard]] static Value number(double d);
  [[nodiscard]] static Value string(std::string s);
  // Depth and size are the caller's to check (see JinjaLimits).
  [[nodiscard]] static Value list(std::vector<Value> items, ListKind kind = ListKind::kList);
  // An iterator that fails with `error` when consumed: a lazy filter given bad input, which
  // in Jinja fails only if its result is iterated.
  [[nodiscard]] static Value failed_iterator(std::string error);
  [[nodiscard]] static Value dict(std::vector<std::pair<Value, Value>> items);
  [[nodiscard]] static Value namespace_object(std::shared_ptr<Namespace> ns);
  [[nodiscard]] static Value callable(Callable c);

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool is_undefined() const { return kind_ == Kind::kUndefined; }
  [[nodiscard]] bool is_none() const { return kind_ == Kind::kNone; }
  [[nodiscard]] bool is_string() const { return kind_ == Kind::kString; }
  [[nodiscard]] bool is_list() const { return kind_ == Kind::kList; }
  [[nodiscard]] bool is_dict() const { return kind_ == Kind::kDict; }
  // int, float or bool (Python's bool is an int).
  [[nodiscard]] bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }

  // REQUIRES: the matching kind.
  [[nodiscard]] bool as_bool() const { return std::get<bool>(data_); }
  [[nodiscard]] std::int64_t as_int() const { return std::get<std::int64_t>(data_); }
  [[nodiscard]] double as_float() const { return std::get<double>(data_); }
  [[nodiscard]] const std::string& as_string() const { return std::get<std::string>(data_); }
  [[nodiscard]] const List& as_list() const;
  [[nodiscard]] const Dict& as_dict() const;
  [[nodiscard]] Namespace& as_namespace() const;
  [[nodiscard]] const Callable& as_callable() const;
  // Why the value is undefined, for the error when it is used. REQUIRES: is_undefined().
  [[nodiscard]] std::string undefined_message() const;

  // Nesting of lists, dicts and namespaces: 0 for everything else.
  [[nodiscard]] std::size_t depth() const;

 private:
  Kind kind_ = Kind::kUndefined;
  std::variant<std::monostate, bool, std::int64_t, double, std::string, std::shared_ptr<const List>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>,
               std::shared_ptr<const Callable>>
      data_;
};

struct List {
  std::vector<Value> items;
  ListKind kind = ListKind::kList;
  std::size_t depth = 1;
  std::string error;  // kIterator: why consuming it fails (see Value::failed_iterator).

  [[nodiscard]] bool tuple() const { return kind == ListKind::kTuple; }
  [[nodiscard]] bool iterator() const { return kind == ListKind::kIterator; }
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;  // Insertion order, keys unique.
  std::size_t depth = 1;

  [[nodiscard]] const Value* find(const Value& key) const;
  [[nodiscard]] const Value* find(std::string_view key) const;
};

struct Namespace {
  std::vector<std::pair<std::string, Value>> attributes;

  [[nodiscard]] const Value* find(std::string_view name) const;
  void set(std::string_view name, Value value);
  [[nodiscard]] std::size_t depth() const;
};

// A function value: a global (range, namespace, ...), a method bound to its receiver
// ("a b".split), a macro, or loop.cycle.
struct Callable {
  enum class Kind : std::uint8_t { kGlobal, kMethod, kMacro, kLoopCycle };
  Kind kind = Kind::kGlobal;
  std::string name;
  Value receiver;               // kMethod: the object; kLoopCycle: loop.index0.
  const Stmt* macro = nullptr;  // kMacro: its definition, owned by the template.
};

// Python's type name: 'str', 'int', 'list', 'NoneType', ...
[[nodiscard]] std::string_view type_name(const Value& v);
[[nodiscard]] bool truthy(const Value& v);
// True when `v` holds a namespace at any depth.
[[nodiscard]] bool contains_namespace(const Value& v);

// Python ==.
[[nodiscard]] bool equals(const Value& a, const Value& b);
// Python <; a TypeError for values Python does not order (str < int, dict < dict, ...).
[[nodiscard]] Result<bool> less(const Value& a, const Value& b);

// str(v) appended to `out`; kOutOfRange once `out` would exceed `max_bytes`.
[[nodiscard]] Status append_str(const Value& v, std::string* out, std::size_t max_bytes);
[[nodiscard]] Result<std::string> to_str(const Value& v, std::size_t max_bytes);

struct JsonOptions {
  std::optional<std::string> indent;  // Pretty-print with this unit of indentation.
  std::string item_separator = ", ";  // json.dumps defaults; "," when indenting.
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// json.dumps(v, ...) as transformers' `tojson` filter calls it.
[[nodiscard]] Result<std::string> to_json(const Value& v, const JsonOptions& options,
                                          std::size_t max_bytes);

}  // namespace spillway::serve::jinja
