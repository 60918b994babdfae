#include "openai/json_writer.h"

#include <cassert>
#include <charconv>
#include <cmath>

#include "openai/utf8.h"

namespace spillway::openai {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8.

// The short escape of an ASCII character that needs one; empty for the other control
// characters, which are written as \u00XX.
std::string_view escape_for(unsigned char c) {
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    default:
      return {};
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      // Copy the run of plain ASCII at once.
      std::size_t end = i + 1;
      while (end < text.size()) {
        const auto d = static_cast<unsigned char>(text[end]);
        if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
        ++end;
      }
      out.append(text.substr(i, end - i));
      i = end;
    } else if (c < 0x80) {
      const std::string_view escape = escape_for(c);
      if (!escape.empty()) {
        out.append(escape);
      } else {
        static constexpr char kHex[] = "0123456789abcdef";
        const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(escaped, sizeof(escaped));
      }
      ++i;
    } else {
      const std::size_t length = utf8_sequence_length(text.substr(i));
      if (length == 0) {
        out.append(kReplacementCharacter);
        ++i;
      } else {
        out.append(text.substr(i, length));
        i += length;
      }
    }
  }
  out.push_back('"');
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (depth_ > 0) {
    const std::uint64_t bit = std::uint64_t{1} << (depth_ - 1);
    if (has_element_ & bit) out_.push_back(',');
    has_element_ |= bit;
  }
}

void JsonWriter::open(char bracket) {
  before_value();
  assert(depth_ < kMaxDepth);
  out_.push_back(bracket);
  ++depth_;
  has_element_ &= ~(std::uint64_t{1} << (depth_ - 1));
}

void JsonWriter::close(char bracket) {
  assert(depth_ > 0 && !after_key_);
  --depth_;
  out_.push_back(bracket);
}

void JsonWriter::begin_object() {
  open('{');
}
void JsonWriter::end_object() {
  close('}');
}
void JsonWriter::begin_array() {
  open('[');
}
void JsonWriter::end_array() {
  close(']');
}

void JsonWriter::key(std::string_view name) {
  assert(depth_ > 0 && !after_key_);
  before_value();
  append_json_string(out_, name);
  out_.push_back(':');
  after_key_ = true;
}

void JsonWriter::string(std::string_view text) {
  before_value();
  append_json_string(out_, text);
}

namespace {

// Appends the shortest decimal form std::to_chars gives: integers exactly, floating point as
// the shortest text that reads back as the same value ("0.1", "3", "-1e-10"), all valid JSON.
template <typename T>
void append_number(std::string& out, T value) {
  char buffer[32];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  assert(result.ec == std::errc());
  out.append(buffer, result.ptr);
}

template <typename T>
void append_finite_or_null(std::string& out, T value) {
  if (std::isfinite(value)) {
    append_number(out, value);
  } else {
    out.append("null");
  }
}

}  // namespace

void JsonWriter::integer(std::int64_t value) {
  before_value();
  append_number(out_, value);
}

void JsonWriter::unsigned_integer(std::uint64_t value) {
  before_value();
  append_number(out_, value);
}

void JsonWriter::number(float value) {
  before_value();
  append_finite_or_null(out_, value);
}

void JsonWriter::number(double value) {
  before_value();
  append_finite_or_null(out_, value);
}

void JsonWriter::boolean(bool value) {
  before_value();
  out_.append(value ? "true" : "false");
}

void JsonWriter::null() {
  before_value();
  out_.append("null");
}

}  // namespace spillway::openai
