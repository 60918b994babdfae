// Attribute, item and slice access, iteration, str and dict methods, and global functions.
#include <fmt/core.h>

#include <algorithm>
#include <ctime>
#include <iterator>

#include "serve/jinja_args.h"
#include "serve/jinja_builtins.h"
#include "serve/jinja_strings.h"

namespace spillway::serve::jinja {
namespace {

constexpr std::string_view kStringMethods[] = {
    "capitalize", "count",   "endswith", "find",  "isalnum",    "isalpha",    "isdigit",
    "islower",    "isspace", "isupper",  "join",  "lower",      "lstrip",     "replace",
    "rfind",      "rsplit",  "rstrip",   "split", "splitlines", "startswith", "strip",
    "title",      "upper",   "index",    "rindex"};
constexpr std::string_view kDictMethods[] = {"get", "items", "keys", "values"};
constexpr std::string_view kListMethods[] = {"count", "index"};

bool has_method(const Value& receiver, std::string_view name) {
  if (receiver.is_string())
    return std::find(std::begin(kStringMethods), std::end(kStringMethods), name) !=
           std::end(kStringMethods);
  if (receiver.is_dict())
    return std::find(std::begin(kDictMethods), std::end(kDictMethods), name) !=
           std::end(kDictMethods);
  if (receiver.is_list() && !receiver.as_list().iterator())
    return std::find(std::begin(kListMethods), std::end(kListMethods), name) !=
           std::end(kListMethods);
  return false;
}

Value bound_method(const Value& receiver, std::string_view name) {
  Callable c;
  c.kind = Callable::Kind::kMethod;
  c.name = std::string(name);
  c.receiver = receiver;
  return Value::callable(std::move(c));
}

Value no_attribute(const Value& obj, std::string_view name) {
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(obj), name));
}

