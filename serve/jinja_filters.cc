// Jinja's filters and tests.
#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <limits>

#include "serve/jinja_args.h"
#include "serve/jinja_builtins.h"
#include "serve/jinja_operators.h"
#include "serve/jinja_strings.h"

namespace spillway::serve::jinja {
namespace {

constexpr std::string_view kFilters[] = {
    "abs",     "attr",     "batch",  "capitalize", "center",     "count",      "d",
    "default", "dictsort", "e",      "escape",     "first",      "float",      "forceescape",
    "indent",  "int",      "items",  "join",       "last",       "length",     "list",
    "lower",   "map",      "max",    "min",        "reject",     "rejectattr", "replace",
    "reverse", "round",    "safe",   "select",     "selectattr", "sort",       "string",
    "sum",     "title",    "tojson", "trim",       "unique",     "upper",      "wordcount"};

constexpr std::string_view kTests[] = {
    "boolean", "callable", "defined",  "divisibleby", "eq",       "equalto",     "escaped",
    "even",    "false",    "filter",   "float",       "ge",       "greaterthan", "gt",
    "in",      "integer",  "iterable", "le",          "lessthan", "lower",       "lt",
    "mapping", "ne",       "none",     "number",      "odd",      "sameas",      "sequence",
    "string",  "test",     "true",     "undefined",   "upper",    "==",          "!=",
    "<",       "<=",       ">",        ">="};

std::size_t max_bytes(const Budget& budget) {
  return budget.limits().max_output_bytes;
}

Result<std::string> str_of(const Value& v, Budget& budget) {
  SPW_ASSIGN_OR_RETURN(std::string s, to_str(v, max_bytes(budget)));
  SPW_TRY(budget.string(s.size()));
  return s;
}

Result<Value> make_list(std::vector<Value> items, Budget& budget, ListKind kind = ListKind::kList) {
  SPW_TRY(budget.items(items.size()));
  Value out = Value::list(std::move(items), kind);
  SPW_TRY(budget.nesting(out));
  return out;
}

// Jinja's attribute getter for filters: "a.b.0" looks up a, then b, then item 0.
Result<Value> attribute_path(const Value& item, const std::string& path) {
  Value current = item;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    Value key = Value::string(part);
    if (digits && part.size() < 18) key = Value::integer(std::stoll(part));
    SPW_ASSIGN_OR_RETURN(current, get_item(current, key));
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

// Sort and comparison key: strings lower-cased unless case-sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(python_lower(v.as_string()));
  return v;
}

Result<std::vector<Value>> keyed(const std::vector<Value>& items, const Value& attribute,
                                 bool case_sensitive) {
  std::vector<Value> keys;
  keys.reserve(items.size());
  for (const Value& item : items) {
    Value key = item;
    if (!attribute.is_none()) {
      SPW_ASSIGN_OR_RETURN(std::string path, to_str(attribute, 1024));
      SPW_ASSIGN_OR_RETURN(key, attribute_path(item, path));
    }
    keys.push_back(sort_key(key, case_sensitive));
  }
  return keys;
}

// A stable sort of `order` (indices into keys) that reports the first comparison error.
Status sort_indices(std::vector<std::size_t>* order, const std::vector<Value>& keys, bool reverse) {
  Status failed;
  std::stable_sort(order->begin(), order->end(), [&](std::size_t a, std::size_t b) {
    auto r = reverse ? less(keys[b], keys[a]) : less(keys[a], keys[b]);
    if (!r.ok()) {
      if (failed.ok()) failed = r.status();
      return false;
    }
    return *r;
  });
  return failed;
}

Result<bool> bool_arg(ArgReader& r, std::string_view name, bool fallback) {
  SPW_ASSIGN_OR_RETURN(Value v, r.optional(name, Value::boolean(fallback)));
  return truthy(v);
}

Result<Value> filter_length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value::integer(0);
    case Value::Kind::kString:
      return Value::integer(static_cast<std::int64_t>(utf8_length(v.as_string())));
    case Value::Kind::kList:
      if (v.as_list().iterator()) return type_error("object of type 'generator' has no len()");
      return Value::integer(static_cast<std::int64_t>(v.as_list().items.size()));
    case Value::Kind::kDict:
      return Value::integer(static_cast<std::int64_t>(v.as_dict().items.size()));
    default:
      return type_error(fmt::format("object of type '{}' has no len()", type_name(v)));
  }
}

