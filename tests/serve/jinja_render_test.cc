// Rendering: Python semantics of expressions, Jinja's statements and scoping, filters, tests,
// methods, Undefined, and runtime errors that name line:column.
#include <gtest/gtest.h>

#include <string>

#include "serve/jinja_test_util.h"

namespace spillway::serve::jinja {
namespace {

using testing::dict;
using testing::list;
using testing::render_error;
using testing::render_ok;
using testing::str;

Variables conversation() {
  return {{"messages", list({dict({{"role", str("system")}, {"content", str("S")}}),
                             dict({{"role", str("user")}, {"content", str("U1")}}),
                             dict({{"role", str("assistant")}, {"content", str("A")}}),
                             dict({{"role", str("user")}, {"content", str("U2")}})})}};
}

TEST(JinjaExpressions, ArithmeticIsPythons) {
  EXPECT_EQ(
      render_ok("{{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }}"),
      "3.5 2.0 3 -4 2 -2");
  EXPECT_EQ(render_ok("{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 10.0 // 3 }} {{ 5.5 % 2 }} {{ true + 1 }}"),
            "1024 0.5 3.0 1.5 2");
  EXPECT_EQ(render_ok("{{ 'ab' * 2 }} {{ [0] * 3 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 3 * 'x' }}"),
            "abab [0, 0, 0] [1, 2] ab xxx");
}

TEST(JinjaExpressions, FloatsPrintAsPythonReprs) {
  EXPECT_EQ(
      render_ok("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }} "
                "{{ 1.5e300 * 1e5 }} {{ 2.0 }}"),
      "0.30000000000000004 1e+16 1000000000000000.0 1e-05 0.0001 -0.0 1.5000000000000001e+305 2.0");
}

TEST(JinjaExpressions, ValuesPrintAsPythonStr) {
  EXPECT_EQ(render_ok("{{ none }} {{ true }} {{ [1, 'a', none, false, 1.5, [2]] }} {{ {'a': 1} }} "
                      "{{ (1,) }} {{ (1, 2) }} {{ () }}"),
            "None True [1, 'a', None, False, 1.5, [2]] {'a': 1} (1,) (1, 2) ()");
  EXPECT_EQ(render_ok(R"({{ ["it's", 'say "hi"', 'both \' "', 'x\ny'] }})"),
            R"(["it's", 'say "hi"', 'both \' "', 'x\ny'])");
}

TEST(JinjaExpressions, ComparisonsChainAndMixNumbers) {
  EXPECT_EQ(render_ok("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ true == 1 }} "
                      "{{ [1, 2] < [1, 3] }} {{ 'a' < 'b' }} {{ {'a': 1} == {'a': 1} }}"),
            "True False True True True True True");
  EXPECT_EQ(render_error("{{ 1 < 'a' }}").message(),
            "1:6: '<' not supported between instances of 'int' and 'str'");
}

TEST(JinjaExpressions, AndOrReturnAnOperand) {
  EXPECT_EQ(render_ok("{{ 0 or 'x' }} {{ '' and 'y' }}|{{ [] or [1] }} {{ 'a' and 'b' }}"),
            "x |[1] b");
  // The right side is not evaluated when the left decides.
  EXPECT_EQ(render_ok("{{ true or undefined_thing.attr }}"), "True");
}

TEST(JinjaExpressions, MembershipAndConditionals) {
  EXPECT_EQ(render_ok("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'q' not in d }}",
                      {{"d", dict({{"k", Value::integer(1)}})}}),
            "True True True True");
  EXPECT_EQ(render_ok("{{ 'y' if x else 'n' }}|{{ 'a' if false }}|", {{"x", Value::boolean(true)}}),
            "y||");
  EXPECT_EQ(render_ok("{{ 'n=' ~ 3 ~ none ~ missing }}"), "n=3None");
}

