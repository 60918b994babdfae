#include "openai/chat_request_fast.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/parse_options.hpp>

namespace spillway::openai::internal {
namespace {

namespace json = boost::json;

// The members of the common shape. Each has a bit in a "seen" mask, so a repeated one is
// noticed (the document keeps the last; this reading declines instead).
enum class Member : std::uint8_t {
  kModel,
  kMessages,
  kMaxTokens,
  kMaxCompletionTokens,
  kN,
  kStream,
  kStreamOptions,
  kTemperature,
  kTopP,
  kSeed,
  kUser,
  kOther,
};

Member member_of(std::string_view key) {
  switch (key.size()) {
    case 1:
      if (key == "n") return Member::kN;
      break;
    case 4:
      if (key == "seed") return Member::kSeed;
      if (key == "user") return Member::kUser;
      break;
    case 5:
      if (key == "model") return Member::kModel;
      if (key == "top_p") return Member::kTopP;
      break;
    case 6:
      if (key == "stream") return Member::kStream;
      break;
    case 8:
      if (key == "messages") return Member::kMessages;
      break;
    case 10:
      if (key == "max_tokens") return Member::kMaxTokens;
      break;
    case 11:
      if (key == "temperature") return Member::kTemperature;
      break;
    case 14:
      if (key == "stream_options") return Member::kStreamOptions;
      break;
    case 21:
      if (key == "max_completion_tokens") return Member::kMaxCompletionTokens;
      break;
    default:
      break;
  }
  return Member::kOther;
}

enum class MessageMember : std::uint8_t { kRole, kContent, kName, kOther };

MessageMember message_member_of(std::string_view key) {
  if (key == "role") return MessageMember::kRole;
  if (key == "content") return MessageMember::kContent;
  if (key == "name") return MessageMember::kName;
  return MessageMember::kOther;
}

std::optional<ChatRole> role_of(std::string_view role) {
  if (role == "user") return ChatRole::kUser;
  if (role == "assistant") return ChatRole::kAssistant;
  if (role == "system" || role == "developer") return ChatRole::kSystem;
  return std::nullopt;  // tool, function or unknown: the document reading explains.
}

// The SAX handler. Every callback returns false ("decline") at the first thing outside the
// common shape; the parser then stops with an error and the caller falls back.
class CommonChatHandler {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  explicit CommonChatHandler(const ApiLimits& limits) : limits_(limits) {}

  // The request read, once the parser finished without error; nullopt when a check that
  // needs the whole object fails.
  std::optional<ChatCompletionRequest> finish() {
    if (!has(Member::kModel) || !has(Member::kMessages) || request_.messages.empty()) {
      return std::nullopt;
    }
    if (has(Member::kStreamOptions) && !request_.stream.stream) return std::nullopt;
    request_.sampling.max_tokens = has(Member::kMaxCompletionTokens) ? max_completion_tokens_
                                   : has(Member::kMaxTokens)         ? max_tokens_
                                                             : std::optional<std::int32_t>();
    return std::move(request_);
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code& ec) {
    switch (place_) {
      case Place::kTop:
        place_ = Place::kRoot;
        return true;
      case Place::kRoot:
        if (member_ != Member::kStreamOptions) return decline(ec);
        place_ = Place::kStreamOptions;
        return true;
      case Place::kMessages:
        if (request_.messages.size() >= limits_.max_messages) return decline(ec);
        request_.messages.emplace_back();
        message_seen_ = 0;
        place_ = Place::kMessage;
        return true;
      default:
        return decline(ec);
    }
  }
  bool on_object_end(std::size_t, json::error_code& ec) {
    switch (place_) {
      case Place::kRoot:
        place_ = Place::kTop;
        return true;
      case Place::kStreamOptions:
        place_ = Place::kRoot;
        return true;
      case Place::kMessage:
        place_ = Place::kMessages;
        return end_message(ec);
      default:
        return decline(ec);
    }
  }
  bool on_array_begin(json::error_code& ec) {
    if (place_ != Place::kRoot || member_ != Member::kMessages) return decline(ec);
    place_ = Place::kMessages;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code& ec) {
    if (place_ != Place::kMessages) return decline(ec);
    place_ = Place::kRoot;
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    text_.append(s.data(), s.size());
    const std::string_view key = text_;
    if (place_ == Place::kRoot) {
      member_ = member_of(key);
      if (member_ == Member::kOther || has(member_)) return decline(ec);
      seen_ |= bit(member_);
    } else if (place_ == Place::kMessage) {
      message_member_ = message_member_of(key);
      const unsigned b = 1u << static_cast<unsigned>(message_member_);
      if (message_member_ == MessageMember::kOther || (message_seen_ & b) != 0) return decline(ec);
      message_seen_ |= b;
    } else if (place_ == Place::kStreamOptions) {
      if (key != "include_usage" || include_usage_seen_) return decline(ec);
      include_usage_seen_ = true;
    } else {
      return decline(ec);
    }
    text_.clear();
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code& ec) {
    text_.append(s.data(), s.size());
    bool ok = false;
    if (place_ == Place::kRoot) {
      ok = root_string(ec);
    } else if (place_ == Place::kMessage) {
      ok = message_string(ec);
    } else {
      ok = decline(ec);
    }
    text_.clear();
    return ok;
  }

  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t v, json::string_view, json::error_code& ec) {
    if (place_ != Place::kRoot) return decline(ec);
    switch (member_) {
      case Member::kMaxTokens:
        return output_tokens(v, max_tokens_, ec);
      case Member::kMaxCompletionTokens:
        return output_tokens(v, max_completion_tokens_, ec);
      case Member::kN:
        if (v < 1 || v > limits_.max_n) return decline(ec);
        request_.sampling.n = static_cast<std::int32_t>(v);
        return true;
      case Member::kSeed:
        request_.sampling.seed = v;
        return true;
      case Member::kTemperature:
      case Member::kTopP:
        return number(static_cast<double>(v), ec);
      default:
        return decline(ec);
    }
  }
  // Integers past int64 and numbers with a fraction or exponent: only the float members take
  // them here (the document reading has its own rules for "16.0" as an integer).
  bool on_uint64(std::uint64_t, json::string_view, json::error_code& ec) { return decline(ec); }
  bool on_double(double v, json::string_view, json::error_code& ec) {
    if (place_ != Place::kRoot) return decline(ec);
    return number(v, ec);
  }
  bool on_bool(bool v, json::error_code& ec) {
    if (place_ == Place::kRoot && member_ == Member::kStream) {
      request_.stream.stream = v;
      return true;
    }
    if (place_ == Place::kStreamOptions) {
      request_.stream.include_usage = v;
      return true;
    }
    return decline(ec);
  }
  bool on_null(json::error_code& ec) { return decline(ec); }
  bool on_comment_part(json::string_view, json::error_code& ec) { return decline(ec); }
  bool on_comment(json::string_view, json::error_code& ec) { return decline(ec); }

