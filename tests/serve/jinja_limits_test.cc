// Every JinjaLimits bound is enforced: a template that exceeds one fails with kOutOfRange
// instead of hanging, exhausting memory or overflowing the stack, and the same template
// renders when the limit allows it.
#include <gtest/gtest.h>

#include <string>

#include "serve/jinja_test_util.h"

namespace spillway::serve::jinja {
namespace {

using testing::render_error;
using testing::render_ok;
using testing::try_render;

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

RenderOptions with(void (*set)(JinjaLimits&)) {
  RenderOptions options;
  set(options.limits);
  return options;
}

TEST(JinjaLimits, TemplateSize) {
  const std::string source(2000, 'x');
  const RenderOptions small = with([](JinjaLimits& l) { l.max_template_bytes = 1000; });
  Error e = render_error(source, {}, small);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(e.message(), "template of 2000 bytes exceeds the limit of 1000");
  EXPECT_EQ(render_ok(source), source);
}

TEST(JinjaLimits, NestedBlocks) {
  const std::string source = repeat("{% if true %}", 80) + "x" + repeat("{% endif %}", 80);
  EXPECT_EQ(render_error(source).code(), ErrorCode::kOutOfRange);  // Default depth 64.
  const RenderOptions deep = with([](JinjaLimits& l) { l.max_nesting_depth = 100; });
  EXPECT_EQ(render_ok(source, {}, deep), "x");
}

TEST(JinjaLimits, NestedBrackets) {
  const std::string source = "{{ " + repeat("(", 500) + "1" + repeat(")", 500) + " }}";
  Error e = render_error(source);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(e.message().find("nested deeper than 64"), std::string::npos) << e.message();
  EXPECT_EQ(render_ok("{{ " + repeat("(", 20) + "1" + repeat(")", 20) + " }}"), "1");
  EXPECT_EQ(render_error("{{ " + repeat("not ", 500) + "x }}").code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(render_error("{{ " + repeat("- ", 500) + "1 }}").code(), ErrorCode::kOutOfRange);
}

TEST(JinjaLimits, ExpressionHeight) {
  const std::string chain = "{{ 0" + repeat(" + 1", 1000) + " }}";
  EXPECT_EQ(render_error(chain).code(), ErrorCode::kOutOfRange);
  const RenderOptions tall = with([](JinjaLimits& l) {
    l.max_syntax_height = 2000;
    l.max_recursion_depth = 4000;
  });
  EXPECT_EQ(render_ok(chain, {}, tall), "1000");
}

TEST(JinjaLimits, OutputSize) {
  const RenderOptions small = with([](JinjaLimits& l) { l.max_output_bytes = 500; });
  const char* source = "{% for i in range(100) %}0123456789{% endfor %}";
  Error e = render_error(source, {}, small);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(e.message().find("output exceeds the limit of 500 bytes"), std::string::npos);
  EXPECT_EQ(render_ok(source).size(), 1000u);
}

TEST(JinjaLimits, StringsBuiltOnTheWay) {
  const RenderOptions small = with([](JinjaLimits& l) { l.max_output_bytes = 1000; });
  // Never allocated: the size is checked before the string is built.
  EXPECT_EQ(render_error("{% set s = 'a' * 1000000000000 %}", {}, small).code(),
            ErrorCode::kOutOfRange);
  EXPECT_EQ(render_error("{% set s = 'ab' * 600 %}", {}, small).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(render_error("{% set s = ('x' * 600) ~ ('y' * 600) %}", {}, small).code(),
            ErrorCode::kOutOfRange);
  EXPECT_EQ(render_ok("{% set s = 'ab' * 400 %}{{ s | length }}", {}, small), "800");
}

TEST(JinjaLimits, LoopIterations) {
  // All loops of a render count together: 10 outer + 100 inner iterations.
  const char* source = "{% for i in range(10) %}{% for j in range(10) %}{% endfor %}{% endfor %}ok";
  const RenderOptions few = with([](JinjaLimits& l) { l.max_loop_iterations = 100; });
  Error e = render_error(source, {}, few);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(e.message().find("exceeded 100 loop iterations"), std::string::npos) << e.message();
  const RenderOptions enough = with([](JinjaLimits& l) { l.max_loop_iterations = 110; });
  EXPECT_EQ(render_ok(source, {}, enough), "ok");
}

TEST(JinjaLimits, CollectionSize) {
  Error e = render_error("{% set r = range(1000000000000) %}");
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(render_error("{% set r = [1] * 200000 %}").code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(render_ok("{{ range(100000) | length }}"), "100000");
}

TEST(JinjaLimits, Steps) {
  // Quadratic growth through a namespace: each step copies the whole string.
  const char* source =
      "{% set ns = namespace(s='') %}{% for i in range(100000) %}"
      "{% set ns.s = ns.s ~ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' %}"
      "{% endfor %}";
  const RenderOptions cheap = with([](JinjaLimits& l) { l.max_steps = 1'000'000; });
  Error e = render_error(source, {}, cheap);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(e.message().find("evaluation steps"), std::string::npos) << e.message();
}

TEST(JinjaLimits, MacroRecursion) {
  const char* source = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
  Error e = render_error(source);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(e.message().find("recursion deeper than 512"), std::string::npos) << e.message();
  EXPECT_EQ(render_ok("{% macro f(n) %}{% if n < 5 %}{{ n }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
                      "{{ f(0) }}"),
            "01234");
}

TEST(JinjaLimits, NestedValues) {
  const char* source =
      "{% set ns = namespace(x=[]) %}{% for i in range(100) %}{% set ns.x = [ns.x] %}{% endfor %}"
      "{{ ns.x }}";
  EXPECT_EQ(render_error(source).code(), ErrorCode::kOutOfRange);
  const RenderOptions deep = with([](JinjaLimits& l) { l.max_nesting_depth = 200; });
  EXPECT_TRUE(try_render(source, {}, deep).ok());
}

}  // namespace
}  // namespace spillway::serve::jinja