// Python's slice.indices(length) followed by the walk over the selected indices.
std::vector<std::size_t> slice_indices(std::size_t length, std::optional<std::int64_t> start,
                                       std::optional<std::int64_t> stop, std::int64_t step) {
  const auto n = static_cast<std::int64_t>(length);
  const std::int64_t lower = step < 0 ? -1 : 0;
  const std::int64_t upper = step < 0 ? n - 1 : n;
  const auto clamp = [&](std::optional<std::int64_t> v, std::int64_t fallback) {
    if (!v.has_value()) return fallback;
    std::int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  const std::int64_t begin = clamp(start, step < 0 ? upper : lower);
  const std::int64_t end = clamp(stop, step < 0 ? lower : upper);
  std::vector<std::size_t> out;
  for (std::int64_t i = begin; step > 0 ? i < end : i > end; i += step)
    out.push_back(static_cast<std::size_t>(i));
  return out;
}

Result<std::optional<std::int64_t>> slice_bound(const Value* v) {
  if (v == nullptr || v->is_none()) return std::optional<std::int64_t>();
  if (v->kind() == Value::Kind::kInt) return std::optional<std::int64_t>(v->as_int());
  if (v->kind() == Value::Kind::kBool) return std::optional<std::int64_t>(v->as_bool() ? 1 : 0);
  if (v->is_undefined()) return type_error(v->undefined_message());
  return type_error(fmt::format("slice indices must be integers or None, not '{}'", type_name(*v)));
}

// Character index of byte offset `at` in `s`.
std::int64_t char_index(std::string_view s, std::size_t at) {
  return static_cast<std::int64_t>(utf8_length(s.substr(0, at)));
}

Result<Value> strip_method(const std::string& s, std::string_view name, CallArgs& args, bool left,
                           bool right) {
  ArgReader r(name, args);
  SPW_ASSIGN_OR_RETURN(Value chars, r.optional("chars", Value::none()));
  SPW_TRY(r.done());
  if (chars.is_none()) return Value::string(std::string(python_strip(s, left, right)));
  SPW_ASSIGN_OR_RETURN(std::string set, string_arg(name, "chars", chars));
  return Value::string(std::string(python_strip_chars(s, set, left, right)));
}

Result<Value> affix_method(const std::string& s, std::string_view name, CallArgs& args) {
  ArgReader r(name, args);
  SPW_ASSIGN_OR_RETURN(Value affix, r.required("prefix"));
  SPW_TRY(r.done());
  const bool prefix = name == "startswith";
  const auto test = [&](const std::string& a) {
    return a.size() <= s.size() && (prefix ? s.compare(0, a.size(), a) == 0
                                           : s.compare(s.size() - a.size(), a.size(), a) == 0);
  };
  if (affix.is_string()) return Value::boolean(test(affix.as_string()));
  if (affix.is_list() && affix.as_list().tuple()) {
    for (const Value& item : affix.as_list().items) {
      SPW_ASSIGN_OR_RETURN(std::string a, string_arg(name, "prefix", item));
      if (test(a)) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  return type_error(
      fmt::format("{} first arg must be str or a tuple of str, not {}", name, type_name(affix)));
}

Result<Value> split_method(const std::string& s, std::string_view name, CallArgs& args,
                           Budget& budget) {
  ArgReader r(name, args);
  SPW_ASSIGN_OR_RETURN(Value sep, r.optional("sep", Value::none()));
  SPW_ASSIGN_OR_RETURN(Value maxsplit_v, r.optional("maxsplit", Value::integer(-1)));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::int64_t maxsplit, int_arg(name, "maxsplit", maxsplit_v));
  std::optional<std::string> separator;
  if (!sep.is_none()) {
    SPW_ASSIGN_OR_RETURN(separator, string_arg(name, "sep", sep));
    if (separator->empty()) return type_error("empty separator");
  }
  std::vector<std::string> parts =
      python_split(s, separator ? std::optional<std::string_view>(*separator) : std::nullopt,
                   maxsplit, name == "rsplit");
  SPW_TRY(budget.items(parts.size()));
  std::vector<Value> items;
  items.reserve(parts.size());
  for (std::string& p : parts)
    items.push_back(Value::string(std::move(p)));
  return Value::list(std::move(items));
}

// str.replace(old, new, count): an empty `old` inserts `new` around every character.
Result<Value> replace_string(const std::string& s, const std::string& old_text,
                             const std::string& new_text, std::int64_t count, Budget& budget) {
  std::string out;
  std::int64_t done = 0;
  const auto room = [&](std::size_t more) { return budget.string(out.size() + more); };
  if (old_text.empty()) {
    const std::vector<std::size_t> offsets = utf8_offsets(s);
    for (std::size_t k = 0; k + 1 <= offsets.size(); ++k) {
      if (count < 0 || done < count) {
        SPW_TRY(room(new_text.size()));
        out += new_text;
        ++done;
      }
      if (k + 1 < offsets.size()) out.append(s, offsets[k], offsets[k + 1] - offsets[k]);
    }
    return Value::string(std::move(out));
  }
  std::size_t start = 0;
  while (count < 0 || done < count) {
    const std::size_t at = s.find(old_text, start);
    if (at == std::string::npos) break;
    SPW_TRY(room(at - start + new_text.size()));
    out.append(s, start, at - start);
    out += new_text;
    start = at + old_text.size();
    ++done;
  }
  SPW_TRY(room(s.size() - start));
  out.append(s, start);
  return Value::string(std::move(out));
}

Result<Value> replace_method(const std::string& s, CallArgs& args, Budget& budget) {
  ArgReader r("replace", args);
  SPW_ASSIGN_OR_RETURN(Value old_v, r.required("old"));
  SPW_ASSIGN_OR_RETURN(Value new_v, r.required("new"));
  SPW_ASSIGN_OR_RETURN(Value count_v, r.optional("count", Value::integer(-1)));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::string old_text, string_arg("replace", "old", old_v));
  SPW_ASSIGN_OR_RETURN(std::string new_text, string_arg("replace", "new", new_v));
  SPW_ASSIGN_OR_RETURN(std::int64_t count, int_arg("replace", "count", count_v));
  return replace_string(s, old_text, new_text, count, budget);
}

Result<Value> find_method(const std::string& s, std::string_view name, CallArgs& args) {
  ArgReader r(name, args);
  SPW_ASSIGN_OR_RETURN(Value sub_v, r.required("sub"));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::string sub, string_arg(name, "sub", sub_v));
  const bool reverse = name == "rfind" || name == "rindex";
  const std::size_t at = reverse ? s.rfind(sub) : s.find(sub);
  if (at == std::string::npos) {
    if (name == "index" || name == "rindex") return type_error("substring not found");
    return Value::integer(-1);
  }
  return Value::integer(char_index(s, at));
}