// Python float(str): surrounding whitespace, underscores between digits, inf and nan.
std::optional<double> parse_python_float(const std::string& text) {
  std::string s(python_strip(text, true, true));
  std::string clean;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() &&
        std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 1])))
      continue;
    clean.push_back(s[i]);
  }
  if (clean.empty()) return std::nullopt;
  std::string lower = python_lower(clean);
  std::string_view body = lower;
  double sign = 1;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    sign = body[0] == '-' ? -1 : 1;
    body.remove_prefix(1);
  }
  if (body == "inf" || body == "infinity") return sign * std::numeric_limits<double>::infinity();
  if (body == "nan") return std::numeric_limits<double>::quiet_NaN();
  for (const char c : body) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' ||
          c == '-'))
      return std::nullopt;
  }
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

// Python int(str, base): whitespace, sign, underscores, and a 0x/0o/0b prefix in its base.
std::optional<std::int64_t> parse_python_int(const std::string& text, std::int64_t base) {
  std::string_view s = python_strip(text, true, true);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.size() > 2 && s[0] == '0') {
    const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(s[1])));
    if ((p == 'x' && base == 16) || (p == 'o' && base == 8) || (p == 'b' && base == 2))
      s.remove_prefix(2);
  }
  if (s.empty() || base < 2 || base > 36) return std::nullopt;
  std::int64_t value = 0;
  bool digit_before = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_' && digit_before && i + 1 < s.size() && s[i + 1] != '_') continue;
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'a' && c <= 'z') d = c - 'a' + 10;
    if (c >= 'A' && c <= 'Z') d = c - 'A' + 10;
    if (d < 0 || d >= base) return std::nullopt;
    if (__builtin_mul_overflow(value, base, &value) ||
        __builtin_add_overflow(value, negative ? -d : d, &value))
      return std::nullopt;
    digit_before = true;
  }
  return value;
}

Result<Value> filter_int(const Value& v, CallArgs& args) {
  ArgReader r("int", args);
  SPW_ASSIGN_OR_RETURN(Value fallback, r.optional("default", Value::integer(0)));
  SPW_ASSIGN_OR_RETURN(Value base_v, r.optional("base", Value::integer(10)));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::int64_t base, int_arg("int", "base", base_v));
  if (v.is_undefined()) return type_error(v.undefined_message());  // Undefined.__int__ fails.
  const auto from_double = [&](double d) -> Value {
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value::integer(static_cast<std::int64_t>(d));
  };
  switch (v.kind()) {
    case Value::Kind::kInt:
      return v;
    case Value::Kind::kBool:
      return Value::integer(v.as_bool() ? 1 : 0);
    case Value::Kind::kFloat:
      return from_double(v.as_float());
    case Value::Kind::kString: {
      if (auto i = parse_python_int(v.as_string(), base)) return Value::integer(*i);
      if (auto d = parse_python_float(v.as_string())) return from_double(*d);
      return fallback;
    }
    default:
      return fallback;
  }
}

Result<Value> filter_float(const Value& v, CallArgs& args) {
  ArgReader r("float", args);
  SPW_ASSIGN_OR_RETURN(Value fallback, r.optional("default", Value::number(0.0)));
  SPW_TRY(r.done());
  if (v.is_undefined()) return type_error(v.undefined_message());  // Undefined.__float__ fails.
  switch (v.kind()) {
    case Value::Kind::kInt:
      return Value::number(static_cast<double>(v.as_int()));
    case Value::Kind::kBool:
      return Value::number(v.as_bool() ? 1.0 : 0.0);
    case Value::Kind::kFloat:
      return v;
    case Value::Kind::kString:
      if (auto d = parse_python_float(v.as_string())) return Value::number(*d);
      return fallback;
    default:
      return fallback;
  }
}

