#include "openai/api_limits.h"

#include <limits>

namespace spillway::openai {
namespace {

constexpr std::int64_t kMaxInt32 = std::numeric_limits<std::int32_t>::max();
// Large enough for any sane deployment, small enough that sums cannot overflow.
constexpr std::int64_t kMaxSize = std::int64_t{1} << 40;

Status at_least(std::string_view name, std::int64_t value, std::int64_t min) {
  if (value < min) {
    return make_error(ErrorCode::kInvalidArgument, "api limit {} must be at least {}, got {}", name,
                      min, value);
  }
  return Status::ok_status();
}

}  // namespace

Status validate_api_limits(const ApiLimits& l) {
  const auto size = [](std::size_t v) { return static_cast<std::int64_t>(v); };
  SPW_TRY(at_least("max_body_bytes", size(l.max_body_bytes), 1));
  SPW_TRY(at_least("max_json_depth", size(l.max_json_depth), 5));
  SPW_TRY(at_least("max_model_name_bytes", size(l.max_model_name_bytes), 1));
  SPW_TRY(at_least("max_messages", size(l.max_messages), 1));
  SPW_TRY(at_least("max_total_content_bytes", size(l.max_total_content_bytes), 1));
  SPW_TRY(at_least("max_prompt_token_ids", size(l.max_prompt_token_ids), 1));
  SPW_TRY(at_least("max_prompts", size(l.max_prompts), 1));
  SPW_TRY(at_least("max_stop_strings", size(l.max_stop_strings), 1));
  SPW_TRY(at_least("max_stop_bytes", size(l.max_stop_bytes), 1));
  SPW_TRY(at_least("max_n", l.max_n, 1));
  SPW_TRY(at_least("max_output_tokens", l.max_output_tokens, 1));
  SPW_TRY(at_least("max_top_logprobs", l.max_top_logprobs, 0));
  SPW_TRY(at_least("max_completion_logprobs", l.max_completion_logprobs, 0));
  return Status::ok_status();
}

Result<ApiLimits> parse_api_limits(const ConfigTable& t) {
  SPW_TRY(t.check_keys({"max_body_bytes", "max_json_depth", "max_model_name_bytes", "max_messages",
                        "max_total_content_bytes", "max_prompt_token_ids", "max_prompts",
                        "max_stop_strings", "max_stop_bytes", "max_n", "max_output_tokens",
                        "max_top_logprobs", "max_completion_logprobs"}));
  ApiLimits l;
  const auto size = [&](std::string_view key, std::size_t& field) -> Status {
    SPW_ASSIGN_OR_RETURN(const std::int64_t v,
                         t.integer_or(key, static_cast<std::int64_t>(field), 1, kMaxSize));
    field = static_cast<std::size_t>(v);
    return Status::ok_status();
  };
  const auto int32 = [&](std::string_view key, std::int32_t& field, std::int64_t min) -> Status {
    SPW_ASSIGN_OR_RETURN(const std::int64_t v, t.integer_or(key, field, min, kMaxInt32));
    field = static_cast<std::int32_t>(v);
    return Status::ok_status();
  };
  SPW_TRY(size("max_body_bytes", l.max_body_bytes));
  SPW_TRY(size("max_json_depth", l.max_json_depth));
  SPW_TRY(size("max_model_name_bytes", l.max_model_name_bytes));
  SPW_TRY(size("max_messages", l.max_messages));
  SPW_TRY(size("max_total_content_bytes", l.max_total_content_bytes));
  SPW_TRY(size("max_prompt_token_ids", l.max_prompt_token_ids));
  SPW_TRY(size("max_prompts", l.max_prompts));
  SPW_TRY(size("max_stop_strings", l.max_stop_strings));
  SPW_TRY(size("max_stop_bytes", l.max_stop_bytes));
  SPW_TRY(int32("max_n", l.max_n, 1));
  SPW_TRY(int32("max_output_tokens", l.max_output_tokens, 1));
  SPW_TRY(int32("max_top_logprobs", l.max_top_logprobs, 0));
  SPW_TRY(int32("max_completion_logprobs", l.max_completion_logprobs, 0));
  if (Status s = validate_api_limits(l); !s.ok()) return t.error_at("", s.error().message());
  return l;
}

}  // namespace spillway::openai
