#include "gateway/openai_rewrite.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace spillway::gateway {
namespace {

namespace json = boost::json;

// A SAX handler (boost::json::basic_parser) that finds the top-level "usage" object's
// prompt_tokens and completion_tokens and whether the top-level "choices" is absent or empty,
// without building a document. Its answers are those of the document: the parser validates all
// of the input, and for a repeated member the last occurrence counts, as in boost::json::object.
class UsageHandler {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  // A count as the document version reads it: a non-negative integer (clamped to int64).
  struct Count {
    enum class State { kAbsent, kValid, kInvalid } state = State::kAbsent;
    std::int64_t value = 0;
  };
  enum class Choices { kAbsent, kEmptyArray, kOther };

  [[nodiscard]] std::optional<openai::Usage> usage() const {
    if (!root_object_ || !usage_object_ || prompt_.state != Count::State::kValid ||
        completion_.state != Count::State::kValid) {
      return std::nullopt;
    }
    openai::Usage out;
    out.prompt_tokens = prompt_.value;
    out.completion_tokens = completion_.value;
    return out;
  }
  [[nodiscard]] bool choices_absent_or_empty() const {
    return choices_ == Choices::kAbsent || choices_ == Choices::kEmptyArray;
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    if (depth_ == 0) root_object_ = true;
    value(Kind::kObject);
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth_;
    if (depth_ == 1) in_usage_ = false;
    return true;
  }
  bool on_array_begin(json::error_code&) {
    value(Kind::kArray);
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    if (depth_ == 1) in_choices_ = false;
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    append_key(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    append_key(s);
    const std::string_view key =
        key_overflow_ ? std::string_view() : std::string_view(key_.data(), key_size_);
    if (depth_ == 1) {
      root_key_ = key == "usage"     ? RootKey::kUsage
                  : key == "choices" ? RootKey::kChoices
                                     : RootKey::kOther;
    } else if (depth_ == 2 && in_usage_) {
      usage_key_ = key == "prompt_tokens"       ? UsageKey::kPrompt
                   : key == "completion_tokens" ? UsageKey::kCompletion
                                                : UsageKey::kOther;
    }
    key_size_ = 0;
    key_overflow_ = false;
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) {
    value(Kind::kScalar);
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    integer_ = i >= 0 ? std::optional<std::int64_t>(i) : std::nullopt;
    value(Kind::kInteger);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    integer_ = static_cast<std::int64_t>(
        std::min<std::uint64_t>(u, std::numeric_limits<std::int64_t>::max()));
    value(Kind::kInteger);
    return true;
  }
  bool on_double(double, json::string_view, json::error_code&) {
    value(Kind::kScalar);
    return true;
  }
  bool on_bool(bool, json::error_code&) {
    value(Kind::kScalar);
    return true;
  }
  bool on_null(json::error_code&) {
    value(Kind::kScalar);
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  enum class Kind { kScalar, kInteger, kObject, kArray };
  enum class RootKey { kOther, kUsage, kChoices };
  enum class UsageKey { kOther, kPrompt, kCompletion };

  // A value starts at the current depth (a scalar, or a container about to be entered).
  void value(Kind kind) {
    if (depth_ == 1) {
      if (root_key_ == RootKey::kUsage) {
        usage_object_ = kind == Kind::kObject;
        in_usage_ = usage_object_;
        prompt_ = {};
        completion_ = {};
      } else if (root_key_ == RootKey::kChoices) {
        choices_ = kind == Kind::kArray ? Choices::kEmptyArray : Choices::kOther;
        in_choices_ = kind == Kind::kArray;
      }
    } else if (depth_ == 2) {
      if (in_usage_ && usage_key_ != UsageKey::kOther) {
        Count& c = usage_key_ == UsageKey::kPrompt ? prompt_ : completion_;
        if (kind == Kind::kInteger && integer_) {
          c.state = Count::State::kValid;
          c.value = *integer_;
        } else {
          c.state = Count::State::kInvalid;
        }
      } else if (in_choices_) {
        choices_ = Choices::kOther;  // An element: the array is not empty.
      }
    }
  }
  void append_key(json::string_view s) {
    if (key_overflow_ || key_size_ + s.size() > key_.size()) {
      key_overflow_ = true;  // Longer than any key looked for.
      return;
    }
    std::copy(s.begin(), s.end(), key_.begin() + static_cast<std::ptrdiff_t>(key_size_));
    key_size_ += s.size();
  }

  std::size_t depth_ = 0;  // Containers open.
  bool root_object_ = false;
  RootKey root_key_ = RootKey::kOther;  // The last key of the root object.
  UsageKey usage_key_ = UsageKey::kOther;
  bool usage_object_ = false;  // The (last) top-level "usage" is an object.
  bool in_usage_ = false;      // Inside that object (depth 2).
  bool in_choices_ = false;    // Inside the top-level "choices" array (depth 2).
  Choices choices_ = Choices::kAbsent;
  Count prompt_;
  Count completion_;
  std::optional<std::int64_t> integer_;  // The integer value being reported.
  std::array<char, 32> key_{};
  std::size_t key_size_ = 0;
  bool key_overflow_ = false;
};

// Runs the handler over all of `text`; false for anything json::parse would reject.
bool scan(std::string_view text, json::basic_parser<UsageHandler>& parser) {
  json::error_code ec;
  const std::size_t n = parser.write_some(false, text.data(), text.size(), ec);
  return !ec && n == text.size();
}

}  // namespace

Result<std::string> with_stream_usage(std::string_view body, std::size_t max_depth) {
  // A validated object without a stream_options member (a quote inside a JSON string is
  // escaped, so the quoted name occurs only as a key): the member goes in before the closing
  // brace, copying the body once instead of parsing and re-serializing it.
  constexpr std::string_view kMember = R"(,"stream_options":{"include_usage":true}})";
  if (body.find("\"stream_options\"") == std::string_view::npos) {
    const std::size_t close = body.find_last_not_of(" \t\r\n");
    const std::size_t before = close == std::string_view::npos || close == 0
                                   ? std::string_view::npos
                                   : body.find_last_not_of(" \t\r\n", close - 1);
    const std::size_t open = body.find_first_not_of(" \t\r\n");
    if (before != std::string_view::npos && body[close] == '}' && body[open] == '{' &&
        body[before] != '{' && body[before] != ',') {
      std::string out;
      out.reserve(close + kMember.size());
      out.append(body.substr(0, close));
      out.append(kMember);
      return out;
    }
  }
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
  json::basic_parser<UsageHandler> parser{json::parse_options()};
  if (!scan(text, parser)) return std::nullopt;
  return parser.handler().usage();
}

ChunkUsage inspect_chunk(std::string_view payload) {
  ChunkUsage out;
  // Inside JSON strings every quote is escaped, so this sequence only occurs as a member.
  if (payload.find("\"usage\":{") == std::string_view::npos) return out;
  json::basic_parser<UsageHandler> parser{json::parse_options()};
  if (!scan(payload, parser)) return out;
  out.usage = parser.handler().usage();
  if (out.usage) out.usage_only = parser.handler().choices_absent_or_empty();
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
