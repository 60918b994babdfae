#include "openai/request_json.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <boost/json/error.hpp>
#include <boost/json/parser.hpp>

#include "openai/api_error.h"

namespace spillway::openai {
namespace {

namespace json = boost::json;

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

struct TextPosition {
  std::size_t line = 1;
  std::size_t column = 1;
};

TextPosition position_of(std::string_view text, std::size_t offset) {
  TextPosition p;
  const std::string_view before = text.substr(0, offset);
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < before.size(); ++i) {
    if (before[i] == '\n') {
      ++p.line;
      line_start = i + 1;
    }
  }
  p.column = offset - line_start + 1;
  return p;
}

Error type_error(std::string_view expected, const json::value& got) {
  return make_error(ErrorCode::kInvalidArgument, "expected {}, got {}", expected,
                    json_kind_name(got));
}

std::string describe_range(NumberRange r) {
  const bool has_min = std::isfinite(r.min);
  const bool has_max = std::isfinite(r.max);
  if (has_min && has_max) {
    return fmt::format("in {}{}, {}{}", r.min_exclusive ? "(" : "[", r.min, r.max,
                       r.max_exclusive ? ")" : "]");
  }
  if (has_min) return fmt::format("{} {}", r.min_exclusive ? "greater than" : "at least", r.min);
  if (has_max) return fmt::format("{} {}", r.max_exclusive ? "less than" : "at most", r.max);
  return "finite";
}

bool in_range(double v, NumberRange r) {
  if (r.min_exclusive ? !(v > r.min) : !(v >= r.min)) return false;
  if (r.max_exclusive ? !(v < r.max) : !(v <= r.max)) return false;
  return true;
}

Error integer_range_error(std::int64_t min, std::int64_t max, std::string_view got) {
  if (min == std::numeric_limits<std::int64_t>::min() && max == kInt64Max) {
    return make_error(ErrorCode::kInvalidArgument, "must be a 64-bit signed integer, got {}", got);
  }
  if (max == kInt64Max) {
    return make_error(ErrorCode::kInvalidArgument, "must be at least {}, got {}", min, got);
  }
  return make_error(ErrorCode::kInvalidArgument, "must be in [{}, {}], got {}", min, max, got);
}

}  // namespace

Result<json::object> parse_request_object(std::string_view body, const ApiLimits& limits,
                                          json::storage_ptr storage) {
  if (body.size() > limits.max_body_bytes) {
    return make_error(ErrorCode::kPayloadTooLarge,
                      "request body is {} bytes, more than the limit of {} bytes", body.size(),
                      limits.max_body_bytes);
  }
  json::parse_options options;
  options.max_depth = limits.max_json_depth;
  // The parser's working stack lives here for typical bodies and grows on the heap only for
  // deep ones.
  unsigned char scratch[2048];
  json::parser parser(json::storage_ptr(), options, scratch, sizeof(scratch));
  parser.reset(std::move(storage));
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(body.data(), body.size(), ec);
  if (ec) {
    const TextPosition at = position_of(body, std::min(consumed, body.size()));
    if (ec == json::error::too_deep) {
      return make_error(ErrorCode::kOutOfRange,
                        "invalid JSON at line {}, column {}: nested deeper than {} levels", at.line,
                        at.column, limits.max_json_depth);
    }
    return make_error(ErrorCode::kInvalidArgument, "invalid JSON at line {}, column {}: {}",
                      at.line, at.column, ec.message());
  }
  json::value value = parser.release();
  if (!value.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "request body must be a JSON object, got {}",
                      json_kind_name(value));
  }
  return std::move(value.get_object());
}

std::string quote_for_error(std::string_view text) {
  constexpr std::size_t kMaxBytes = 48;
  if (text.size() <= kMaxBytes) return fmt::format("'{}'", text);
  std::size_t cut = kMaxBytes;
  // Back up to the start of a character (continuation bytes are 10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;
  return fmt::format("'{}...'", text.substr(0, cut));
}

