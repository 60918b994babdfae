#include "openai/common_options.h"

#include <limits>

#include "openai/api_error.h"
#include "openai/request_json.h"

namespace spillway::openai {
namespace {

namespace json = boost::json;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();

// Reads a number field into `out` when present.
Status read_float(const FieldReader& body, std::string_view key, NumberRange range, float& out) {
  SPW_ASSIGN_OR_RETURN(const std::optional<double> v, body.optional_number(key, range));
  if (v) out = static_cast<float>(*v);
  return Status::ok_status();
}

Result<std::string> stop_string(const json::value& value, const ApiLimits& limits) {
  SPW_ASSIGN_OR_RETURN(const std::string_view s, json_string(value));
  if (s.empty()) return make_error(ErrorCode::kInvalidArgument, "must not be empty");
  if (s.size() > limits.max_stop_bytes) {
    return make_error(ErrorCode::kOutOfRange, "is {} bytes long, more than the limit of {}",
                      s.size(), limits.max_stop_bytes);
  }
  return std::string(s);
}

Result<std::vector<std::string>> parse_stop(const FieldReader& body, const ApiLimits& limits) {
  std::vector<std::string> stop;
  const json::value* v = body.find("stop");
  if (v == nullptr) return stop;
  if (v->is_string()) {
    Result<std::string> s = stop_string(*v, limits);
    if (!s.ok()) return with_param(s.error(), "stop");
    stop.push_back(std::move(*s));
    return stop;
  }
  if (!v->is_array()) {
    return body.error(
        ErrorCode::kInvalidArgument, "stop",
        fmt::format("expected a string or an array of strings, got {}", json_kind_name(*v)));
  }
  const json::array& array = v->get_array();
  if (array.size() > limits.max_stop_strings) {
    return body.error(ErrorCode::kInvalidArgument, "stop",
                      fmt::format("at most {} stop sequences are allowed, got {}",
                                  limits.max_stop_strings, array.size()));
  }
  stop.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    Result<std::string> s = stop_string(array[i], limits);
    if (!s.ok()) return with_param(s.error(), fmt::format("stop[{}]", i));
    stop.push_back(std::move(*s));
  }
  return stop;
}

}  // namespace

Result<std::optional<std::int32_t>> parse_max_tokens(const FieldReader& body, std::string_view key,
                                                     std::int32_t min, const ApiLimits& limits) {
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int64_t> v,
                       body.optional_integer(key, min, kInt32Max));
  if (!v) return std::optional<std::int32_t>();
  if (*v > limits.max_output_tokens) {
    return body.error(ErrorCode::kOutOfRange, key,
                      fmt::format("at most {} tokens can be generated per request, got {}",
                                  limits.max_output_tokens, *v));
  }
  return std::optional<std::int32_t>(static_cast<std::int32_t>(*v));
}

Result<std::string> parse_model(const FieldReader& body, const ApiLimits& limits) {
  SPW_ASSIGN_OR_RETURN(std::string model, body.required_string("model"));
  if (model.empty()) return body.error(ErrorCode::kInvalidArgument, "model", "must not be empty");
  if (model.size() > limits.max_model_name_bytes) {
    return body.error(ErrorCode::kOutOfRange, "model",
                      fmt::format("is {} bytes long, more than the limit of {}", model.size(),
                                  limits.max_model_name_bytes));
  }
  return model;
}

Result<SamplingOptions> parse_sampling_options(const FieldReader& body, const ApiLimits& limits) {
  SamplingOptions o;
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int64_t> n,
                       body.optional_integer("n", 1, kInt32Max));
  if (n) {
    if (*n > limits.max_n) {
      return body.error(
          ErrorCode::kOutOfRange, "n",
          fmt::format("at most {} choices are allowed per request, got {}", limits.max_n, *n));
    }
    o.n = static_cast<std::int32_t>(*n);
  }
  SPW_TRY(read_float(body, "temperature", {.min = 0.0, .max = 2.0}, o.temperature));
  SPW_TRY(read_float(body, "top_p", {.min = 0.0, .max = 1.0, .min_exclusive = true}, o.top_p));
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int64_t> top_k,
                       body.optional_integer("top_k", -1, kInt32Max));
  if (top_k) o.top_k = *top_k < 0 ? 0 : static_cast<std::int32_t>(*top_k);
  SPW_TRY(read_float(body, "min_p", {.min = 0.0, .max = 1.0, .max_exclusive = true}, o.min_p));
  SPW_TRY(read_float(body, "repetition_penalty", {.min = 0.0, .max = kInf, .min_exclusive = true},
                     o.repetition_penalty));
  SPW_TRY(read_float(body, "presence_penalty", {.min = -2.0, .max = 2.0}, o.presence_penalty));
  SPW_TRY(read_float(body, "frequency_penalty", {.min = -2.0, .max = 2.0}, o.frequency_penalty));
  SPW_ASSIGN_OR_RETURN(o.seed,
                       body.optional_integer("seed", std::numeric_limits<std::int64_t>::min(),
                                             std::numeric_limits<std::int64_t>::max()));
  SPW_ASSIGN_OR_RETURN(o.stop, parse_stop(body, limits));
  return o;
}

Result<StreamOptions> parse_stream_options(const FieldReader& body) {
  StreamOptions o;
  SPW_ASSIGN_OR_RETURN(const std::optional<bool> stream, body.optional_bool("stream"));
  o.stream = stream.value_or(false);
  const json::value* options = body.find("stream_options");
  if (options == nullptr) return o;
  if (!options->is_object()) {
    return body.error(ErrorCode::kInvalidArgument, "stream_options",
                      fmt::format("expected an object, got {}", json_kind_name(*options)));
  }
  if (!o.stream) {
    return body.error(ErrorCode::kInvalidArgument, "stream_options",
                      "only allowed when stream is true");
  }
  const FieldReader fields(options->get_object(), body.param("stream_options"));
  SPW_ASSIGN_OR_RETURN(const std::optional<bool> include_usage,
                       fields.optional_bool("include_usage"));
  o.include_usage = include_usage.value_or(false);
  return o;
}

}  // namespace spillway::openai