 private:
  // Where the parser is: outside the root, in the root object, in the messages array, in one
  // message, in stream_options.
  enum class Place : std::uint8_t { kTop, kRoot, kMessages, kMessage, kStreamOptions };

  static unsigned bit(Member m) { return 1u << static_cast<unsigned>(m); }
  [[nodiscard]] bool has(Member m) const { return (seen_ & bit(m)) != 0; }

  static bool decline(json::error_code& ec) {
    ec = json::error::syntax;  // Any error: the parse stops and the caller falls back.
    return false;
  }

  bool root_string(json::error_code& ec) {
    if (member_ == Member::kModel) {
      if (text_.empty() || text_.size() > limits_.max_model_name_bytes) return decline(ec);
      request_.model = text_;
      return true;
    }
    if (member_ == Member::kUser) {
      request_.user = text_;
      return true;
    }
    return decline(ec);
  }

  bool message_string(json::error_code& ec) {
    ChatMessage& m = request_.messages.back();
    switch (message_member_) {
      case MessageMember::kRole: {
        const std::optional<ChatRole> role = role_of(text_);
        if (!role) return decline(ec);
        m.role = *role;
        return true;
      }
      case MessageMember::kContent:
        m.content = text_;
        return true;
      case MessageMember::kName:
        m.name = text_;
        return true;
      default:
        return decline(ec);
    }
  }

  // A message is complete: it needs a role and content, and its text counts against the
  // budget (content, then name, as the document reading spends them).
  bool end_message(json::error_code& ec) {
    constexpr unsigned kNeeded = (1u << static_cast<unsigned>(MessageMember::kRole)) |
                                 (1u << static_cast<unsigned>(MessageMember::kContent));
    if ((message_seen_ & kNeeded) != kNeeded) return decline(ec);
    const ChatMessage& m = request_.messages.back();
    content_bytes_ += m.content.size() + (m.name ? m.name->size() : 0);
    if (content_bytes_ > limits_.max_total_content_bytes) return decline(ec);
    return true;
  }

  bool output_tokens(std::int64_t v, std::optional<std::int32_t>& out, json::error_code& ec) {
    if (v < 1 || v > std::numeric_limits<std::int32_t>::max() || v > limits_.max_output_tokens) {
      return decline(ec);
    }
    out = static_cast<std::int32_t>(v);
    return true;
  }

  // temperature in [0, 2], top_p in (0, 1], as floats.
  bool number(double v, json::error_code& ec) {
    if (!std::isfinite(v)) return decline(ec);
    if (member_ == Member::kTemperature && v >= 0.0 && v <= 2.0) {
      request_.sampling.temperature = static_cast<float>(v);
      return true;
    }
    if (member_ == Member::kTopP && v > 0.0 && v <= 1.0) {
      request_.sampling.top_p = static_cast<float>(v);
      return true;
    }
    return decline(ec);
  }

  const ApiLimits& limits_;
  ChatCompletionRequest request_;
  Place place_ = Place::kTop;
  Member member_ = Member::kOther;  // The root member whose value is being read.
  unsigned seen_ = 0;               // Bits of the root members read so far.
  MessageMember message_member_ = MessageMember::kOther;
  unsigned message_seen_ = 0;  // Bits of the current message's members.
  bool include_usage_seen_ = false;
  std::size_t content_bytes_ = 0;
  std::optional<std::int32_t> max_tokens_;
  std::optional<std::int32_t> max_completion_tokens_;
  std::string text_;  // The key or string being read (it may come in parts).
};

}  // namespace

std::optional<ChatCompletionRequest> read_common_chat_request(std::string_view body,
                                                              const ApiLimits& limits) {
  if (body.size() > limits.max_body_bytes) return std::nullopt;
  json::parse_options options;
  options.max_depth = limits.max_json_depth;
  json::basic_parser<CommonChatHandler> parser(options, limits);
  json::error_code ec;
  const std::size_t used = parser.write_some(false, body.data(), body.size(), ec);
  if (ec || used != body.size() || !parser.done()) return std::nullopt;
  return parser.handler().finish();
}

}  // namespace spillway::openai::internal
