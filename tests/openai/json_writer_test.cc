#include "openai/json_writer.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "openai/utf8.h"

#include "openai_test_support.h"

namespace spillway::openai {
namespace {

using testing::parse_json;

std::string string_literal(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

TEST(OpenaiUtf8, ValidAndInvalidSequences) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9"));           // é
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));       // €
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));   // 😀
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\x80"));              // Lone continuation byte.
  EXPECT_FALSE(is_valid_utf8("\xC3"));              // Truncated.
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // Truncated (part of a token).
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));          // Overlong NUL.
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // Overlong '/'.
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // Surrogate U+D800.
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // Above U+10FFFF.
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("ok\xC3(ok"));  // Bad continuation.
}

TEST(OpenaiJsonWriter, EscapesStrings) {
  EXPECT_EQ(string_literal("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(string_literal("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(string_literal(std::string("\x01\x1f\x00", 3)), R"("\u0001\u001f\u0000")");
  EXPECT_EQ(string_literal("\x7f/<>"), "\"\x7f/<>\"");
  EXPECT_EQ(string_literal("\xC3\xA9\xF0\x9F\x98\x80"), "\"\xC3\xA9\xF0\x9F\x98\x80\"");
}

TEST(OpenaiJsonWriter, InvalidUtf8BecomesReplacementCharacters) {
  // Each byte that starts no valid sequence becomes one U+FFFD; valid text around it stays.
  EXPECT_EQ(string_literal("a\xE2\x82z"), "\"a\xEF\xBF\xBD\xEF\xBF\xBDz\"");
  EXPECT_EQ(string_literal("\xFF\xC3\xA9"), "\"\xEF\xBF\xBD\xC3\xA9\"");
  const auto v = parse_json(string_literal("\xED\xA0\x80 \xC0\x80"));
  EXPECT_TRUE(v.is_string());
}

TEST(OpenaiJsonWriter, NumbersArePlainDecimalAtTheirPrecision) {
  std::string out;
  JsonWriter w(out);
  w.begin_array();
  w.number(-0.25f);
  w.number(0.1f);
  w.number(3.0f);
  w.number(-1e-10f);
  w.number(0.1);
  w.number(std::numeric_limits<float>::infinity());
  w.number(std::numeric_limits<double>::quiet_NaN());
  w.integer(-7);
  w.integer(std::numeric_limits<std::int64_t>::min());
  w.unsigned_integer(std::numeric_limits<std::uint64_t>::max());
  w.end_array();
  EXPECT_EQ(out, "[-0.25,0.1,3,-1e-10,0.1,null,null,-7,-9223372036854775808,18446744073709551615]");
  EXPECT_TRUE(parse_json(out).is_array());
}

TEST(OpenaiJsonWriter, NestingAndCommas) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("a", "x");
  w.key("b");
  w.begin_array();
  w.begin_object();
  w.end_object();
  w.begin_array();
  w.end_array();
  w.boolean(true);
  w.null();
  w.end_array();
  w.field_integer("c", 1);
  w.key("d");
  w.begin_object();
  w.field_null("e");
  w.end_object();
  w.end_object();
  EXPECT_EQ(out, R"({"a":"x","b":[{},[],true,null],"c":1,"d":{"e":null}})");
}

TEST(OpenaiJsonWriter, ContinuesAnObjectWrittenEarlier) {
  std::string prefix;
  {
    JsonWriter w(prefix);
    w.begin_object();
    w.field("id", "x");
  }
  std::string out = prefix;
  JsonWriter w = JsonWriter::continuing_object(out);
  w.key("n");
  w.integer(1);
  w.end_object();
  EXPECT_EQ(out, R"({"id":"x","n":1})");
}

}  // namespace
}  // namespace spillway::openai