TEST(JinjaExpressions, AttributesItemsAndSlices) {
  const Variables v = conversation();
  EXPECT_EQ(
      render_ok("{{ messages[0]['role'] }} {{ messages[0].content }} {{ messages[-1].role }}", v),
      "system S user");
  EXPECT_EQ(render_ok("{{ messages[1:] | length }} {{ messages[1:3] | map(attribute='content') | "
                      "join(',') }} {{ messages[::-1][0].content }} {{ messages[::2] | length }}",
                      v),
            "3 U1,A U2 2");
  EXPECT_EQ(
      render_ok("{{ 'h\xC3\xA9llo'[1] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ 'ab'[-1] }}"),
      "\xC3\xA9 el olleh b");
  // Missing keys, indexes and attributes are undefined, not errors.
  EXPECT_EQ(render_ok("[{{ messages[9] }}{{ messages[0].nothing }}{{ messages[0]['x'] }}{{ "
                      "'s'.nothing }}{{ none.x }}]",
                      v),
            "[]");
}

TEST(JinjaUndefined, IsFalsyEmptyAndIterableAsEmpty) {
  EXPECT_EQ(render_ok("[{{ missing }}]"), "[]");
  EXPECT_EQ(render_ok("{{ missing is defined }} {{ missing is not defined }} {{ not missing }}"),
            "False True True");
  EXPECT_EQ(
      render_ok("{{ missing | default('d') }} {{ missing | length }} "
                "{% for x in missing %}never{% else %}empty{% endfor %} {{ missing == missing }}"),
      "d 0 empty True");
  EXPECT_EQ(render_ok("{{ '' | default('e', true) }} {{ none | default('kept') }}"), "e None");
}

TEST(JinjaUndefined, FailsWhenUsedWithItsNameAndPosition) {
  Error e = render_error("line one\n{{ foo.bar }}");
  EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(e.message(), "2:7: 'foo' is undefined");
  EXPECT_EQ(render_error("{{ foo + 1 }}").message(), "1:8: 'foo' is undefined");
  EXPECT_EQ(render_error("{{ d.x.y }}", {{"d", dict({})}}).message(),
            "1:7: 'dict object' has no attribute 'x'");
  EXPECT_EQ(render_error("{{ nothing() }}").message(), "1:11: 'nothing' is undefined");
}

TEST(JinjaStatements, IfElifElse) {
  EXPECT_EQ(render_ok("{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}"
                      "many{% endif %},{% endfor %}"),
            "one,two,many,");
}

TEST(JinjaStatements, ForLoopVariables) {
  EXPECT_EQ(
      render_ok("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
                "{{ loop.cycle('+', '-') }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}"),
      "1032TrueFalse3+b;2121FalseFalse3-ac;3210FalseTrue3+b;");
}

TEST(JinjaStatements, ForElseBreakContinueFilterAndUnpacking) {
  EXPECT_EQ(render_ok("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render_ok("{% for n in [1, 2, 3, 4] %}{% if n == 2 %}{% continue %}{% endif %}"
                      "{% if n == 4 %}{% break %}{% endif %}{{ n }}{% endfor %}"),
            "13");
  EXPECT_EQ(render_ok("{% for x in [1, 2, 3, 4] if x % 2 == 0 %}{{ loop.index }}:{{ x }}"
                      "{% if not loop.last %},{% endif %}{% endfor %}"),
            "1:2,2:4");
  EXPECT_EQ(render_ok("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
                      {{"d", dict({{"x", Value::integer(1)}, {"y", str("z")}})}}),
            "x=1;y=z;");
  EXPECT_EQ(render_ok("{% for k in d %}{{ k }}{% endfor %}",
                      {{"d", dict({{"b", Value::none()}, {"a", Value::none()}})}}),
            "ba");  // Dicts keep insertion order.
  EXPECT_EQ(render_error("{% for a, b in [1] %}{% endfor %}").message(),
            "1:4: cannot unpack non-sequence int");
}

