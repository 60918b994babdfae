#include "openai/chat_request.h"

#include <limits>
#include <string>
#include <utility>

#include <boost/json/monotonic_resource.hpp>

#include "openai/api_error.h"
#include "openai/chat_request_fast.h"
#include "openai/request_json.h"

namespace spillway::openai {
namespace {

namespace json = boost::json;

constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();

// Running total of message text, checked against max_total_content_bytes.
struct ContentBudget {
  std::size_t used = 0;
  std::size_t limit = 0;

  Status spend(std::size_t bytes) {
    used += bytes;
    if (used > limit) {
      return request_error(ErrorCode::kPayloadTooLarge, "messages",
                           fmt::format("message contents exceed the limit of {} bytes", limit));
    }
    return Status::ok_status();
  }
};

Result<ChatRole> parse_role(const FieldReader& message) {
  SPW_ASSIGN_OR_RETURN(const std::string role, message.required_string("role"));
  if (role == "system" || role == "developer") return ChatRole::kSystem;
  if (role == "user") return ChatRole::kUser;
  if (role == "assistant") return ChatRole::kAssistant;
  if (role == "tool" || role == "function") {
    return message.error(ErrorCode::kUnimplemented, "role",
                         fmt::format("{} messages are not supported: this server has no tool "
                                     "calling",
                                     quote_for_error(role)));
  }
  return message.error(ErrorCode::kInvalidArgument, "role",
                       fmt::format("unknown role {}; expected 'system', 'developer', 'user' or "
                                   "'assistant'",
                                   quote_for_error(role)));
}

// Joins the text parts of an array content; other part types are errors.
Result<std::string> parse_content_parts(const json::array& parts, const std::string& param,
                                        ContentBudget& budget) {
  std::string text;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string part_param = fmt::format("{}[{}]", param, i);
    if (!parts[i].is_object()) {
      return request_error(
          ErrorCode::kInvalidArgument, part_param,
          fmt::format("expected a content part object, got {}", json_kind_name(parts[i])));
    }
    const FieldReader part(parts[i].get_object(), part_param);
    SPW_ASSIGN_OR_RETURN(const std::string type, part.required_string("type"));
    if (type != "text") {
      return part.error(ErrorCode::kInvalidArgument, "type",
                        fmt::format("unsupported content part type {}; this server accepts "
                                    "only 'text' parts",
                                    quote_for_error(type)));
    }
    SPW_ASSIGN_OR_RETURN(const std::string part_text, part.required_string("text"));
    SPW_TRY(budget.spend(part_text.size() + (i > 0 ? 1 : 0)));
    if (i > 0) text.push_back('\n');
    text.append(part_text);
  }
  return text;
}

Result<ChatMessage> parse_message(const json::value& value, std::size_t index,
                                  ContentBudget& budget) {
  // Every message's parameter name, on every request: built without a formatting call.
  std::string param = "messages[";
  param += std::to_string(index);
  param += ']';
  if (!value.is_object()) {
    return request_error(ErrorCode::kInvalidArgument, param,
                         fmt::format("expected a message object, got {}", json_kind_name(value)));
  }
  const FieldReader message(value.get_object(), param);
  ChatMessage m;
  SPW_ASSIGN_OR_RETURN(m.role, parse_role(message));
  const json::value* content = message.find("content");
  if (content == nullptr) {
    if (m.role == ChatRole::kAssistant &&
        (message.find("tool_calls") != nullptr || message.find("function_call") != nullptr)) {
      return message.error(ErrorCode::kUnimplemented, "tool_calls",
                           "assistant tool calls are not supported: this server has no tool "
                           "calling");
    }
    return message.error(ErrorCode::kInvalidArgument, "content", "required parameter is missing");
  }
  if (content->is_string()) {
    const json::string& s = content->get_string();
    SPW_TRY(budget.spend(s.size()));
    m.content.assign(s.data(), s.size());
  } else if (content->is_array()) {
    SPW_ASSIGN_OR_RETURN(
        m.content, parse_content_parts(content->get_array(), message.param("content"), budget));
  } else {
    return message.error(ErrorCode::kInvalidArgument, "content",
                         fmt::format("expected a string or an array of content parts, got {}",
                                     json_kind_name(*content)));
  }
  SPW_ASSIGN_OR_RETURN(m.name, message.optional_string("name"));
  if (m.name) SPW_TRY(budget.spend(m.name->size()));
  return m;
}

Result<std::vector<ChatMessage>> parse_messages(const FieldReader& body, const ApiLimits& limits) {
  const json::value* v = body.find("messages");
  if (v == nullptr) {
    return body.error(ErrorCode::kInvalidArgument, "messages", "required parameter is missing");
  }
  if (!v->is_array()) {
    return body.error(ErrorCode::kInvalidArgument, "messages",
                      fmt::format("expected an array of messages, got {}", json_kind_name(*v)));
  }
  const json::array& array = v->get_array();
  if (array.empty()) {
    return body.error(ErrorCode::kInvalidArgument, "messages", "must contain at least one message");
  }
  if (array.size() > limits.max_messages) {
    return body.error(
        ErrorCode::kOutOfRange, "messages",
        fmt::format("at most {} messages are allowed, got {}", limits.max_messages, array.size()));
  }
  ContentBudget budget{0, limits.max_total_content_bytes};
  std::vector<ChatMessage> messages;
  messages.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    SPW_ASSIGN_OR_RETURN(ChatMessage m, parse_message(array[i], i, budget));
    messages.push_back(std::move(m));
  }
  return messages;
}