Result<Value> filter_join(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("join", args);
  SPW_ASSIGN_OR_RETURN(Value sep_v, r.optional("d", Value::string("")));
  SPW_ASSIGN_OR_RETURN(Value attribute, r.optional("attribute", Value::none()));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::string sep, to_str(sep_v, max_bytes(budget)));
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (!attribute.is_none()) {
      SPW_ASSIGN_OR_RETURN(std::string path, to_str(attribute, 1024));
      SPW_ASSIGN_OR_RETURN(item, attribute_path(item, path));
    }
    if (i > 0) out += sep;
    SPW_TRY(append_str(item, &out, max_bytes(budget)));
    SPW_TRY(budget.string(out.size()));
  }
  return Value::string(std::move(out));
}

Result<Value> filter_tojson(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("tojson", args);
  SPW_ASSIGN_OR_RETURN(const bool ensure_ascii, bool_arg(r, "ensure_ascii", false));
  SPW_ASSIGN_OR_RETURN(Value indent, r.optional("indent", Value::none()));
  SPW_ASSIGN_OR_RETURN(Value separators, r.optional("separators", Value::none()));
  SPW_ASSIGN_OR_RETURN(const bool sort_keys, bool_arg(r, "sort_keys", false));
  SPW_TRY(r.done());
  JsonOptions options;
  options.ensure_ascii = ensure_ascii;
  options.sort_keys = sort_keys;
  if (indent.is_string()) {
    options.indent = indent.as_string();
  } else if (!indent.is_none()) {
    SPW_ASSIGN_OR_RETURN(std::int64_t n, int_arg("tojson", "indent", indent));
    options.indent = std::string(static_cast<std::size_t>(std::clamp<std::int64_t>(n, 0, 64)), ' ');
  }
  if (options.indent.has_value()) options.item_separator = ",";
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.as_list().items.size() != 2)
      return type_error("tojson(): separators must be a pair of strings");
    SPW_ASSIGN_OR_RETURN(options.item_separator,
                         string_arg("tojson", "separators", separators.as_list().items[0]));
    SPW_ASSIGN_OR_RETURN(options.key_separator,
                         string_arg("tojson", "separators", separators.as_list().items[1]));
  }
  SPW_ASSIGN_OR_RETURN(std::string json, to_json(v, options, max_bytes(budget)));
  SPW_TRY(budget.string(json.size()));
  return Value::string(std::move(json));
}

Result<Value> filter_indent(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("indent", args);
  SPW_ASSIGN_OR_RETURN(Value width, r.optional("width", Value::integer(4)));
  SPW_ASSIGN_OR_RETURN(const bool first, bool_arg(r, "first", false));
  SPW_ASSIGN_OR_RETURN(const bool blank, bool_arg(r, "blank", false));
  SPW_TRY(r.done());
  std::string indention;
  if (width.is_string()) {
    indention = width.as_string();
  } else {
    SPW_ASSIGN_OR_RETURN(std::int64_t n, int_arg("indent", "width", width));
    indention.assign(static_cast<std::size_t>(std::clamp<std::int64_t>(n, 0, 1024)), ' ');
  }
  if (v.is_undefined()) return type_error(v.undefined_message());
  if (!v.is_string()) {  // Jinja appends "\n" to the value itself.
    return type_error(
        fmt::format("unsupported operand type(s) for +=: '{}' and 'str'", type_name(v)));
  }
  std::string s = v.as_string();
  s += "\n";
  const std::vector<std::string_view> lines = python_splitlines(s);
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += indention;
    }
    out += lines[i];
    SPW_TRY(budget.string(out.size() + indention.size()));
  }
  if (first) out = indention + out;
  return Value::string(std::move(out));
}

