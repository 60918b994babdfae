#include "openai/completion_request.h"

#include <algorithm>
#include <limits>

#include <boost/json/monotonic_resource.hpp>

#include "openai/api_error.h"
#include "openai/request_json.h"

namespace spillway::openai {
namespace {

namespace json = boost::json;

constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();

struct PromptBudget {
  std::size_t text_bytes = 0;
  std::size_t token_ids = 0;
};

Result<std::vector<std::int32_t>> parse_token_ids(const json::array& array, std::string_view param,
                                                  PromptBudget& budget, const ApiLimits& limits) {
  if (array.empty()) {
    return request_error(ErrorCode::kInvalidArgument, param, "a token prompt must not be empty");
  }
  budget.token_ids += array.size();
  if (budget.token_ids > limits.max_prompt_token_ids) {
    return request_error(
        ErrorCode::kPayloadTooLarge, "prompt",
        fmt::format("prompts exceed the limit of {} token ids", limits.max_prompt_token_ids));
  }
  std::vector<std::int32_t> tokens;
  tokens.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    Result<std::int64_t> token = json_integer(array[i], 0, kInt32Max);
    if (!token.ok()) {
      return request_error(token.error().code(), fmt::format("{}[{}]", param, i),
                           fmt::format("invalid token id: {}", token.error().message()));
    }
    tokens.push_back(static_cast<std::int32_t>(*token));
  }
  return tokens;
}

Result<std::string> parse_text_prompt(const json::string& s, PromptBudget& budget,
                                      const ApiLimits& limits) {
  budget.text_bytes += s.size();
  if (budget.text_bytes > limits.max_total_content_bytes) {
    return request_error(
        ErrorCode::kPayloadTooLarge, "prompt",
        fmt::format("prompts exceed the limit of {} bytes", limits.max_total_content_bytes));
  }
  return std::string(s.data(), s.size());
}

bool is_integer(const json::value& v) {
  return v.is_int64() || v.is_uint64() || v.is_double();
}

Result<std::vector<CompletionPrompt>> parse_prompts(const FieldReader& body,
                                                    const ApiLimits& limits) {
  const json::value* v = body.find("prompt");
  if (v == nullptr) {
    return body.error(ErrorCode::kInvalidArgument, "prompt", "required parameter is missing");
  }
  PromptBudget budget;
  std::vector<CompletionPrompt> prompts;
  if (v->is_string()) {
    SPW_ASSIGN_OR_RETURN(std::string text, parse_text_prompt(v->get_string(), budget, limits));
    prompts.emplace_back(std::move(text));
    return prompts;
  }
  if (!v->is_array()) {
    return body.error(ErrorCode::kInvalidArgument, "prompt",
                      fmt::format("expected a string, an array of strings, an array of token ids "
                                  "or an array of token id arrays, got {}",
                                  json_kind_name(*v)));
  }
  const json::array& array = v->get_array();
  if (array.empty()) {
    return body.error(ErrorCode::kInvalidArgument, "prompt", "must not be an empty array");
  }
  // One prompt of token ids: [1, 2, 3].
  if (is_integer(array.front())) {
    SPW_ASSIGN_OR_RETURN(std::vector<std::int32_t> tokens,
                         parse_token_ids(array, "prompt", budget, limits));
    prompts.emplace_back(std::move(tokens));
    return prompts;
  }
  if (array.size() > limits.max_prompts) {
    return body.error(ErrorCode::kOutOfRange, "prompt",
                      fmt::format("at most {} prompts are allowed per request, got {}",
                                  limits.max_prompts, array.size()));
  }
  // Several prompts: all strings, or all arrays of token ids.
  const bool strings = array.front().is_string();
  if (!strings && !array.front().is_array()) {
    return request_error(ErrorCode::kInvalidArgument, "prompt[0]",
                         fmt::format("expected a string, a token id or an array of token ids, "
                                     "got {}",
                                     json_kind_name(array.front())));
  }
  prompts.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    const json::value& item = array[i];
    const std::string param = fmt::format("prompt[{}]", i);
    if (strings && item.is_string()) {
      SPW_ASSIGN_OR_RETURN(std::string text, parse_text_prompt(item.get_string(), budget, limits));
      prompts.emplace_back(std::move(text));
    } else if (!strings && item.is_array()) {
      SPW_ASSIGN_OR_RETURN(std::vector<std::int32_t> tokens,
                           parse_token_ids(item.get_array(), param, budget, limits));
      prompts.emplace_back(std::move(tokens));
    } else {
      return request_error(
          ErrorCode::kInvalidArgument, param,
          fmt::format("expected {} like the first prompt, got {}",
                      strings ? "a string" : "an array of token ids", json_kind_name(item)));
    }
  }
  return prompts;
}

}  // namespace