Error unimplemented(const FieldReader& body, std::string_view key, std::string_view what) {
  return body.error(ErrorCode::kUnimplemented, key,
                    fmt::format("{} are not supported by this server", what));
}

// Known OpenAI features that would change the output if honoured: refuse them instead of
// silently generating something else.
Status reject_unsupported_features(const FieldReader& body) {
  for (const std::string_view key : {"tools", "functions"}) {
    const json::value* v = body.find(key);
    if (v == nullptr) continue;
    if (!v->is_array()) {
      return body.error(ErrorCode::kInvalidArgument, key,
                        fmt::format("expected an array, got {}", json_kind_name(*v)));
    }
    if (!v->get_array().empty()) return unimplemented(body, key, "tools (function calling)");
  }
  if (const json::value* v = body.find("tool_choice")) {
    const bool harmless =
        v->is_string() && (v->get_string() == "none" || v->get_string() == "auto");
    if (!harmless) return unimplemented(body, "tool_choice", "tool choices");
  }
  if (const json::value* v = body.find("response_format")) {
    if (!v->is_object()) {
      return body.error(ErrorCode::kInvalidArgument, "response_format",
                        fmt::format("expected an object, got {}", json_kind_name(*v)));
    }
    const FieldReader format(v->get_object(), body.param("response_format"));
    SPW_ASSIGN_OR_RETURN(const std::string type, format.required_string("type"));
    if (type != "text") {
      return format.error(ErrorCode::kUnimplemented, "type",
                          fmt::format("response format {} is not supported by this server; "
                                      "only 'text' is",
                                      quote_for_error(type)));
    }
  }
  if (const json::value* v = body.find("logit_bias")) {
    if (!v->is_object()) {
      return body.error(ErrorCode::kInvalidArgument, "logit_bias",
                        fmt::format("expected an object, got {}", json_kind_name(*v)));
    }
    if (!v->get_object().empty()) return unimplemented(body, "logit_bias", "logit biases");
  }
  if (body.find("audio") != nullptr) return unimplemented(body, "audio", "audio outputs");
  if (const json::value* v = body.find("modalities")) {
    if (!v->is_array()) {
      return body.error(ErrorCode::kInvalidArgument, "modalities",
                        fmt::format("expected an array, got {}", json_kind_name(*v)));
    }
    for (const json::value& m : v->get_array()) {
      if (!(m.is_string() && m.get_string() == "text")) {
        return unimplemented(body, "modalities", "output modalities other than text");
      }
    }
  }
  return Status::ok_status();
}

}  // namespace

std::string_view chat_role_name(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
  }
  return "user";
}

Result<ChatCompletionRequest> parse_chat_completion_request(std::string_view body,
                                                            const ApiLimits& limits) {
  // Most requests have the common shape, read in one pass; the rest, including every invalid
  // one, go through the document (chat_request_fast.h).
  if (std::optional<ChatCompletionRequest> r = internal::read_common_chat_request(body, limits)) {
    return std::move(*r);
  }
  return internal::read_chat_request_document(body, limits);
}

Result<ChatCompletionRequest> internal::read_chat_request_document(std::string_view body,
                                                                   const ApiLimits& limits) {
  // Everything parsed lives in this arena and is copied out into the request.
  unsigned char first_block[4096];
  json::monotonic_resource arena(first_block, sizeof(first_block));
  SPW_ASSIGN_OR_RETURN(const json::object object,
                       parse_request_object(body, limits, json::storage_ptr(&arena)));
  const FieldReader fields(object, "");

  ChatCompletionRequest r;
  SPW_ASSIGN_OR_RETURN(r.model, parse_model(fields, limits));
  SPW_ASSIGN_OR_RETURN(r.messages, parse_messages(fields, limits));
  SPW_ASSIGN_OR_RETURN(r.sampling, parse_sampling_options(fields, limits));
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int32_t> max_tokens,
                       parse_max_tokens(fields, "max_tokens", 1, limits));
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int32_t> max_completion_tokens,
                       parse_max_tokens(fields, "max_completion_tokens", 1, limits));
  r.sampling.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  SPW_ASSIGN_OR_RETURN(r.stream, parse_stream_options(fields));

  SPW_ASSIGN_OR_RETURN(const std::optional<bool> logprobs, fields.optional_bool("logprobs"));
  r.logprobs = logprobs.value_or(false);
  SPW_ASSIGN_OR_RETURN(const std::optional<std::int64_t> top_logprobs,
                       fields.optional_integer("top_logprobs", 0, kInt32Max));
  if (top_logprobs) {
    if (*top_logprobs > limits.max_top_logprobs) {
      return fields.error(
          ErrorCode::kInvalidArgument, "top_logprobs",
          fmt::format("must be in [0, {}], got {}", limits.max_top_logprobs, *top_logprobs));
    }
    if (!r.logprobs) {
      return fields.error(ErrorCode::kInvalidArgument, "top_logprobs",
                          "only allowed when logprobs is true");
    }
    r.top_logprobs = static_cast<std::int32_t>(*top_logprobs);
  }
  SPW_ASSIGN_OR_RETURN(r.user, fields.optional_string("user"));
  SPW_TRY(reject_unsupported_features(fields));
  return r;
}

}  // namespace spillway::openai