Result<Value> filter_round(const Value& v, CallArgs& args) {
  ArgReader r("round", args);
  SPW_ASSIGN_OR_RETURN(Value precision_v, r.optional("precision", Value::integer(0)));
  SPW_ASSIGN_OR_RETURN(Value method_v, r.optional("method", Value::string("common")));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::int64_t precision, int_arg("round", "precision", precision_v));
  SPW_ASSIGN_OR_RETURN(std::string method, string_arg("round", "method", method_v));
  if (method != "common" && method != "ceil" && method != "floor")
    return type_error("method must be common, ceil or floor");
  if (!v.is_number())
    return type_error(fmt::format("type {} doesn't define __round__", type_name(v)));
  precision = std::clamp<std::int64_t>(precision, -300, 300);
  if (method == "common" && v.kind() != Value::Kind::kFloat && precision >= 0)
    return Value::integer(v.kind() == Value::Kind::kBool ? (v.as_bool() ? 1 : 0) : v.as_int());
  const double x = v.kind() == Value::Kind::kFloat
                       ? v.as_float()
                       : (v.kind() == Value::Kind::kBool ? (v.as_bool() ? 1.0 : 0.0)
                                                         : static_cast<double>(v.as_int()));
  const double scale = std::pow(10.0, static_cast<double>(precision));
  double y = x * scale;
  if (method == "ceil") {
    y = std::ceil(y);
  } else if (method == "floor") {
    y = std::floor(y);
  } else {
    y = std::nearbyint(y);  // Round half to even, as Python's round().
  }
  return Value::number(y / scale);
}

Result<Value> filter_sort(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("sort", args);
  SPW_ASSIGN_OR_RETURN(const bool reverse, bool_arg(r, "reverse", false));
  SPW_ASSIGN_OR_RETURN(const bool case_sensitive, bool_arg(r, "case_sensitive", false));
  SPW_ASSIGN_OR_RETURN(Value attribute, r.optional("attribute", Value::none()));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  SPW_ASSIGN_OR_RETURN(std::vector<Value> keys, keyed(items, attribute, case_sensitive));
  std::vector<std::size_t> order(items.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  SPW_TRY(sort_indices(&order, keys, reverse));
  std::vector<Value> sorted;
  sorted.reserve(order.size());
  for (const std::size_t i : order)
    sorted.push_back(items[i]);
  return make_list(std::move(sorted), budget);
}

Result<Value> filter_dictsort(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("dictsort", args);
  SPW_ASSIGN_OR_RETURN(const bool case_sensitive, bool_arg(r, "case_sensitive", false));
  SPW_ASSIGN_OR_RETURN(Value by, r.optional("by", Value::string("key")));
  SPW_ASSIGN_OR_RETURN(const bool reverse, bool_arg(r, "reverse", false));
  SPW_TRY(r.done());
  if (!v.is_dict()) return type_error("dictsort(): argument must be a dict");
  SPW_ASSIGN_OR_RETURN(std::string by_name, string_arg("dictsort", "by", by));
  if (by_name != "key" && by_name != "value")
    return type_error("You can only sort by either \"key\" or \"value\"");
  const auto& items = v.as_dict().items;
  std::vector<Value> keys;
  for (const auto& [key, value] : items)
    keys.push_back(sort_key(by_name == "key" ? key : value, case_sensitive));
  std::vector<std::size_t> order(items.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  SPW_TRY(sort_indices(&order, keys, reverse));
  std::vector<Value> pairs;
  for (const std::size_t i : order)
    pairs.push_back(Value::list({items[i].first, items[i].second}, ListKind::kTuple));
  return make_list(std::move(pairs), budget);
}

Result<Value> filter_unique(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("unique", args);
  SPW_ASSIGN_OR_RETURN(const bool case_sensitive, bool_arg(r, "case_sensitive", false));
  SPW_ASSIGN_OR_RETURN(Value attribute, r.optional("attribute", Value::none()));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  SPW_ASSIGN_OR_RETURN(std::vector<Value> keys, keyed(items, attribute, case_sensitive));
  std::vector<Value> out;
  std::vector<Value> seen;
  for (std::size_t i = 0; i < items.size(); ++i) {
    SPW_TRY(budget.step(seen.size()));
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, keys[i]); }))
      continue;
    seen.push_back(keys[i]);
    out.push_back(items[i]);
  }
  return make_list(std::move(out), budget, ListKind::kIterator);
}

Result<Value> filter_min_max(const Value& v, CallArgs& args, Budget& budget, bool want_max) {
  ArgReader r(want_max ? "max" : "min", args);
  SPW_ASSIGN_OR_RETURN(const bool case_sensitive, bool_arg(r, "case_sensitive", false));
  SPW_ASSIGN_OR_RETURN(Value attribute, r.optional("attribute", Value::none()));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  SPW_ASSIGN_OR_RETURN(std::vector<Value> keys, keyed(items, attribute, case_sensitive));
  std::size_t best = 0;
  for (std::size_t i = 1; i < items.size(); ++i) {
    SPW_ASSIGN_OR_RETURN(const bool better,
                         want_max ? less(keys[best], keys[i]) : less(keys[i], keys[best]));
    if (better) best = i;
  }
  return items[best];
}