Result<Value> count_method(const std::string& s, CallArgs& args) {
  ArgReader r("count", args);
  SPW_ASSIGN_OR_RETURN(Value sub_v, r.required("sub"));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::string sub, string_arg("count", "sub", sub_v));
  if (sub.empty()) return Value::integer(static_cast<std::int64_t>(utf8_length(s)) + 1);
  std::int64_t n = 0;
  for (std::size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size()))
    ++n;
  return Value::integer(n);
}

Result<Value> join_method(const std::string& sep, CallArgs& args, Budget& budget) {
  ArgReader r("join", args);
  SPW_ASSIGN_OR_RETURN(Value iterable, r.required("iterable"));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(iterable, budget));
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string()) {
      return type_error(
          fmt::format("sequence item {}: expected str instance, {} found", i, type_name(items[i])));
    }
    const std::size_t more = (i > 0 ? sep.size() : 0) + items[i].as_string().size();
    SPW_TRY(budget.string(out.size() + more));
    if (i > 0) out += sep;
    out += items[i].as_string();
  }
  return Value::string(std::move(out));
}

// The is*() predicates: true when `s` is not empty and every character satisfies `pred`.
template <typename Pred>
Value all_chars(const std::string& s, Pred pred) {
  if (s.empty()) return Value::boolean(false);
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode(s, i, &len);
    if (!pred(cp)) return Value::boolean(false);
    i += len;
  }
  return Value::boolean(true);
}

bool is_alpha(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  const std::string s = [&] {
    std::string t;
    append_utf8(cp, &t);
    return t;
  }();
  return python_lower(s) != python_upper(s) || cp == 0xDF;
}

Result<Value> string_method(const std::string& s, std::string_view name, CallArgs args,
                            Budget& budget) {
  SPW_TRY(budget.string(s.size()));
  if (name == "strip") return strip_method(s, name, args, true, true);
  if (name == "lstrip") return strip_method(s, name, args, true, false);
  if (name == "rstrip") return strip_method(s, name, args, false, true);
  if (name == "startswith" || name == "endswith") return affix_method(s, name, args);
  if (name == "split" || name == "rsplit") return split_method(s, name, args, budget);
  if (name == "replace") return replace_method(s, args, budget);
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex")
    return find_method(s, name, args);
  if (name == "count") return count_method(s, args);
  if (name == "join") return join_method(s, args, budget);
  ArgReader r(name, args);
  SPW_TRY(r.done());
  if (name == "lower") return Value::string(python_lower(s));
  if (name == "upper") return Value::string(python_upper(s));
  if (name == "title") return Value::string(python_title(s));
  if (name == "capitalize") return Value::string(python_capitalize(s));
  if (name == "splitlines") {
    std::vector<Value> items;
    for (std::string_view line : python_splitlines(s))
      items.push_back(Value::string(std::string(line)));
    SPW_TRY(budget.items(items.size()));
    return Value::list(std::move(items));
  }
  const auto digit = [](char32_t cp) { return cp >= '0' && cp <= '9'; };
  if (name == "isdigit") return all_chars(s, digit);
  if (name == "isalpha") return all_chars(s, is_alpha);
  if (name == "isalnum")
    return all_chars(s, [&](char32_t cp) { return digit(cp) || is_alpha(cp); });
  if (name == "isspace") return all_chars(s, is_python_space);
  if (name == "islower" || name == "isupper") {
    const std::string other = name == "islower" ? python_lower(s) : python_upper(s);
    const bool cased = python_lower(s) != python_upper(s);
    return Value::boolean(cased && other == s);
  }
  return type_error(fmt::format("'str' object has no method '{}'", name));
}