TEST(JinjaStatements, SetInALoopDoesNotLeakButNamespacesDo) {
  EXPECT_EQ(render_ok("{% set a = 1 %}{% for x in [1] %}{% set a = 2 %}{{ a }}{% endfor %}{{ a }}"
                      "{% if true %}{% set b = 3 %}{% endif %}{{ b }}"),
            "213");
  EXPECT_EQ(render_ok("{% set ns = namespace(total=0, seen=false) %}{% for x in [1, 2, 3] %}"
                      "{% set ns.total = ns.total + x %}{% if x == 2 %}{% set ns.seen = true %}"
                      "{% endif %}{% endfor %}{{ ns.total }} {{ ns.seen }}"),
            "6 True");
  EXPECT_EQ(render_ok("{% set ns = namespace() %}{% set ns.a = 'x' %}{{ ns.a }}[{{ ns.b }}]"),
            "x[]");
  EXPECT_EQ(render_ok("{% set a, b = [1, 2] %}{{ a }}{{ b }} {% set t = 1, 2 %}{{ t }}"),
            "12 (1, 2)");
  EXPECT_EQ(render_error("{% set d = {} %}{% set d.a = 1 %}").message(),
            "1:20: cannot assign attribute on non-namespace object 'd'");
  EXPECT_EQ(render_error("{% set ns = namespace() %}{% set ns.self = [ns] %}").code(),
            ErrorCode::kFailedPrecondition);
}

TEST(JinjaStatements, MacrosSetBlocksAndFilterBlocks) {
  EXPECT_EQ(render_ok("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!"
                      "{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} "
                      "{{ greet(name='Zo') }}"),
            "Hello, Bob! Hi, Al! Hello, Zo!");
  // A macro sees the template's variables but not its caller's loop variables.
  EXPECT_EQ(render_ok("{% set top = 'T' %}{% macro m() %}{{ top }}{{ x }}{% endmacro %}"
                      "{% for x in [1] %}{{ m() }}{% endfor %}"),
            "T");
  EXPECT_EQ(render_ok("{% set x %}captured {{ 1 + 1 }}{% endset %}[{{ x }}]"), "[captured 2]");
  EXPECT_EQ(render_ok("{% filter upper %}hello {{ 'world' }}{% endfilter %}"), "HELLO WORLD");
  EXPECT_EQ(render_ok("{% generation %}kept{% endgeneration %}"), "kept");
}

TEST(JinjaFilters, Strings) {
  EXPECT_EQ(
      render_ok(
          "{{ '  hi \t\n' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hello' | upper }}|"
          "{{ 'Hello' | lower }}|{{ 'hELLO wORLD' | capitalize }}|"
          "{{ 'hello wORLD-foo(bar' | title }}|{{ 42 | string }}|{{ 'a-b' | replace('-', '+') }}|"
          "{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'x' | center(5) }}|{{ '<&>' | escape }}"),
      "hi|hi|HELLO|hello|Hello world|Hello World-Foo(Bar|42|a+b|bba|  x  |&lt;&amp;&gt;");
  EXPECT_EQ(render_ok("{{ 'a\nb' | indent(2) }}|{{ 'a\n\nb' | indent(2, true) }}|"
                      "{{ 'a\n\nb' | indent(2, blank=true) }}"),
            "a\n  b|  a\n\n  b|a\n  \n  b");
  // Python strips Unicode whitespace too (U+3000, U+00A0).
  EXPECT_EQ(render_ok("[{{ '\xE3\x80\x80x\xC2\xA0' | trim }}]"), "[x]");
}