std::string_view json_kind_name(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

Result<std::string_view> json_string(const json::value& value) {
  if (!value.is_string()) return type_error("a string", value);
  const json::string& s = value.get_string();
  return std::string_view(s.data(), s.size());
}

Result<bool> json_bool(const json::value& value) {
  if (!value.is_bool()) return type_error("a boolean", value);
  return value.get_bool();
}

Result<std::int64_t> json_integer(const json::value& value, std::int64_t min, std::int64_t max) {
  std::int64_t v = 0;
  switch (value.kind()) {
    case json::kind::int64:
      v = value.get_int64();
      break;
    case json::kind::uint64:
      // Only values above the int64 range are stored as uint64.
      return integer_range_error(min, max, fmt::format("{}", value.get_uint64()));
    case json::kind::double_: {
      const double d = value.get_double();
      if (!std::isfinite(d) || std::trunc(d) != d) {
        return make_error(ErrorCode::kInvalidArgument, "expected an integer, got {}", d);
      }
      // 2^63 as a double; anything at or beyond it (or below -2^63) does not fit.
      if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
        return integer_range_error(min, max, fmt::format("{}", d));
      }
      v = static_cast<std::int64_t>(d);
      break;
    }
    default:
      return type_error("an integer", value);
  }
  if (v < min || v > max) return integer_range_error(min, max, fmt::format("{}", v));
  return v;
}

Result<double> json_number(const json::value& value, NumberRange range) {
  double v = 0;
  switch (value.kind()) {
    case json::kind::int64:
      v = static_cast<double>(value.get_int64());
      break;
    case json::kind::uint64:
      v = static_cast<double>(value.get_uint64());
      break;
    case json::kind::double_:
      v = value.get_double();
      break;
    default:
      return type_error("a number", value);
  }
  if (!std::isfinite(v)) {
    return make_error(ErrorCode::kInvalidArgument, "must be a finite number");
  }
  if (!in_range(v, range)) {
    return make_error(ErrorCode::kInvalidArgument, "must be {}, got {}", describe_range(range), v);
  }
  return v;
}

const json::value* FieldReader::find(std::string_view key) const {
  // A request object holds a handful of keys and is asked for every known parameter (about
  // 25 on a chat request, most absent): a scan comparing lengths first costs a fraction of
  // the library's hashed lookup. Large objects keep the hashed one. The parser keeps one
  // entry per key (the last duplicate), so both find the same value.
  constexpr std::size_t kScanMaxKeys = 16;
  const json::value* v = nullptr;
  if (object_.size() <= kScanMaxKeys) {
    for (const json::key_value_pair& field : object_) {
      const json::string_view k = field.key();
      if (k.size() == key.size() && std::memcmp(k.data(), key.data(), key.size()) == 0) {
        v = &field.value();
        break;
      }
    }
  } else {
    v = object_.if_contains(key);
  }
  if (v == nullptr || v->is_null()) return nullptr;
  return v;
}

std::string FieldReader::param(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return fmt::format("{}.{}", path_, key);
}

Error FieldReader::error(ErrorCode code, std::string_view key, std::string_view problem) const {
  return request_error(code, param(key), problem);
}

Result<std::optional<std::string>> FieldReader::optional_string(std::string_view key) const {
  const json::value* v = find(key);
  if (v == nullptr) return std::optional<std::string>();
  Result<std::string_view> s = json_string(*v);
  if (!s.ok()) return with_param(s.error(), param(key));
  return std::optional<std::string>(std::string(*s));
}

Result<std::optional<bool>> FieldReader::optional_bool(std::string_view key) const {
  const json::value* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  Result<bool> b = json_bool(*v);
  if (!b.ok()) return with_param(b.error(), param(key));
  return std::optional<bool>(*b);
}

Result<std::optional<std::int64_t>> FieldReader::optional_integer(std::string_view key,
                                                                  std::int64_t min,
                                                                  std::int64_t max) const {
  const json::value* v = find(key);
  if (v == nullptr) return std::optional<std::int64_t>();
  Result<std::int64_t> i = json_integer(*v, min, max);
  if (!i.ok()) return with_param(i.error(), param(key));
  return std::optional<std::int64_t>(*i);
}

Result<std::optional<double>> FieldReader::optional_number(std::string_view key,
                                                           NumberRange range) const {
  const json::value* v = find(key);
  if (v == nullptr) return std::optional<double>();
  Result<double> d = json_number(*v, range);
  if (!d.ok()) return with_param(d.error(), param(key));
  return std::optional<double>(*d);
}

Result<std::string> FieldReader::required_string(std::string_view key) const {
  SPW_ASSIGN_OR_RETURN(std::optional<std::string> s, optional_string(key));
  if (!s) return error(ErrorCode::kInvalidArgument, key, "required parameter is missing");
  return std::move(*s);
}

}  // namespace spillway::openai