Result<Value> dict_method(const Dict& d, std::string_view name, CallArgs args, Budget& budget) {
  ArgReader r(name, args);
  if (name == "get") {
    SPW_ASSIGN_OR_RETURN(Value key, r.required("key"));
    SPW_ASSIGN_OR_RETURN(Value fallback, r.optional("default", Value::none()));
    SPW_TRY(r.done());
    const Value* found = d.find(key);
    return found != nullptr ? *found : fallback;
  }
  SPW_TRY(r.done());
  SPW_TRY(budget.items(d.items.size()));
  std::vector<Value> items;
  items.reserve(d.items.size());
  for (const auto& [key, value] : d.items) {
    if (name == "keys") {
      items.push_back(key);
    } else if (name == "values") {
      items.push_back(value);
    } else {
      items.push_back(Value::list({key, value}, ListKind::kTuple));
    }
  }
  return Value::list(std::move(items));
}

Result<Value> list_method(const List& list, std::string_view name, CallArgs args) {
  ArgReader r(name, args);
  SPW_ASSIGN_OR_RETURN(Value x, r.required("value"));
  SPW_TRY(r.done());
  std::int64_t count = 0;
  for (std::size_t i = 0; i < list.items.size(); ++i) {
    if (!equals(list.items[i], x)) continue;
    if (name == "index") return Value::integer(static_cast<std::int64_t>(i));
    ++count;
  }
  if (name == "index") return type_error("value is not in list");
  return Value::integer(count);
}

Result<Value> range_function(CallArgs args, Budget& budget) {
  if (!args.keyword.empty()) return type_error("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3)
    return type_error(fmt::format("range expected 1 to 3 arguments, got {}", p.size()));
  std::int64_t start = 0;
  std::int64_t stop = 0;
  std::int64_t step = 1;
  if (p.size() == 1) {
    SPW_ASSIGN_OR_RETURN(stop, int_arg("range", "stop", p[0]));
  } else {
    SPW_ASSIGN_OR_RETURN(start, int_arg("range", "start", p[0]));
    SPW_ASSIGN_OR_RETURN(stop, int_arg("range", "stop", p[1]));
    if (p.size() == 3) {
      SPW_ASSIGN_OR_RETURN(step, int_arg("range", "step", p[2]));
    }
  }
  if (step == 0) return type_error("range() arg 3 must not be zero");
  // Count without overflow: the span is at most 2^64 - 1.
  std::uint64_t count = 0;
  if (step > 0 && start < stop) {
    const std::uint64_t span = static_cast<std::uint64_t>(stop) - static_cast<std::uint64_t>(start);
    count = (span - 1) / static_cast<std::uint64_t>(step) + 1;
  } else if (step < 0 && start > stop) {
    const std::uint64_t span = static_cast<std::uint64_t>(start) - static_cast<std::uint64_t>(stop);
    count = (span - 1) / (static_cast<std::uint64_t>(-(step + 1)) + 1) + 1;
  }
  SPW_TRY(budget.items(static_cast<std::size_t>(count)));
  std::vector<Value> items;
  items.reserve(count);
  std::int64_t v = start;
  for (std::uint64_t i = 0; i < count; ++i) {
    items.push_back(Value::integer(v));
    if (i + 1 < count) v += step;  // Never steps past the last value, so never overflows.
  }
  return Value::list(std::move(items));
}

// The key/value pairs of dict(mapping_or_pairs, **kwargs).
Result<std::vector<std::pair<Value, Value>>> dict_items(std::string_view function, CallArgs args,
                                                        Budget& budget) {
  if (args.positional.size() > 1)
    return type_error(fmt::format("{}() expected at most 1 positional argument", function));
  std::vector<std::pair<Value, Value>> items;
  const auto put = [&](Value key, Value value) {
    for (auto& item : items) {
      if (equals(item.first, key)) {
        item.second = std::move(value);
        return;
      }
    }
    items.emplace_back(std::move(key), std::move(value));
  };
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      for (const auto& [key, value] : source.as_dict().items)
        put(key, value);
    } else {
      SPW_ASSIGN_OR_RETURN(std::vector<Value> pairs, iterate(source, budget));
      for (const Value& pair : pairs) {
        if (!pair.is_list() || pair.as_list().items.size() != 2)
          return type_error(fmt::format("{}() sequence elements must be pairs", function));
        put(pair.as_list().items[0], pair.as_list().items[1]);
      }
    }
  }
  for (auto& [key, value] : args.keyword)
    put(Value::string(key), std::move(value));
  SPW_TRY(budget.items(items.size()));
  return items;
}

