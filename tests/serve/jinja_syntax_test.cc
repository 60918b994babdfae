// The Jinja lexer and parser: whitespace control as transformers configures it (trim_blocks,
// lstrip_blocks), literals, and syntax errors that name line:column.
#include <gtest/gtest.h>

#include <string>

#include "serve/jinja_lexer.h"
#include "serve/jinja_parser.h"
#include "serve/jinja_test_util.h"

namespace spillway::serve::jinja {
namespace {

using testing::render_error;
using testing::render_ok;
using testing::str;

TEST(JinjaWhitespace, TextPassesThrough) {
  EXPECT_EQ(render_ok("plain {text} with { braces } and %}"),
            "plain {text} with { braces } and %}");
  EXPECT_EQ(render_ok(""), "");
}

TEST(JinjaWhitespace, NewlinesAreNormalizedAndOneTrailingNewlineDropped) {
  EXPECT_EQ(render_ok("a\r\nb\rc"), "a\nb\nc");
  EXPECT_EQ(render_ok("a\n"), "a");
  EXPECT_EQ(render_ok("a\n\n"), "a\n");
  EXPECT_EQ(render_ok("{{ 'x' }}\n"), "x");
}

TEST(JinjaWhitespace, TrimBlocksRemovesTheNewlineAfterBlockTagsOnly) {
  EXPECT_EQ(render_ok("{% if true %}\nx\n{% endif %}\ny"), "x\ny");
  EXPECT_EQ(render_ok("{{ 'a' }}\n{{ 'b' }}"), "a\nb");          // Not after {{ }}.
  EXPECT_EQ(render_ok("{# note #}\nx"), "x");                    // Comments count as blocks.
  EXPECT_EQ(render_ok("{% if true %}\n\nx{% endif %}"), "\nx");  // One newline only.
}

TEST(JinjaWhitespace, LstripBlocksRemovesIndentationBeforeBlockTags) {
  EXPECT_EQ(render_ok("a\n    {% if true %}\n    b\n    {% endif %}\nc"), "a\n    b\nc");
  EXPECT_EQ(render_ok("  {% if true %}x{% endif %}"), "x");      // At the start of the template.
  EXPECT_EQ(render_ok("  {{ 'x' }}"), "  x");                    // Not before {{ }}.
  EXPECT_EQ(render_ok("a  {% if true %}x{% endif %}"), "a  x");  // Only at a line start.
  EXPECT_EQ(render_ok("\t {# c #}\nx"), "x");
}

TEST(JinjaWhitespace, PlusMarkersKeepWhitespace) {
  EXPECT_EQ(render_ok("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(render_ok("{% if true +%}\nx{% endif %}"), "\nx");
}

TEST(JinjaWhitespace, MinusMarkersStripAllWhitespaceIncludingNewlines) {
  EXPECT_EQ(render_ok("a \n {{- 'b' -}} \n c"), "abc");
  EXPECT_EQ(render_ok("a\n  {%- if true -%}\n  b\n  {%- endif %}"), "ab");
  EXPECT_EQ(render_ok("x {#- c -#} y"), "xy");
  EXPECT_EQ(render_ok("{{ 5 -}}   \n\t{{ 3 }}"), "53");
  EXPECT_EQ(render_ok("a{#"), "a");  // Jinja drops a comment opened at the very end.
}

TEST(JinjaWhitespace, RawBlocksAreNotInterpreted) {
  EXPECT_EQ(render_ok("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(render_ok("{%- raw %}  a  {% endraw -%}  |"), "  a  |");
}

TEST(JinjaLexer, TagsEndOnlyWhenBracketsBalance) {
  EXPECT_EQ(render_ok("{{ {'a': {'b': 1}} }}"), "{'a': {'b': 1}}");
  EXPECT_EQ(render_ok("{{ '}}' ~ \"%}\" }}"), "}}%}");
}

TEST(JinjaLexer, StringLiteralsDecodePythonEscapes) {
  EXPECT_EQ(render_ok(R"({{ 'a\nb\t|\\|\'|\"' }})"), "a\nb\t|\\|'|\"");
  EXPECT_EQ(render_ok(R"({{ '\x41\u00e9\101\U0001F600' }})"),
            "A\xC3\xA9"
            "A\xF0\x9F\x98\x80");
  EXPECT_EQ(render_ok(R"({{ 'a\qb' }})"), "a\\qb");       // Unknown escapes stay.
  EXPECT_EQ(render_ok("{{ 'one' \"two\" }}"), "onetwo");  // Adjacent literals concatenate.
  EXPECT_EQ(render_ok("{{ 'line\nbreak' }}"), "line\nbreak");
}

TEST(JinjaLexer, NumberLiterals) {
  EXPECT_EQ(render_ok("{{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1.5e3 }} {{ 2.50 }}"),
            "1000 31 15 5 1500.0 2.5");
}

TEST(JinjaLexer, TokensCarryLineAndColumn) {
  auto tokens = tokenize("ab\n{{ x }}", JinjaLimits());
  ASSERT_TRUE(tokens.ok());
  ASSERT_GE(tokens->size(), 4u);
  EXPECT_EQ((*tokens)[0].kind, TokenKind::kText);
  EXPECT_EQ((*tokens)[1].kind, TokenKind::kVariableBegin);
  EXPECT_EQ((*tokens)[1].pos.line, 2u);
  EXPECT_EQ((*tokens)[1].pos.column, 1u);
  EXPECT_EQ((*tokens)[2].kind, TokenKind::kName);
  EXPECT_EQ((*tokens)[2].pos.column, 4u);
  EXPECT_EQ(tokens->back().kind, TokenKind::kEnd);
}

struct SyntaxCase {
  const char* source;
  const char* message;
};

TEST(JinjaSyntaxErrors, NameLineAndColumn) {
  const SyntaxCase cases[] = {
      {"{{ 1 + }}", "1:8: unexpected '}}', expected an expression"},
      {"a\nb {% frobnicate %}", "2:6: unknown tag 'frobnicate'"},
      {"{% for x in y %}\n{{ x }}",
       "2:8: unexpected end of template, expected 'endfor' or 'else' to close the 'for' at 1:4"},
      {"{% if x %}{% endfor %}", "1:14: unexpected 'endfor'"},
      {"{{ x | frob }}", "1:6: no filter named 'frob'"},
      {"{{ x is frob }}", "1:6: no test named 'frob'"},
      {"{{ 'abc }}", "1:4: unterminated string literal"},
      {"{{ a $ b }}", "1:6: unexpected character '$'"},
      {"x\n {# open", "2:2: missing end of comment tag"},
      {"{{ x ", "1:1: unexpected end of template, missing '}}'"},
      {"{{ (1 ] }}", "1:7: unexpected ']', expected ')'"},
      {"{% break %}", "1:4: 'break' outside of a loop"},
      {"{% include 'x' %}", "1:4: the 'include' tag is not supported"},
      {"{% set x = 1 %}{% set %}", "1:23: unexpected '%}', expected a name"},
      {"{{ f(a=1, 2) }}", "1:11: positional argument follows keyword argument"},
      {R"({{ '\x4' }})", "1:4: truncated \\x escape"},
  };
  for (const SyntaxCase& c : cases) {
    auto program = parse_template(c.source, JinjaLimits());
    ASSERT_FALSE(program.ok()) << c.source;
    EXPECT_EQ(program.error().code(), ErrorCode::kInvalidArgument) << c.source;
    EXPECT_EQ(program.error().message(), c.message) << c.source;
  }
}

TEST(JinjaSyntaxErrors, ColumnsCountCharactersNotBytes) {
  auto program = parse_template("\xC3\xA9\xC3\xA9{{ + }}", JinjaLimits());
  ASSERT_FALSE(program.ok());
  EXPECT_EQ(program.error().message(), "1:8: unexpected '}}', expected an expression");
}

TEST(JinjaParser, OperatorPrecedenceFollowsJinja) {
  EXPECT_EQ(render_ok("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}"),
            "7 9 64 4");
  // ~ binds tighter than +, so 1 + 2 ~ 3 is 1 + '23', a type error as in Jinja.
  EXPECT_EQ(render_ok("{{ 2 * 3 ~ 4 }} {{ (1 + 2) ~ 3 }} {{ not 1 == 2 }}"), "64 33 True");
  EXPECT_EQ(render_error("{{ 1 + 2 ~ 3 }}").code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(render_ok("{{ -3 | abs }} {{ ('a' ~ 'b') | upper }} {{ 'ab' | upper ~ 'c' }}"),
            "3 AB ABc");
  EXPECT_EQ(render_ok("{{ 1 if false else 2 if false else 3 }}"), "3");
  EXPECT_EQ(render_ok("[{{ d[1, 2] }}]", {{"d", testing::dict({})}}), "[]");  // Tuple keys.
}

TEST(JinjaParser, UnknownFiltersInsideAnIfFailOnlyWhenEvaluated) {
  // As in Jinja: templates guard filters some environments lack behind an if.
  EXPECT_EQ(render_ok("{% if false %}{{ x | no_such }}{% endif %}"
                      "{{ 'a' if true else y is no_such_test }}"),
            "a");
  EXPECT_EQ(render_error("{{ 'b' if false else 'c' | x.y }}").message(),
            "1:26: no filter named 'x.y'");
  EXPECT_EQ(render_error("{% if true %}{{ x | no_such }}{% endif %}").message(),
            "1:19: no filter named 'no_such'");
  // Loop bodies are not soft, even inside an if.
  EXPECT_FALSE(
      parse_template("{% if x %}{% for y in z %}{{ y | no_such }}{% endfor %}{% endif %}", {})
          .ok());
}

TEST(JinjaParser, TestArgumentsWithoutParentheses) {
  EXPECT_EQ(render_ok("{{ 6 is divisibleby 3 }}{{ x is sameas none }}{{ 'a' is in 'cat' }}",
                      {{"x", Value::none()}}),
            "TrueTrueTrue");
  EXPECT_EQ(render_ok("{{ 'y' if x is defined else 'n' }}"), "n");
  EXPECT_EQ(render_ok("{{ x is defined and x }}", {{"x", str("v")}}), "v");
}

}  // namespace
}  // namespace spillway::serve::jinja