Result<Value> filter_sum(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("sum", args);
  SPW_ASSIGN_OR_RETURN(Value attribute, r.optional("attribute", Value::none()));
  SPW_ASSIGN_OR_RETURN(Value total, r.optional("start", Value::integer(0)));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  SPW_ASSIGN_OR_RETURN(std::vector<Value> values, keyed(items, attribute, true));
  for (const Value& item : values) {
    if (total.is_string() || item.is_string()) return type_error("sum() can't sum strings");
    SPW_ASSIGN_OR_RETURN(total, binary_op(Op::kAdd, total, item, budget));
  }
  return total;
}

// select / reject / selectattr / rejectattr.
Result<Value> filter_select(std::string_view name, const Value& v, CallArgs& args, Budget& budget) {
  const bool by_attribute = name == "selectattr" || name == "rejectattr";
  const bool keep_matches = name == "select" || name == "selectattr";
  ArgReader r(name, args);
  std::string path;
  if (by_attribute) {
    SPW_ASSIGN_OR_RETURN(Value attribute, r.required("attr"));
    SPW_ASSIGN_OR_RETURN(path, string_arg(name, "attr", attribute));
  }
  SPW_ASSIGN_OR_RETURN(std::optional<Value> test, r.next("test"));
  CallArgs test_args;
  test_args.positional = r.rest();
  SPW_TRY(r.done());
  std::string test_name;
  if (test.has_value()) {
    SPW_ASSIGN_OR_RETURN(test_name, string_arg(name, "test", *test));
    if (!is_test(test_name)) return type_error(fmt::format("no test named '{}'", test_name));
  }
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  std::vector<Value> out;
  for (const Value& item : items) {
    Value subject = item;
    if (by_attribute) {
      SPW_ASSIGN_OR_RETURN(subject, attribute_path(item, path));
    }
    bool passed = false;
    if (test_name.empty()) {
      passed = truthy(subject);
    } else {
      SPW_ASSIGN_OR_RETURN(passed, apply_test(test_name, subject, test_args, budget));
    }
    if (passed == keep_matches) out.push_back(item);
  }
  return make_list(std::move(out), budget, ListKind::kIterator);
}

Result<Value> filter_map(const Value& v, CallArgs& args, Budget& budget) {
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  std::vector<Value> out;
  out.reserve(items.size());
  const bool by_attribute = args.positional.empty();
  if (by_attribute) {
    ArgReader r("map", args);
    SPW_ASSIGN_OR_RETURN(Value attribute, r.required("attribute"));
    SPW_ASSIGN_OR_RETURN(std::optional<Value> fallback, r.next("default"));
    SPW_TRY(r.done());
    SPW_ASSIGN_OR_RETURN(std::string path, string_arg("map", "attribute", attribute));
    for (const Value& item : items) {
      SPW_ASSIGN_OR_RETURN(Value mapped, attribute_path(item, path));
      if (mapped.is_undefined() && fallback.has_value()) mapped = *fallback;
      out.push_back(std::move(mapped));
    }
    return make_list(std::move(out), budget, ListKind::kIterator);
  }
  SPW_ASSIGN_OR_RETURN(std::string filter, string_arg("map", "filter", args.positional[0]));
  if (!is_filter(filter)) return type_error(fmt::format("no filter named '{}'", filter));
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items) {
    SPW_ASSIGN_OR_RETURN(Value mapped, apply_filter(filter, item, rest, budget));
    out.push_back(std::move(mapped));
  }
  return make_list(std::move(out), budget, ListKind::kIterator);
}

