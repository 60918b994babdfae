// Splits a Jinja template into tokens, with the whitespace handling transformers configures
// for chat templates: trim_blocks (the first newline after a block or comment tag is removed),
// lstrip_blocks (spaces and tabs before a block or comment tag at the start of a line are
// removed), the `-` and `+` markers on tags, and Jinja's newline handling of the source
// (\r\n and \r read as \n; one trailing newline dropped). `{# comments #}` produce no tokens;
// `{% raw %}...{% endraw %}` produces its content as text.
//
// Inside tags: names, string literals (with Python's escapes decoded), integers, floats and
// operators. A tag ends only when its brackets are balanced, so "{{ {'a': {}} }}" works.
//
// Errors: kInvalidArgument naming line:column (unterminated tag, comment, string or raw block,
// unexpected character, unbalanced bracket); kOutOfRange past limits.max_template_bytes.
//
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "serve/jinja_error.h"
#include "serve/jinja_limits.h"

namespace spillway::serve::jinja {

enum class TokenKind : std::uint8_t {
  kText,           // text: the literal output, whitespace control applied
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,           // text: identifier (keywords too)
  kString,         // text: decoded value
  kInteger,        // integer
  kFloat,          // number
  kOperator,       // text: + - * / // % ** ~ == != < <= > >= = . : | , ; ( ) [ ] { }
  kEnd,            // end of the template
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  SourcePos pos;
  std::string text;
  std::int64_t integer = 0;
  double number = 0;
};

// The tokens of `source`, ending with one kEnd token.
[[nodiscard]] Result<std::vector<Token>> tokenize(std::string_view source,
                                                  const JinjaLimits& limits);

}  // namespace spillway::serve::jinja