Result<Value> strftime_function(CallArgs args, std::int64_t unix_time_s, Budget& budget) {
  ArgReader r("strftime_now", args);
  SPW_ASSIGN_OR_RETURN(Value format_v, r.required("format"));
  SPW_TRY(r.done());
  SPW_ASSIGN_OR_RETURN(std::string format, string_arg("strftime_now", "format", format_v));
  // Only conversions with a fixed, bounded output; anything else is rejected rather than
  // handed to the C library.
  constexpr std::string_view kAllowed = "aAbBcdDeFgGhHIjmMnpRStTuUVwWxXyYzZ%";
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') continue;
    if (i + 1 >= format.size() || kAllowed.find(format[i + 1]) == std::string_view::npos)
      return type_error(fmt::format("strftime_now(): unsupported format '{}'", format));
    ++i;
  }
  if (format.size() > 256) return type_error("strftime_now(): format too long");
  const std::time_t t = static_cast<std::time_t>(unix_time_s);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return type_error("strftime_now(): time out of range");
  std::string out(format.size() * 16 + 1, '\0');
  const std::size_t n = std::strftime(out.data(), out.size(), format.c_str(), &tm);
  out.resize(n);
  SPW_TRY(budget.string(out.size()));
  return Value::string(std::move(out));
}

}  // namespace

Result<Value> get_attribute(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      return type_error(obj.undefined_message());
    case Value::Kind::kString:
    case Value::Kind::kList:
      return has_method(obj, name) ? bound_method(obj, name) : no_attribute(obj, name);
    case Value::Kind::kDict: {
      if (has_method(obj, name)) return bound_method(obj, name);
      const Value* v = obj.as_dict().find(name);
      return v != nullptr ? *v : no_attribute(obj, name);
    }
    case Value::Kind::kNamespace: {
      const Value* v = obj.as_namespace().find(name);
      return v != nullptr ? *v : no_attribute(obj, name);
    }
    default:
      return no_attribute(obj, name);
  }
}

Result<Value> get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return type_error(obj.undefined_message());
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if (((obj.is_list() && !obj.as_list().iterator()) || obj.is_string()) &&
             (key.kind() == Value::Kind::kInt || key.kind() == Value::Kind::kBool)) {
    std::int64_t i = key.kind() == Value::Kind::kInt ? key.as_int() : (key.as_bool() ? 1 : 0);
    if (obj.is_list()) {
      const auto& items = obj.as_list().items;
      const auto n = static_cast<std::int64_t>(items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return items[static_cast<std::size_t>(i)];
    } else {
      const std::vector<std::size_t> off = utf8_offsets(obj.as_string());
      const auto n = static_cast<std::int64_t>(off.size() - 1);
      if (i < 0) i += n;
      if (i >= 0 && i < n) {
        const auto k = static_cast<std::size_t>(i);
        return Value::string(obj.as_string().substr(off[k], off[k + 1] - off[k]));
      }
    }
    return Value::undefined(
        fmt::format("'{} object' has no element {}", type_name(obj), key.as_int()));
  }
  if (key.is_string()) return get_attribute(obj, key.as_string());
  Result<std::string> shown = to_str(key, 256);
  return Value::undefined(fmt::format("'{} object' has no element {}", type_name(obj),
                                      shown.ok() ? *shown : std::string("?")));
}

