#include "serve/jinja_value.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "serve/jinja_strings.h"

namespace spillway::serve::jinja {
namespace {

Error type_error(std::string message) {
  return Error(ErrorCode::kFailedPrecondition, std::move(message));
}

Error too_large(std::size_t max_bytes) {
  return make_error(ErrorCode::kOutOfRange, "string exceeds the limit of {} bytes", max_bytes);
}

std::size_t child_depth(const Value& v) {
  return v.depth();
}

double as_double(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kBool:
      return v.as_bool() ? 1.0 : 0.0;
    case Value::Kind::kInt:
      return static_cast<double>(v.as_int());
    default:
      return v.as_float();
  }
}

std::int64_t as_integer(const Value& v) {
  return v.kind() == Value::Kind::kBool ? (v.as_bool() ? 1 : 0) : v.as_int();
}

bool numbers_equal(const Value& a, const Value& b) {
  if (a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat)
    return as_integer(a) == as_integer(b);
  return as_double(a) == as_double(b);
}

bool numbers_less(const Value& a, const Value& b) {
  if (a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat)
    return as_integer(a) < as_integer(b);
  return as_double(a) < as_double(b);
}

Status append_repr(const Value& v, std::string* out, std::size_t max_bytes);

Status check_size(const std::string* out, std::size_t max_bytes) {
  if (out->size() > max_bytes) return too_large(max_bytes);
  return {};
}

Status append_sequence(const List& list, std::string* out, std::size_t max_bytes) {
  if (list.iterator()) {
    *out += "<generator object>";
    return {};
  }
  out->push_back(list.tuple() ? '(' : '[');
  for (std::size_t i = 0; i < list.items.size(); ++i) {
    if (i > 0) *out += ", ";
    SPW_TRY(append_repr(list.items[i], out, max_bytes));
  }
  if (list.tuple() && list.items.size() == 1) out->push_back(',');
  out->push_back(list.tuple() ? ')' : ']');
  return check_size(out, max_bytes);
}

Status append_mapping(const std::vector<std::pair<Value, Value>>& items, std::string* out,
                      std::size_t max_bytes) {
  out->push_back('{');
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) *out += ", ";
    SPW_TRY(append_repr(items[i].first, out, max_bytes));
    *out += ": ";
    SPW_TRY(append_repr(items[i].second, out, max_bytes));
  }
  out->push_back('}');
  return check_size(out, max_bytes);
}

Status append_namespace(const Namespace& ns, std::string* out, std::size_t max_bytes) {
  *out += "<Namespace {";
  for (std::size_t i = 0; i < ns.attributes.size(); ++i) {
    if (i > 0) *out += ", ";
    append_python_repr(ns.attributes[i].first, out);
    *out += ": ";
    SPW_TRY(append_repr(ns.attributes[i].second, out, max_bytes));
  }
  *out += "}>";
  return check_size(out, max_bytes);
}

void append_callable(const Callable& c, std::string* out) {
  switch (c.kind) {
    case Callable::Kind::kGlobal:
      *out += fmt::format("<function {}>", c.name);
      break;
    case Callable::Kind::kMethod:
      *out += fmt::format("<built-in method {} of {} object>", c.name, type_name(c.receiver));
      break;
    case Callable::Kind::kMacro:
      *out += fmt::format("<Macro '{}'>", c.name);
      break;
    case Callable::Kind::kLoopCycle:
      *out += "<bound method LoopContext.cycle>";
      break;
  }
}