Result<Value> filter_batch(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("batch", args);
  SPW_ASSIGN_OR_RETURN(Value count_v, r.required("linecount"));
  SPW_ASSIGN_OR_RETURN(std::optional<Value> fill, r.next("fill_with"));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::int64_t count, int_arg("batch", "linecount", count_v));
  if (count <= 0) return type_error("batch(): linecount must be positive");
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  std::vector<Value> batches;
  std::vector<Value> current;
  for (Value& item : items) {
    current.push_back(std::move(item));
    if (static_cast<std::int64_t>(current.size()) == count) {
      batches.push_back(Value::list(std::move(current)));
      current.clear();
    }
  }
  if (!current.empty()) {
    if (fill.has_value()) {
      while (static_cast<std::int64_t>(current.size()) < count)
        current.push_back(*fill);
    }
    batches.push_back(Value::list(std::move(current)));
  }
  return make_list(std::move(batches), budget, ListKind::kIterator);
}

Result<Value> filter_reverse(const Value& v, Budget& budget) {
  if (v.is_string()) {
    const std::vector<std::size_t> off = utf8_offsets(v.as_string());
    std::string out;
    out.reserve(v.as_string().size());
    for (std::size_t k = off.size() - 1; k > 0; --k)
      out.append(v.as_string(), off[k - 1], off[k] - off[k - 1]);
    return Value::string(std::move(out));
  }
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  std::reverse(items.begin(), items.end());
  // reversed() of a list or dict is an iterator; a generator is copied into a list.
  const bool copied = v.is_list() && v.as_list().iterator();
  return make_list(std::move(items), budget, copied ? ListKind::kList : ListKind::kIterator);
}

Result<Value> filter_last(const Value& v, Budget& budget) {
  if (v.is_undefined()) return Value::undefined("No last item, sequence was empty.");
  if (!v.is_string() && !(v.is_list() && !v.as_list().iterator()) && !v.is_dict())
    return type_error(fmt::format("'{}' object is not reversible", type_name(v)));
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Result<Value> filter_items(const Value& v, Budget& budget) {
  if (v.is_undefined()) return Value::list({}, ListKind::kIterator);
  if (!v.is_dict()) return type_error("Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [key, value] : v.as_dict().items)
    pairs.push_back(Value::list({key, value}, ListKind::kTuple));
  return make_list(std::move(pairs), budget, ListKind::kIterator);
}

Result<Value> filter_center(const Value& v, CallArgs& args, Budget& budget) {
  ArgReader r("center", args);
  SPW_ASSIGN_OR_RETURN(Value width_v, r.optional("width", Value::integer(80)));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::int64_t width, int_arg("center", "width", width_v));
  SPW_ASSIGN_OR_RETURN(std::string s, str_of(v, budget));
  const auto length = static_cast<std::int64_t>(utf8_length(s));
  if (width <= length) return Value::string(std::move(s));
  SPW_TRY(budget.string(s.size() + static_cast<std::size_t>(width - length)));
  const std::int64_t margin = width - length;
  const std::int64_t left = margin / 2 + (margin & width & 1);
  return Value::string(std::string(static_cast<std::size_t>(left), ' ') + s +
                       std::string(static_cast<std::size_t>(margin - left), ' '));
}

Result<Value> filter_attr(const Value& v, CallArgs& args) {
  ArgReader r("attr", args);
  SPW_ASSIGN_OR_RETURN(Value name_v, r.required("name"));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::string name, string_arg("attr", "name", name_v));
  // Attributes only, never dict keys (Python's getattr).
  const bool dict_method = name == "get" || name == "items" || name == "keys" || name == "values";
  if (v.kind() == Value::Kind::kNamespace || v.is_string() || (v.is_dict() && dict_method))
    return get_attribute(v, name);
  if (v.is_undefined()) return type_error(v.undefined_message());
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(v), name));
}

std::size_t count_words(const std::string& s) {
  std::size_t words = 0;
  bool in_word = false;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode(s, i, &len);
    const bool word_char = cp == '_' || (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
                           (cp >= 'A' && cp <= 'Z') || (cp >= 0xAA && !is_python_space(cp));
    if (word_char && !in_word) ++words;
    in_word = word_char;
    i += len;
  }
  return words;
}

// Jinja's lazy filters are generators: a failure over their input surfaces only when the
// result is consumed. Limits still fail at once.
Result<Value> lazy(Result<Value> r) {
  if (r.ok() || r.error().code() != ErrorCode::kFailedPrecondition) return r;
  return Value::failed_iterator(r.error().message());
}

}  // namespace

bool is_filter(std::string_view name) {
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}