TEST(JinjaFilters, Sequences) {
  EXPECT_EQ(render_ok("{{ 'h\xC3\xA9llo' | length }} {{ [1, 2, 3] | count }} {{ [1, 2] | first }} "
                      "{{ [1, 2] | last }} {{ [1, 2, 3] | join(', ') }} {{ [3, 1, 2] | sort }} "
                      "{{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} "
                      "{{ [1, 2, 1] | unique | list }} {{ [1, 5, 3] | max }} {{ [1, 5, 3] | min }} "
                      "{{ [1, 2, 3] | sum }} {{ [1, 2, 3] | reverse | list }} {{ 'abc' | list }}"),
            "5 3 1 2 1, 2, 3 [1, 2, 3] ['A', 'b', 'c'] [3, 2, 1] [1, 2] 5 1 6 [3, 2, 1] "
            "['a', 'b', 'c']");
  const Variables v = conversation();
  EXPECT_EQ(
      render_ok("{{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
                "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='content')"
                " | join(',') }} {{ [1, 2, 3, 4] | select('odd') | list }} "
                "{{ [1, 2, 3, 4] | reject('even') | list }} {{ [0, 1, '', 'a'] | select | list }}"
                " {{ ['a', 'b'] | map('upper') | join }}",
                v),
      "2 S,A [1, 3] [1, 3] [1, 'a'] AB");
  EXPECT_EQ(render_ok("{{ {'b': 2, 'a': 1} | dictsort }} {{ {'a': 1} | items | list }} "
                      "{{ [1, 2, 3] | batch(2) | list }} {{ range(1, 10, 4) | list }}"),
            "[('a', 1), ('b', 2)] [('a', 1)] [[1, 2], [3]] [1, 5, 9]");
}

TEST(JinjaFilters, LazyFiltersBehaveAsGenerators) {
  // Jinja's select, map, unique, ... return generators: true even when empty, without len().
  EXPECT_EQ(render_ok("{% if [1] | select('none') %}truthy{% endif %} "
                      "{{ [1] | select('none') | list | length }}"),
            "truthy 0");
  EXPECT_EQ(render_error("{{ [1, 2] | select | length }}").message(),
            "1:20: object of type 'generator' has no len()");
  EXPECT_EQ(render_ok("{{ [3, 1] | reverse | first }} {{ [1, 2] | map('string') | join('-') }}"),
            "1 1-2");
}

TEST(JinjaFilters, Numbers) {
  EXPECT_EQ(render_ok("{{ '42' | int + 1 }} {{ '4.7' | int }} {{ 'x' | int }} {{ 3.9 | int }} "
                      "{{ '0x1f' | int(base=16) }} {{ '1.5' | float }} {{ 'bad' | float }} "
                      "{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3 | round }} "
                      "{{ 2.1 | round(method='ceil') }}"),
            "43 4 0 3 31 1.5 0.0 3 2.57 2.0 3 3.0");
  EXPECT_EQ(render_error("{{ missing | int }}").message(), "1:12: 'missing' is undefined");
}

TEST(JinjaFilters, ToJsonMatchesTransformers) {
  // transformers' tojson: json.dumps(ensure_ascii=False), insertion order, no HTML escaping.
  EXPECT_EQ(render_ok("{{ {'b': 1, 'a': [1, 'x', none, true, 1.5]} | tojson }}"),
            R"({"b": 1, "a": [1, "x", null, true, 1.5]})");
  EXPECT_EQ(render_ok("{{ {'b': 1, 'a': [1, {}]} | tojson(indent=2) }}"),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {}\n  ]\n}");
  EXPECT_EQ(
      render_ok(
          "{{ 'h\xC3\xA9 \"<&>\"\n' | tojson }} {{ '\xC3\xA9' | tojson(ensure_ascii=true) }}"),
      "\"h\xC3\xA9 \\\"<&>\\\"\\n\" \"\\u00e9\"");
  EXPECT_EQ(render_ok("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }} "
                      "{{ [1, 2] | tojson(separators=(',', ':')) }}"),
            R"({"a": 2, "b": 1} [1,2])");
  EXPECT_EQ(render_error("{{ missing | tojson }}").message(),
            "1:12: Object of type Undefined is not JSON serializable");
}