Result<Value> get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step,
                        Budget& budget) {
  if (obj.is_undefined()) return type_error(obj.undefined_message());
  SPW_ASSIGN_OR_RETURN(auto first, slice_bound(start));
  SPW_ASSIGN_OR_RETURN(auto last, slice_bound(stop));
  SPW_ASSIGN_OR_RETURN(auto stride, slice_bound(step));
  const std::int64_t s = stride.value_or(1);
  if (s == 0) return type_error("slice step cannot be zero");
  if (obj.is_list() && !obj.as_list().iterator()) {
    const List& list = obj.as_list();
    const std::vector<std::size_t> picked = slice_indices(list.items.size(), first, last, s);
    SPW_TRY(budget.items(picked.size()));
    std::vector<Value> items;
    items.reserve(picked.size());
    for (const std::size_t i : picked)
      items.push_back(list.items[i]);
    return Value::list(std::move(items), list.kind);
  }
  if (obj.is_string()) {
    const std::string& str = obj.as_string();
    const std::vector<std::size_t> off = utf8_offsets(str);
    const std::vector<std::size_t> picked = slice_indices(off.size() - 1, first, last, s);
    SPW_TRY(budget.string(str.size()));
    std::string out;
    for (const std::size_t i : picked)
      out.append(str, off[i], off[i + 1] - off[i]);
    return Value::string(std::move(out));
  }
  // Jinja slices with Python's own subscript, which fails for everything else.
  return type_error(fmt::format("'{}' object is not subscriptable", type_name(obj)));
}

Result<std::vector<Value>> iterate(const Value& v, Budget& budget) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::vector<Value>();
    case Value::Kind::kList:
      if (!v.as_list().error.empty()) return type_error(v.as_list().error);
      SPW_TRY(budget.step(v.as_list().items.size()));
      return v.as_list().items;
    case Value::Kind::kDict: {
      SPW_TRY(budget.step(v.as_dict().items.size()));
      std::vector<Value> keys;
      keys.reserve(v.as_dict().items.size());
      for (const auto& item : v.as_dict().items)
        keys.push_back(item.first);
      return keys;
    }
    case Value::Kind::kString: {
      const std::string& s = v.as_string();
      SPW_TRY(budget.items(s.size()));
      std::vector<Value> chars;
      for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = utf8_char_length(s, i);
        chars.push_back(Value::string(s.substr(i, len)));
        i += len;
      }
      return chars;
    }
    default:
      return type_error(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

Result<Value> call_method(const Value& receiver, std::string_view name, CallArgs args,
                          Budget& budget) {
  if (receiver.is_string())
    return string_method(receiver.as_string(), name, std::move(args), budget);
  if (receiver.is_dict()) return dict_method(receiver.as_dict(), name, std::move(args), budget);
  if (receiver.is_list() && has_method(receiver, name))
    return list_method(receiver.as_list(), name, std::move(args));
  return type_error(fmt::format("'{}' object has no method '{}'", type_name(receiver), name));
}

std::vector<std::string_view> global_function_names(bool with_clock) {
  std::vector<std::string_view> names = {"range", "dict", "namespace", "raise_exception"};
  if (with_clock) names.push_back("strftime_now");
  return names;
}

Result<Value> call_global(std::string_view name, CallArgs args, Budget& budget,
                          std::optional<std::int64_t> unix_time_s) {
  if (name == "range") return range_function(std::move(args), budget);
  if (name == "dict") {
    SPW_ASSIGN_OR_RETURN(auto items, dict_items(name, std::move(args), budget));
    Value d = Value::dict(std::move(items));
    SPW_TRY(budget.nesting(d));
    return d;
  }
  if (name == "namespace") {
    SPW_ASSIGN_OR_RETURN(auto items, dict_items(name, std::move(args), budget));
    auto ns = std::make_shared<Namespace>();
    for (auto& [key, value] : items) {
      if (!key.is_string()) return type_error("namespace() keywords must be strings");
      if (contains_namespace(value)) return type_error("a namespace cannot hold another namespace");
      ns->set(key.as_string(), std::move(value));
    }
    return Value::namespace_object(std::move(ns));
  }
  if (name == "raise_exception") {
    ArgReader r(name, args);
    SPW_ASSIGN_OR_RETURN(Value message, r.optional("message", Value::string("")));
    SPW_TRY(r.done());
    SPW_ASSIGN_OR_RETURN(std::string text, to_str(message, budget.limits().max_output_bytes));
    return Error(ErrorCode::kInvalidArgument, std::move(text));
  }
  if (name == "strftime_now" && unix_time_s.has_value())
    return strftime_function(std::move(args), *unix_time_s, budget);
  return type_error(fmt::format("'{}' is not a function", name));
}

}  // namespace spillway::serve::jinja