bool is_test(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

Result<Value> apply_filter(std::string_view name, const Value& v, CallArgs args, Budget& budget) {
  SPW_TRY(budget.step());
  if (!is_filter(name)) return type_error(fmt::format("no filter named '{}'", name));
  if (name == "length" || name == "count") {
    SPW_TRY(ArgReader(name, args).done());
    return filter_length(v);
  }
  if (name == "default" || name == "d") {
    ArgReader r(name, args);
    SPW_ASSIGN_OR_RETURN(Value fallback, r.optional("default_value", Value::string("")));
    SPW_ASSIGN_OR_RETURN(const bool boolean, bool_arg(r, "boolean", false));
    SPW_TRY(r.done());
    if (v.is_undefined() || (boolean && !truthy(v))) return fallback;
    return v;
  }
  if (name == "trim") {
    ArgReader r(name, args);
    SPW_ASSIGN_OR_RETURN(Value chars, r.optional("chars", Value::none()));
    SPW_TRY(r.done());
    SPW_ASSIGN_OR_RETURN(std::string s, str_of(v, budget));
    if (chars.is_none()) return Value::string(std::string(python_strip(s, true, true)));
    SPW_ASSIGN_OR_RETURN(std::string set, string_arg(name, "chars", chars));
    return Value::string(std::string(python_strip_chars(s, set, true, true)));
  }
  if (name == "replace") {
    ArgReader r(name, args);
    SPW_ASSIGN_OR_RETURN(Value old_v, r.required("old"));
    SPW_ASSIGN_OR_RETURN(Value new_v, r.required("new"));
    SPW_ASSIGN_OR_RETURN(Value count_v, r.optional("count", Value::none()));
    SPW_TRY(r.done());
    SPW_ASSIGN_OR_RETURN(std::string s, str_of(v, budget));
    CallArgs method_args;
    method_args.positional = {std::move(old_v), std::move(new_v)};
    if (!count_v.is_none()) method_args.positional.push_back(std::move(count_v));
    return call_method(Value::string(std::move(s)), "replace", std::move(method_args), budget);
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title" ||
      name == "string" || name == "safe" || name == "escape" || name == "e" ||
      name == "forceescape" || name == "wordcount") {
    SPW_TRY(ArgReader(name, args).done());
    SPW_ASSIGN_OR_RETURN(std::string s, str_of(v, budget));
    if (name == "upper") return Value::string(python_upper(s));
    if (name == "lower") return Value::string(python_lower(s));
    if (name == "capitalize") return Value::string(python_capitalize(s));
    if (name == "title") return Value::string(jinja_title(s));
    if (name == "wordcount") return Value::integer(static_cast<std::int64_t>(count_words(s)));
    if (name == "string" || name == "safe") return Value::string(std::move(s));
    std::string escaped = html_escape(s);
    SPW_TRY(budget.string(escaped.size()));
    return Value::string(std::move(escaped));
  }
  if (name == "join") return filter_join(v, args, budget);
  if (name == "tojson") return filter_tojson(v, args, budget);
  if (name == "int") return filter_int(v, args);
  if (name == "float") return filter_float(v, args);
  if (name == "indent") return filter_indent(v, args, budget);
  if (name == "round") return filter_round(v, args);
  if (name == "sort") return filter_sort(v, args, budget);
  if (name == "dictsort") return filter_dictsort(v, args, budget);
  if (name == "unique") return lazy(filter_unique(v, args, budget));
  if (name == "max" || name == "min") return filter_min_max(v, args, budget, name == "max");
  if (name == "sum") return filter_sum(v, args, budget);
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return lazy(filter_select(name, v, args, budget));
  if (name == "map") return lazy(filter_map(v, args, budget));
  if (name == "batch") return lazy(filter_batch(v, args, budget));
  if (name == "center") return filter_center(v, args, budget);
  if (name == "attr") return filter_attr(v, args);
  SPW_TRY(ArgReader(name, args).done());
  if (name == "first") {
    SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
    if (items.empty()) return Value::undefined("No first item, sequence was empty.");
    return items.front();
  }
  if (name == "last") return filter_last(v, budget);
  if (name == "list") {
    SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(v, budget));
    return make_list(std::move(items), budget);
  }
  if (name == "items") return lazy(filter_items(v, budget));
  if (name == "reverse") return filter_reverse(v, budget);
  if (name == "abs") {
    if (v.kind() == Value::Kind::kFloat) return Value::number(std::fabs(v.as_float()));
    if (v.is_number()) {
      SPW_ASSIGN_OR_RETURN(Value n, unary_op(Op::kPos, v));
      return n.as_int() < 0 ? unary_op(Op::kNeg, n) : n;
    }
    return type_error(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
  }
  return type_error(fmt::format("No filter named '{}'", name));
}

Result<bool> apply_test(std::string_view name, const Value& v, const CallArgs& args,
                        Budget& budget) {
  SPW_TRY(budget.step());
  if (!is_test(name)) return type_error(fmt::format("no test named '{}'", name));
  const auto arg = [&]() -> Result<Value> {
    if (args.positional.size() != 1 || !args.keyword.empty())
      return type_error(fmt::format("test '{}' takes exactly one argument", name));
    return args.positional[0];
  };
  const auto no_args = [&]() -> Status {
    if (!args.positional.empty() || !args.keyword.empty())
      return type_error(fmt::format("test '{}' takes no arguments", name));
    return {};
  };
  using K = Value::Kind;
  if (name == "defined" || name == "undefined" || name == "none" || name == "boolean" ||
      name == "false" || name == "true" || name == "integer" || name == "float" ||
      name == "number" || name == "string" || name == "mapping" || name == "iterable" ||
      name == "sequence" || name == "callable" || name == "escaped" || name == "lower" ||
      name == "upper" || name == "filter" || name == "test" || name == "odd" || name == "even") {
    SPW_TRY(no_args());
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "boolean") return v.kind() == K::kBool;
    if (name == "false") return v.kind() == K::kBool && !v.as_bool();
    if (name == "true") return v.kind() == K::kBool && v.as_bool();
    if (name == "integer") return v.kind() == K::kInt;
    if (name == "float") return v.kind() == K::kFloat;
    if (name == "number") return v.is_number();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_dict();
    if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
    if (name == "sequence") {
      return v.is_undefined() || v.is_string() || (v.is_list() && !v.as_list().iterator()) ||
             v.is_dict();
    }
    if (name == "callable") return v.kind() == K::kCallable || v.is_undefined();
    if (name == "escaped") return false;
    if (name == "filter") return v.is_string() && is_filter(v.as_string());
    if (name == "test") return v.is_string() && is_test(v.as_string());
    if (name == "odd" || name == "even") {
      SPW_ASSIGN_OR_RETURN(std::int64_t i, int_arg(name, "value", v));
      return (i % 2 != 0) == (name == "odd");
    }
    SPW_ASSIGN_OR_RETURN(std::string s, str_of(v, budget));
    // str.islower() / isupper(): some cased character, and none of the other case.
    const std::string lower = python_lower(s);
    const std::string upper = python_upper(s);
    return lower != upper && (name == "lower" ? lower : upper) == s;
  }
  SPW_ASSIGN_OR_RETURN(Value other, arg());
  if (name == "divisibleby") {
    SPW_ASSIGN_OR_RETURN(Value rest, binary_op(Op::kMod, v, other, budget));
    return !truthy(rest);
  }
  if (name == "sameas") {
    if (v.kind() != other.kind()) return false;
    if (v.is_list()) return &v.as_list() == &other.as_list();
    if (v.is_dict()) return &v.as_dict() == &other.as_dict();
    return equals(v, other);
  }
  if (name == "in") return contains(other, v);
  Op op = Op::kNone;
  if (name == "eq" || name == "equalto" || name == "==") op = Op::kEq;
  if (name == "ne" || name == "!=") op = Op::kNe;
  if (name == "lt" || name == "lessthan" || name == "<") op = Op::kLt;
  if (name == "le" || name == "<=") op = Op::kLe;
  if (name == "gt" || name == "greaterthan" || name == ">") op = Op::kGt;
  if (name == "ge" || name == ">=") op = Op::kGe;
  if (op == Op::kNone) return type_error(fmt::format("No test named '{}'", name));
  return compare_op(op, v, other);
}

}  // namespace spillway::serve::jinja