TEST(JinjaMethods, StringAndDictMethods) {
  EXPECT_EQ(
      render_ok(
          "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  x'.lstrip() }}|"
          "{{ 'x  '.rstrip() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}"
          "{{ 'abc'.startswith(('x', 'a')) }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|"
          "{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ 'ABC'.lower() }}"
          "{{ 'abc'.upper() }}|{{ \"they're bill's\".title() }}|{{ 'h\xC3\xA9llo'.find('l') }}|"
          "{{ '-'.join(['a', 'b']) }}|{{ 'a\nb\r\nc'.splitlines() }}|{{ 'aXbXc'.count('X') }}"),
      "a b|a|x|x|TrueTrueTrue|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a b', 'c']|"
      "abcABC|They'Re Bill'S|2|a-b|['a', 'b', 'c']|2");
  EXPECT_EQ(render_ok("{{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.keys() | list }} "
                      "{{ d.values() | list }} {{ d.items() | list }}",
                      {{"d", dict({{"a", Value::integer(1)}})}}),
            "1 dflt ['a'] [1] [('a', 1)]");
  EXPECT_EQ(render_ok("{{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }}"), "2 1");
  EXPECT_EQ(render_error("{{ '-'.join([1]) }}").message(),
            "1:12: sequence item 0: expected str instance, int found");
}

TEST(JinjaTests, TypeAndValueTests) {
  EXPECT_EQ(render_ok("{{ s is string }}{{ d is mapping }}{{ s is iterable }}{{ 3 is number }}"
                      "{{ 3 is integer }}{{ 3.0 is float }}{{ true is boolean }}{{ n is none }}"
                      "{{ 4 is even }}{{ 3 is odd }}{{ 'abc' is lower }}{{ 'ABC' is upper }}"
                      "{{ 1 is eq 1 }}{{ 2 is gt 1 }}{{ 'upper' is filter }}{{ d is not mapping }}",
                      {{"s", str("s")}, {"d", dict({})}, {"n", Value::none()}}),
            "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalse");
}

TEST(JinjaGlobals, RangeDictNamespaceAndStrftime) {
  EXPECT_EQ(render_ok("{{ range(3) | list }} {{ range(5, 0, -2) | list }} {{ dict(a=1, b='x') }}"),
            "[0, 1, 2] [5, 3, 1] {'a': 1, 'b': 'x'}");
  // strftime_now exists only when the caller gives a time; templates fall back otherwise.
  const char* tmpl =
      "{% if strftime_now is defined %}{{ strftime_now('%d %b %Y') }}{% else %}none{% endif %}";
  EXPECT_EQ(render_ok(tmpl), "none");
  RenderOptions options;
  options.unix_time_s = 1'700'000'000;  // 2023-11-14T22:13:20Z
  EXPECT_EQ(render_ok(tmpl, {}, options), "14 Nov 2023");
  EXPECT_EQ(render_error("{{ strftime_now('%s') }}", {}, options).code(),
            ErrorCode::kFailedPrecondition);
}

TEST(JinjaGlobals, RaiseExceptionCarriesTheTemplatesMessage) {
  Error e = render_error("a{{ raise_exception('Only user and assistant roles!') }}b");
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(), "Only user and assistant roles!");
  // Also from inside a macro and a loop.
  e = render_error(
      "{% macro check(m) %}{% if m != 'ok' %}{{ raise_exception('bad: ' ~ m) }}"
      "{% endif %}{% endmacro %}{% for m in ['ok', 'no'] %}{{ check(m) }}{% endfor %}");
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(), "bad: no");
}

TEST(JinjaErrors, RuntimeErrorsNameTheirPosition) {
  Error e = render_error("{{ 1 + 'a' }}");
  EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(e.message(), "1:6: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(render_error("\n\n  {{ 1 // 0 }}").message(),
            "3:8: integer division or modulo by zero");
  EXPECT_EQ(render_error("{{ 9223372036854775807 + 1 }}").message(), "1:24: integer overflow");
  EXPECT_EQ(render_error("{{ 5() }}").message(), "1:5: 'int' object is not callable");
  EXPECT_EQ(render_error("{% for x in 5 %}{% endfor %}").message(),
            "1:4: 'int' object is not iterable");
}

}  // namespace
}  // namespace spillway::serve::jinja
