// Reading JSON request bodies (internal to the request parsers): parsing within `ApiLimits`,
// and typed access to fields with errors that name the parameter (see api_error.h).
//
// Conventions, as OpenAI's API behaves: a field set to JSON null counts as absent; numbers are
// accepted as integers when they have no fraction (16.0 is 16); unknown fields are ignored
// (callers simply never look them up).
//
// Thread-safety: pure functions; a FieldReader is a view of an object owned by the caller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include "core/status.h"

#include "openai/api_limits.h"

namespace spillway::openai {

// Parses `body` as one JSON object. Errors: kPayloadTooLarge when the body is longer than
// `max_body_bytes`; kInvalidArgument for malformed JSON, with line and column (1-based,
// columns in bytes); kOutOfRange when nesting exceeds `max_json_depth`; kInvalidArgument when
// the top level is not an object. The result allocates from `storage`, which must outlive it.
[[nodiscard]] Result<boost::json::object> parse_request_object(std::string_view body,
                                                               const ApiLimits& limits,
                                                               boost::json::storage_ptr storage);

// "a string", "an integer", "a number", "a boolean", "an array", "an object", "null".
[[nodiscard]] std::string_view json_kind_name(const boost::json::value& value);

// A range of accepted numbers; infinite bounds mean unbounded on that side.
struct NumberRange {
  double min;
  double max;
  bool min_exclusive = false;
  bool max_exclusive = false;
};

// A client's string for an error message: quoted, and cut to at most 48 bytes (on a UTF-8
// character boundary) with "..." so a huge value cannot make a huge error.
[[nodiscard]] std::string quote_for_error(std::string_view text);

// Value-level checks; their errors name no param (wrap them with `with_param`).
[[nodiscard]] Result<std::string_view> json_string(const boost::json::value& value);
[[nodiscard]] Result<bool> json_bool(const boost::json::value& value);
[[nodiscard]] Result<std::int64_t> json_integer(const boost::json::value& value, std::int64_t min,
                                                std::int64_t max);
[[nodiscard]] Result<double> json_number(const boost::json::value& value, NumberRange range);

// Typed access to the fields of one object of a request, at `path` ("" for the body itself,
// "messages[2]", "stream_options"). Errors name the parameter as "<path>.<key>".
class FieldReader {
 public:
  FieldReader(const boost::json::object& object, std::string path)
      : object_(object), path_(std::move(path)) {}

  // The field, or nullptr when absent or null.
  [[nodiscard]] const boost::json::value* find(std::string_view key) const;
  [[nodiscard]] std::string param(std::string_view key) const;
  // An error about field `key`.
  [[nodiscard]] Error error(ErrorCode code, std::string_view key, std::string_view problem) const;

  // Absent or null: nullopt. Present with a wrong type or out of range: an error.
  [[nodiscard]] Result<std::optional<std::string>> optional_string(std::string_view key) const;
  [[nodiscard]] Result<std::optional<bool>> optional_bool(std::string_view key) const;
  [[nodiscard]] Result<std::optional<std::int64_t>> optional_integer(std::string_view key,
                                                                     std::int64_t min,
                                                                     std::int64_t max) const;
  [[nodiscard]] Result<std::optional<double>> optional_number(std::string_view key,
                                                              NumberRange range) const;
  // Absent or null: an error naming the field.
  [[nodiscard]] Result<std::string> required_string(std::string_view key) const;

 private:
  const boost::json::object& object_;
  std::string path_;
};

}  // namespace spillway::openai
