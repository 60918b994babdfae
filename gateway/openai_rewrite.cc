#include "gateway/openai_rewrite.h"

#include <algorithm>
#include <limits>

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace spillway::gateway {
namespace {

namespace json = boost::json;

std::optional<std::int64_t> count(const json::object& usage, std::string_view key) {
  const json::value* v = usage.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64() && v->as_int64() >= 0) return v->as_int64();
  if (v->is_uint64()) {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(v->as_uint64(), std::numeric_limits<std::int64_t>::max()));
  }
  return std::nullopt;
}

std::optional<openai::Usage> usage_in(const json::value& root) {
  if (!root.is_object()) return std::nullopt;
  const json::value* u = root.as_object().if_contains("usage");
  if (u == nullptr || !u->is_object()) return std::nullopt;
  const auto prompt = count(u->as_object(), "prompt_tokens");
  const auto completion = count(u->as_object(), "completion_tokens");
  if (!prompt || !completion) return std::nullopt;
  openai::Usage out;
  out.prompt_tokens = *prompt;
  out.completion_tokens = *completion;
  return out;
}

}  // namespace

Result<std::string> with_stream_usage(std::string_view body, std::size_t max_depth) {
  json::parse_options options;
  options.max_depth = max_depth;
  std::error_code ec;
  json::value root = json::parse(body, ec, {}, options);
  if (ec || !root.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "request body is not a JSON object");
  }
  json::object stream_options;
  stream_options["include_usage"] = true;
  root.as_object()["stream_options"] = std::move(stream_options);
  return json::serialize(root);
}

std::optional<openai::Usage> read_usage(std::string_view text) {
  std::error_code ec;
  const json::value root = json::parse(text, ec);
  if (ec) return std::nullopt;
  return usage_in(root);
}

ChunkUsage inspect_chunk(std::string_view payload) {
  ChunkUsage out;
  // Inside JSON strings every quote is escaped, so this sequence only occurs as a member.
  if (payload.find("\"usage\":{") == std::string_view::npos) return out;
  std::error_code ec;
  const json::value root = json::parse(payload, ec);
  if (ec || !root.is_object()) return out;
  out.usage = usage_in(root);
  if (out.usage) {
    const json::value* choices = root.as_object().if_contains("choices");
    out.usage_only = choices == nullptr || (choices->is_array() && choices->as_array().empty());
  }
  return out;
}

std::string_view without_null_usage(std::string_view payload, std::string& scratch) {
  // The member is last in the chunk object (openai/chat_response.h), so for valid JSON this
  // suffix can only be the top-level member.
  constexpr std::string_view kMember = ",\"usage\":null}";
  if (!payload.ends_with(kMember)) return payload;
  scratch.assign(payload.substr(0, payload.size() - kMember.size()));
  scratch.push_back('}');
  return scratch;
}

}  // namespace spillway::gateway