// str() and repr() differ only for strings and Undefined at the top level.
Status append_common(const Value& v, std::string* out, std::size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kNone:
      *out += "None";
      break;
    case Value::Kind::kBool:
      *out += v.as_bool() ? "True" : "False";
      break;
    case Value::Kind::kInt:
      *out += fmt::format("{}", v.as_int());
      break;
    case Value::Kind::kFloat:
      *out += format_python_float(v.as_float());
      break;
    case Value::Kind::kList:
      return append_sequence(v.as_list(), out, max_bytes);
    case Value::Kind::kDict:
      return append_mapping(v.as_dict().items, out, max_bytes);
    case Value::Kind::kNamespace:
      return append_namespace(v.as_namespace(), out, max_bytes);
    case Value::Kind::kCallable:
      append_callable(v.as_callable(), out);
      break;
    case Value::Kind::kUndefined:
    case Value::Kind::kString:
      break;  // Handled by the callers.
  }
  return check_size(out, max_bytes);
}

Status append_repr(const Value& v, std::string* out, std::size_t max_bytes) {
  if (v.is_string()) {
    append_python_repr(v.as_string(), out);
    return check_size(out, max_bytes);
  }
  if (v.is_undefined()) {
    *out += "Undefined";
    return {};
  }
  return append_common(v, out, max_bytes);
}

// json.dumps turns non-string keys into strings.
Result<std::string> json_key(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::kString:
      return key.as_string();
    case Value::Kind::kNone:
      return std::string("null");
    case Value::Kind::kBool:
      return std::string(key.as_bool() ? "true" : "false");
    case Value::Kind::kInt:
      return fmt::format("{}", key.as_int());
    case Value::Kind::kFloat:
      return format_python_float(key.as_float());
    default:
      return type_error(
          fmt::format("keys must be str, int, float, bool or None, not {}", type_name(key)));
  }
}

class JsonWriter {
 public:
  JsonWriter(const JsonOptions& options, std::size_t max_bytes)
      : options_(options), max_bytes_(max_bytes) {}

  Status write(const Value& v, std::size_t level) {
    switch (v.kind()) {
      case Value::Kind::kNone:
        out_ += "null";
        break;
      case Value::Kind::kBool:
        out_ += v.as_bool() ? "true" : "false";
        break;
      case Value::Kind::kInt:
        out_ += fmt::format("{}", v.as_int());
        break;
      case Value::Kind::kFloat: {
        const double d = v.as_float();
        if (std::isnan(d)) {
          out_ += "NaN";
        } else if (std::isinf(d)) {
          out_ += d < 0 ? "-Infinity" : "Infinity";
        } else {
          out_ += format_python_float(d);
        }
        break;
      }
      case Value::Kind::kString:
        append_json_string(v.as_string(), options_.ensure_ascii, &out_);
        break;
      case Value::Kind::kList:
        if (v.as_list().iterator())
          return type_error("Object of type generator is not JSON serializable");
        return write_list(v.as_list().items, level);
      case Value::Kind::kDict:
        return write_dict(v.as_dict().items, level);
      case Value::Kind::kUndefined:
      case Value::Kind::kNamespace:
      case Value::Kind::kCallable:
        return type_error(fmt::format("Object of type {} is not JSON serializable", type_name(v)));
    }
    return check_size(&out_, max_bytes_);
  }

  std::string take() { return std::move(out_); }

 private:
  // Python's json encoder layout: items separated by item_separator, and when indenting, each
  // item on its own line indented by (level + 1) units and the bracket by `level` units.
  void open(char bracket, std::size_t level) {
    out_.push_back(bracket);
    newline(level + 1);
  }
  void separate(std::size_t level) {
    out_ += options_.item_separator;
    newline(level + 1);
  }
  void close(char bracket, std::size_t level) {
    newline(level);
    out_.push_back(bracket);
  }
  void newline(std::size_t level) {
    if (!options_.indent.has_value()) return;
    out_.push_back('\n');
    for (std::size_t i = 0; i < level; ++i)
      out_ += *options_.indent;
  }

