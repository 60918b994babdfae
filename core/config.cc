#include "core/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <fstream>
#include <limits>
#include <sstream>

namespace spillway {

struct ConfigState {
  std::string source_name;
  toml::table root;
};

namespace {

const toml::table* as_table(const void* p) {
  return static_cast<const toml::table*>(p);
}
const toml::node* as_node(const void* p) {
  return static_cast<const toml::node*>(p);
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      return "nothing";
  }
  return "an unknown value";
}

}  // namespace

Result<ConfigDocument> ConfigDocument::parse(std::string_view text, std::string source_name) {
  if (text.size() > kMaxConfigFileBytes) {
    return make_error(ErrorCode::kPayloadTooLarge, "{}: config is {} bytes; the limit is {}",
                      source_name, text.size(), kMaxConfigFileBytes);
  }
  auto state = std::make_shared<ConfigState>();
  // The system toml++ is built with exceptions: parse errors arrive as toml::parse_error and
  // are turned into an Error here, at the boundary.
  try {
    state->root = toml::parse(text, source_name);
  } catch (const toml::parse_error& err) {
    return make_error(ErrorCode::kInvalidArgument, "{}:{}:{}: {}", source_name,
                      err.source().begin.line, err.source().begin.column, err.description());
  }
  state->source_name = std::move(source_name);
  return ConfigDocument(std::move(state));
}

Result<ConfigDocument> ConfigDocument::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "{}: cannot open config file", path);
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigFileBytes) {
      return make_error(ErrorCode::kPayloadTooLarge, "{}: config file exceeds {} bytes", path,
                        kMaxConfigFileBytes);
    }
  }
  return parse(text, path);
}

ConfigTable ConfigDocument::root() const {
  return ConfigTable(state_, &state_->root, "");
}
const std::string& ConfigDocument::source_name() const {
  return state_->source_name;
}

const void* ConfigTable::node(std::string_view key) const {
  return as_table(table_)->get(key);
}

bool ConfigTable::has(std::string_view key) const {
  return node(key) != nullptr;
}

std::vector<std::string> ConfigTable::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : *as_table(table_))
    out.emplace_back(k.str());
  return out;
}

std::string ConfigTable::key_path(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return fmt::format("{}.{}", path_, key);
}

Error ConfigTable::located(const void* n, std::string_view key, std::string_view message) const {
  const toml::source_region& src = n != nullptr ? as_node(n)->source() : as_table(table_)->source();
  const std::string where = key.empty() ? (path_.empty() ? "(root)" : path_) : key_path(key);
  return Error(ErrorCode::kInvalidArgument,
               fmt::format("{}:{}:{}: {}: {}", state_->source_name, src.begin.line,
                           src.begin.column, where, message));
}

Error ConfigTable::error_at(std::string_view key, std::string_view message) const {
  return located(node(key), key, message);
}

Error ConfigTable::missing(std::string_view key) const {
  return located(nullptr, key, "required key is missing");
}

Error ConfigTable::wrong_type(const void* n, std::string_view key,
                              std::string_view expected) const {
  return located(n, key, fmt::format("expected {}, got {}", expected, type_name(*as_node(n))));
}

Result<std::string> ConfigTable::string(std::string_view key) const {
  const void* n = node(key);
  if (n == nullptr) return missing(key);
  const auto* v = as_node(n)->as_string();
  if (v == nullptr) return wrong_type(n, key, "a string");
  return v->get();
}

Result<std::int64_t> ConfigTable::integer(std::string_view key, std::int64_t min,
                                          std::int64_t max) const {
  const void* n = node(key);
  if (n == nullptr) return missing(key);
  const auto* v = as_node(n)->as_integer();
  if (v == nullptr) return wrong_type(n, key, "an integer");
  const std::int64_t x = v->get();
  if (x < min || x > max) {
    return located(n, key, fmt::format("{} is out of range [{}, {}]", x, min, max));
  }
  return x;
}

Result<double> ConfigTable::number(std::string_view key, double min, double max) const {
  const void* n = node(key);
  if (n == nullptr) return missing(key);
  double x = 0;
  if (const auto* f = as_node(n)->as_floating_point()) {
    x = f->get();
  } else if (const auto* i = as_node(n)->as_integer()) {
    x = static_cast<double>(i->get());
  } else {
    return wrong_type(n, key, "a number");
  }
  if (!(x >= min && x <= max)) {  // Also rejects NaN.
    return located(n, key, fmt::format("{} is out of range [{}, {}]", x, min, max));
  }
  return x;
}

Result<bool> ConfigTable::boolean(std::string_view key) const {
  const void* n = node(key);
  if (n == nullptr) return missing(key);
  const auto* v = as_node(n)->as_boolean();
  if (v == nullptr) return wrong_type(n, key, "a boolean");
  return v->get();
}

Result<ConfigTable> ConfigTable::table(std::string_view key) const {
  const void* n = node(key);
  if (n == nullptr) return missing(key);
  const toml::table* t = as_node(n)->as_table();
  if (t == nullptr) return wrong_type(n, key, "a table");
  return ConfigTable(state_, t, key_path(key));
}

Result<std::vector<ConfigTable>> ConfigTable::tables(std::string_view key) const {
  const void* n = node(key);
  if (n == nullptr) return missing(key);
  const toml::array* arr = as_node(n)->as_array();
  if (arr == nullptr) return wrong_type(n, key, "an array of tables");
  std::vector<ConfigTable> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::node& element = *arr->get(i);
    const toml::table* t = element.as_table();
    const std::string element_path = fmt::format("{}[{}]", key_path(key), i);
    if (t == nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{}:{}:{}: {}: expected a table, got {}", state_->source_name,
                               element.source().begin.line, element.source().begin.column,
                               element_path, type_name(element)));
    }
    out.push_back(ConfigTable(state_, t, element_path));
  }
  return out;
}

Result<std::vector<std::string>> ConfigTable::strings(std::string_view key) const {
  const void* n = node(key);
  if (n == nullptr) return missing(key);
  const toml::array* arr = as_node(n)->as_array();
  if (arr == nullptr) return wrong_type(n, key, "an array of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const auto* s = arr->get(i)->as_string();
    if (s == nullptr) {
      return located(arr->get(i), fmt::format("{}[{}]", key, i),
                     fmt::format("expected a string, got {}", type_name(*arr->get(i))));
    }
    out.push_back(s->get());
  }
  return out;
}

Result<std::string> ConfigTable::string_or(std::string_view key, std::string fallback) const {
  if (!has(key)) return fallback;
  return string(key);
}

Result<std::int64_t> ConfigTable::integer_or(std::string_view key, std::int64_t fallback,
                                             std::int64_t min, std::int64_t max) const {
  if (!has(key)) return fallback;
  return integer(key, min, max);
}

Result<double> ConfigTable::number_or(std::string_view key, double fallback, double min,
                                      double max) const {
  if (!has(key)) return fallback;
  return number(key, min, max);
}

Result<bool> ConfigTable::boolean_or(std::string_view key, bool fallback) const {
  if (!has(key)) return fallback;
  return boolean(key);
}

Status ConfigTable::check_keys(std::initializer_list<std::string_view> allowed) const {
  for (const auto& [k, v] : *as_table(table_)) {
    bool known = false;
    for (std::string_view a : allowed)
      known = known || a == k.str();
    if (!known) {
      return located(&v, k.str(),
                     fmt::format("unknown key (allowed here: {})", fmt::join(allowed, ", ")));
    }
  }
  return Status();
}

}  // namespace spillway
