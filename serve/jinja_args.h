// Internal to the Jinja builtins: binding call arguments to parameters the way Python does
// (positionally, then by keyword; unknown or surplus arguments are errors), and the argument
// conversions the builtins share.
//
// Thread-safety: an ArgReader belongs to one call.
#pragma once

#include <fmt/core.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

#include "serve/jinja_builtins.h"

namespace spillway::serve::jinja {

[[nodiscard]] inline Error type_error(std::string message) {
  return Error(ErrorCode::kFailedPrecondition, std::move(message));
}

// Reads the arguments of one call in parameter order.
class ArgReader {
 public:
  ArgReader(std::string_view function, CallArgs& args) : function_(function), args_(args) {}

  // The next parameter, `name`: the next positional argument, else the keyword argument of
  // that name, else nothing.
  [[nodiscard]] Result<std::optional<Value>> next(std::string_view name) {
    for (auto it = args_.keyword.begin(); it != args_.keyword.end(); ++it) {
      if (it->first != name) continue;
      if (position_ < args_.positional.size()) {
        return type_error(
            fmt::format("{}() got multiple values for argument '{}'", function_, name));
      }
      Value v = std::move(it->second);
      args_.keyword.erase(it);
      return std::optional<Value>(std::move(v));
    }
    if (position_ < args_.positional.size())
      return std::optional<Value>(std::move(args_.positional[position_++]));
    return std::optional<Value>();
  }

  [[nodiscard]] Result<Value> required(std::string_view name) {
    SPW_ASSIGN_OR_RETURN(std::optional<Value> v, next(name));
    if (!v.has_value())
      return type_error(fmt::format("{}() missing required argument '{}'", function_, name));
    return std::move(*v);
  }

  [[nodiscard]] Result<Value> optional(std::string_view name, Value fallback) {
    SPW_ASSIGN_OR_RETURN(std::optional<Value> v, next(name));
    return v.has_value() ? std::move(*v) : std::move(fallback);
  }

  // The positional arguments not yet read (for *args parameters).
  [[nodiscard]] std::vector<Value> rest() {
    std::vector<Value> out;
    while (position_ < args_.positional.size())
      out.push_back(std::move(args_.positional[position_++]));
    return out;
  }

  // Fails when arguments are left over.
  [[nodiscard]] Status done() const {
    if (position_ < args_.positional.size()) {
      return type_error(fmt::format("{}() takes at most {} positional arguments ({} given)",
                                    function_, position_, args_.positional.size()));
    }
    if (!args_.keyword.empty()) {
      return type_error(fmt::format("{}() got an unexpected keyword argument '{}'", function_,
                                    args_.keyword.front().first));
    }
    return {};
  }

 private:
  std::string_view function_;
  CallArgs& args_;
  std::size_t position_ = 0;
};

// An int argument (bool counts, as in Python).
[[nodiscard]] inline Result<std::int64_t> int_arg(std::string_view function, std::string_view name,
                                                  const Value& v) {
  if (v.kind() == Value::Kind::kInt) return v.as_int();
  if (v.kind() == Value::Kind::kBool) return std::int64_t{v.as_bool() ? 1 : 0};
  if (v.is_undefined()) return type_error(v.undefined_message());
  return type_error(
      fmt::format("{}(): '{}' must be an integer, not '{}'", function, name, type_name(v)));
}

[[nodiscard]] inline Result<std::string> string_arg(std::string_view function,
                                                    std::string_view name, const Value& v) {
  if (v.is_string()) return v.as_string();
  if (v.is_undefined()) return type_error(v.undefined_message());
  return type_error(
      fmt::format("{}(): '{}' must be a string, not '{}'", function, name, type_name(v)));
}

}  // namespace spillway::serve::jinja