  Status write_list(const std::vector<Value>& items, std::size_t level) {
    if (items.empty()) {
      out_ += "[]";
      return {};
    }
    open('[', level);
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) separate(level);
      SPW_TRY(write(items[i], level + 1));
    }
    close(']', level);
    return check_size(&out_, max_bytes_);
  }

  Status write_dict(const std::vector<std::pair<Value, Value>>& items, std::size_t level) {
    if (items.empty()) {
      out_ += "{}";
      return {};
    }
    std::vector<const std::pair<Value, Value>*> order;
    order.reserve(items.size());
    for (const auto& item : items)
      order.push_back(&item);
    if (options_.sort_keys) {
      Status failed;
      std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
        auto r = less(a->first, b->first);
        if (!r.ok()) {
          if (failed.ok()) failed = r.status();
          return false;
        }
        return *r;
      });
      SPW_TRY(failed);
    }
    open('{', level);
    for (std::size_t i = 0; i < order.size(); ++i) {
      if (i > 0) separate(level);
      SPW_ASSIGN_OR_RETURN(const std::string key, json_key(order[i]->first));
      append_json_string(key, options_.ensure_ascii, &out_);
      out_ += options_.key_separator;
      SPW_TRY(write(order[i]->second, level + 1));
    }
    close('}', level);
    return check_size(&out_, max_bytes_);
  }

  const JsonOptions& options_;
  std::size_t max_bytes_;
  std::string out_;
};

}  // namespace

Value Value::undefined(std::string hint) {
  Value v;
  v.data_ = std::move(hint);
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.data_ = b;
  return v;
}

Value Value::integer(std::int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.data_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.data_ = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.data_ = std::move(s);
  return v;
}

Value Value::list(std::vector<Value> items, ListKind kind) {
  auto l = std::make_shared<List>();
  for (const Value& item : items)
    l->depth = std::max(l->depth, child_depth(item) + 1);
  l->items = std::move(items);
  l->kind = kind;
  Value v;
  v.kind_ = Kind::kList;
  v.data_ = std::shared_ptr<const List>(std::move(l));
  return v;
}

Value Value::failed_iterator(std::string error) {
  auto l = std::make_shared<List>();
  l->kind = ListKind::kIterator;
  l->error = std::move(error);
  Value v;
  v.kind_ = Kind::kList;
  v.data_ = std::shared_ptr<const List>(std::move(l));
  return v;
}

Value Value::dict(std::vector<std::pair<Value, Value>> items) {
  auto d = std::make_shared<Dict>();
  for (const auto& [key, value] : items)
    d->depth = std::max({d->depth, child_depth(key) + 1, child_depth(value) + 1});
  d->items = std::move(items);
  Value v;
  v.kind_ = Kind::kDict;
  v.data_ = std::shared_ptr<const Dict>(std::move(d));
  return v;
}

Value Value::namespace_object(std::shared_ptr<Namespace> ns) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.data_ = std::move(ns);
  return v;
}

Value Value::callable(Callable c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.data_ = std::make_shared<const Callable>(std::move(c));
  return v;
}

const List& Value::as_list() const {
  return *std::get<std::shared_ptr<const List>>(data_);
}

const Dict& Value::as_dict() const {
  return *std::get<std::shared_ptr<const Dict>>(data_);
}

Namespace& Value::as_namespace() const {
  return *std::get<std::shared_ptr<Namespace>>(data_);
}

const Callable& Value::as_callable() const {
  return *std::get<std::shared_ptr<const Callable>>(data_);
}

std::string Value::undefined_message() const {
  const auto* hint = std::get_if<std::string>(&data_);
  return hint != nullptr && !hint->empty() ? *hint : std::string("value is undefined");
}

std::size_t Value::depth() const {
  switch (kind_) {
    case Kind::kList:
      return as_list().depth;
    case Kind::kDict:
      return as_dict().depth;
    case Kind::kNamespace:
      return as_namespace().depth();
    default:
      return 0;
  }
}

const Value* Dict::find(const Value& key) const {
  for (const auto& item : items)
    if (equals(item.first, key)) return &item.second;
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& item : items)
    if (item.first.is_string() && item.first.as_string() == key) return &item.second;
  return nullptr;
}