Result<CompletionRequest> parse_completion_request(std::string_view body, const ApiLimits& limits) {
  // Everything parsed lives in this arena and is copied out into the request.
  unsigned char first_block[4096];
  json::monotonic_resource arena(first_block, sizeof(first_block));
  SPW_ASSIGN_OR_RETURN(const json::object object,
                       parse_request_object(body, limits, json::storage_ptr(&arena)));
  const FieldReader fields(object, "");

  CompletionRequest r;
  SPW_ASSIGN_OR_RETURN(r.model, parse_model(fields, limits));
  SPW_ASSIGN_OR_RETURN(r.prompts, parse_prompts(fields, limits));
  SPW_ASSIGN_OR_RETURN(r.sampling, parse_sampling_options(fields, limits));
  SPW_ASSIGN_OR_RETURN(const std::optional<bool> echo, fields.optional_bool("echo"));
  r.echo = echo.value_or(false);
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int32_t> max_tokens,
                       parse_max_tokens(fields, "max_tokens", 0, limits));
  r.sampling.max_tokens =
      max_tokens.value_or(std::min(kDefaultCompletionMaxTokens, limits.max_output_tokens));
  if (r.sampling.max_tokens == 0 && !r.echo) {
    return fields.error(ErrorCode::kInvalidArgument, "max_tokens",
                        "must be at least 1 (0 is allowed only with echo)");
  }
  SPW_ASSIGN_OR_RETURN(r.stream, parse_stream_options(fields));
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int64_t> logprobs,
                       fields.optional_integer("logprobs", 0, kInt32Max));
  if (logprobs) {
    if (*logprobs > limits.max_completion_logprobs) {
      return fields.error(
          ErrorCode::kInvalidArgument, "logprobs",
          fmt::format("must be in [0, {}], got {}", limits.max_completion_logprobs, *logprobs));
    }
    r.logprobs = static_cast<std::int32_t>(*logprobs);
  }
  SPW_ASSIGN_OR_RETURN(r.user, fields.optional_string("user"));

  SPW_ASSIGN_OR_RETURN(const std::optional<std::string> suffix, fields.optional_string("suffix"));
  if (suffix && !suffix->empty()) {
    return fields.error(ErrorCode::kUnimplemented, "suffix",
                        "suffix (text insertion) is not supported by this server");
  }
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int64_t> best_of,
                       fields.optional_integer("best_of", 1, kInt32Max));
  if (best_of && *best_of != r.sampling.n) {
    if (*best_of < r.sampling.n) {
      return fields.error(ErrorCode::kInvalidArgument, "best_of",
                          fmt::format("must be at least n ({}), got {}", r.sampling.n, *best_of));
    }
    return fields.error(ErrorCode::kUnimplemented, "best_of",
                        "best_of greater than n is not supported by this server");
  }
  if (const json::value* v = fields.find("logit_bias")) {
    if (!v->is_object()) {
      return fields.error(ErrorCode::kInvalidArgument, "logit_bias",
                          fmt::format("expected an object, got {}", json_kind_name(*v)));
    }
    if (!v->get_object().empty()) {
      return fields.error(ErrorCode::kUnimplemented, "logit_bias",
                          "logit biases are not supported by this server");
    }
  }
  return r;
}

}  // namespace spillway::openai
