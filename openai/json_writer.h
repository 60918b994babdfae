// A small streaming JSON writer for response bodies: fields come out in the order they are
// written (OpenAI's order), numbers in plain decimal ("-0.25", not "-2.5E-1"), floats at float
// precision, and no document tree is built per streamed token.
//
// The output is always valid JSON text in UTF-8: strings are escaped, invalid UTF-8 in a
// string becomes U+FFFD, and non-finite numbers are written as null.
//
// Usage: the caller writes a well-nested sequence (a key before each value inside an object,
// no key inside an array); the writer inserts commas. Nesting is limited to kMaxDepth levels.
//
// Thread-safety: one writer per output string; not for concurrent use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace spillway::openai {

class JsonWriter {
 public:
  static constexpr int kMaxDepth = 64;

  // Appends to `out`, which must outlive the writer.
  explicit JsonWriter(std::string& out) : out_(out) {}

  // A writer that continues an object written earlier: `out` ends inside an object that
  // already holds at least one field (e.g. a prefix shared by all chunks of a stream). The
  // next call is key() or end_object().
  [[nodiscard]] static JsonWriter continuing_object(std::string& out) {
    JsonWriter w(out);
    w.depth_ = 1;
    w.has_element_ = 1;
    return w;
  }

  void begin_object();
  void end_object();
  void begin_array();
  void end_array();
  // REQUIRES: inside an object, and the previous call was not key().
  void key(std::string_view name);

  void string(std::string_view text);
  void integer(std::int64_t value);
  void unsigned_integer(std::uint64_t value);
  // Shortest decimal text that reads back as the same float.
  void number(float value);
  void number(double value);
  void boolean(bool value);
  void null();

  // Shorthands for `key(name)` followed by the value.
  void field(std::string_view name, std::string_view text) {
    key(name);
    string(text);
  }
  void field(std::string_view name, const char* text) { field(name, std::string_view(text)); }
  void field_integer(std::string_view name, std::int64_t value) {
    key(name);
    integer(value);
  }
  void field_null(std::string_view name) {
    key(name);
    null();
  }

 private:
  void before_value();
  void open(char bracket);
  void close(char bracket);

  std::string& out_;
  int depth_ = 0;
  // Bit d is set when the container at depth d already holds an element.
  std::uint64_t has_element_ = 0;
  bool after_key_ = false;
};

// Appends `text` as a JSON string literal (quotes included) to `out`.
void append_json_string(std::string& out, std::string_view text);

}  // namespace spillway::openai