const Value* Namespace::find(std::string_view name) const {
  for (const auto& attribute : attributes)
    if (attribute.first == name) return &attribute.second;
  return nullptr;
}

void Namespace::set(std::string_view name, Value value) {
  for (auto& attribute : attributes) {
    if (attribute.first == name) {
      attribute.second = std::move(value);
      return;
    }
  }
  attributes.emplace_back(std::string(name), std::move(value));
}

std::size_t Namespace::depth() const {
  std::size_t d = 1;
  for (const auto& attribute : attributes)
    d = std::max(d, attribute.second.depth() + 1);
  return d;
}

std::string_view type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.as_list().tuple() ? "tuple" : (v.as_list().iterator() ? "generator" : "list");
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    case Value::Kind::kCallable:
      return v.as_callable().kind == Callable::Kind::kMacro ? "Macro" : "function";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_float() != 0.0;
    case Value::Kind::kString:
      return !v.as_string().empty();
    case Value::Kind::kList:
      return v.as_list().iterator() || !v.as_list().items.empty();
    case Value::Kind::kDict:
      return !v.as_dict().items.empty();
    case Value::Kind::kNamespace:
    case Value::Kind::kCallable:
      return true;
  }
  return false;
}

bool contains_namespace(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNamespace:
      return true;
    case Value::Kind::kList:
      return std::any_of(v.as_list().items.begin(), v.as_list().items.end(), contains_namespace);
    case Value::Kind::kDict:
      for (const auto& [key, value] : v.as_dict().items)
        if (contains_namespace(key) || contains_namespace(value)) return true;
      return false;
    case Value::Kind::kCallable:
      return contains_namespace(v.as_callable().receiver);
    default:
      return false;
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return numbers_equal(a, b);
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      const List& x = a.as_list();
      const List& y = b.as_list();
      if (&x == &y) return true;
      if (x.kind != y.kind || x.iterator() || x.items.size() != y.items.size()) return false;
      for (std::size_t i = 0; i < x.items.size(); ++i)
        if (!equals(x.items[i], y.items[i])) return false;
      return true;
    }
    case Value::Kind::kDict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (&x == &y) return true;
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [key, value] : x.items) {
        const Value* other = y.find(key);
        if (other == nullptr || !equals(value, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.as_namespace() == &b.as_namespace();
    case Value::Kind::kCallable: {
      const Callable& x = a.as_callable();
      const Callable& y = b.as_callable();
      return x.kind == y.kind && x.name == y.name && x.macro == y.macro &&
             equals(x.receiver, y.receiver);
    }
    default:
      return false;  // Numbers were handled above.
  }
}

Result<bool> less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return numbers_less(a, b);
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list() && a.as_list().kind == b.as_list().kind &&
      !a.as_list().iterator()) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  if (a.is_undefined()) return type_error(a.undefined_message());
  if (b.is_undefined()) return type_error(b.undefined_message());
  return type_error(fmt::format("'<' not supported between instances of '{}' and '{}'",
                                type_name(a), type_name(b)));
}

Status append_str(const Value& v, std::string* out, std::size_t max_bytes) {
  if (v.is_undefined()) return {};
  if (v.is_string()) {
    if (out->size() + v.as_string().size() > max_bytes) return too_large(max_bytes);
    *out += v.as_string();
    return {};
  }
  return append_common(v, out, max_bytes);
}

Result<std::string> to_str(const Value& v, std::size_t max_bytes) {
  if (v.is_string()) return v.as_string();
  std::string out;
  SPW_TRY(append_str(v, &out, max_bytes));
  return out;
}

Result<std::string> to_json(const Value& v, const JsonOptions& options, std::size_t max_bytes) {
  JsonWriter writer(options, max_bytes);
  SPW_TRY(writer.write(v, 0));
  return writer.take();
}

}  // namespace spillway::serve::jinja
