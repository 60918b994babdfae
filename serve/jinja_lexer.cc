#include "serve/jinja_lexer.h"

#include <fmt/core.h>

#include <charconv>
#include <optional>

#include "serve/jinja_strings.h"

namespace spillway::serve::jinja {
namespace {

// \r\n and \r become \n; one trailing newline is dropped (keep_trailing_newline=False).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(std::string source, const JinjaLimits& limits) : src_(std::move(source)), limits_(limits) {}

  Result<std::vector<Token>> run() {
    while (pos_ < src_.size()) {
      const std::size_t tag = find_tag_start(pos_);
      if (tag == std::string::npos) {
        emit_text(pos_, src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      SPW_TRY(lex_tag(tag));
    }
    Token end;
    end.kind = TokenKind::kEnd;
    end.pos = position(src_.size());
    tokens_.push_back(std::move(end));
    return std::move(tokens_);
  }

 private:
  std::size_t find_tag_start(std::size_t from) const {
    for (std::size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return std::string::npos;
  }

  // Position of byte `offset`. Offsets mostly increase, so the cursor moves forward; an
  // earlier offset (an error about a tag already partly read) rescans from the start.
  SourcePos position(std::size_t offset) {
    if (offset < cursor_) {
      cursor_ = 0;
      cursor_pos_ = SourcePos();
    }
    while (cursor_ < offset && cursor_ < src_.size()) {
      if (src_[cursor_] == '\n') {
        ++cursor_pos_.line;
        cursor_pos_.column = 1;
        ++cursor_;
      } else {
        cursor_ += utf8_char_length(src_, cursor_);
        ++cursor_pos_.column;
      }
    }
    return cursor_pos_;
  }

  void emit_text(std::size_t offset, std::string_view text) {
    if (text.empty()) return;
    Token t;
    t.kind = TokenKind::kText;
    t.pos = position(offset);
    t.text = std::string(text);
    tokens_.push_back(std::move(t));
  }

  void emit(TokenKind kind, std::size_t offset, std::string text = {}) {
    Token t;
    t.kind = kind;
    t.pos = position(offset);
    t.text = std::move(text);
    tokens_.push_back(std::move(t));
  }

  // Whitespace control for the text before a tag; `sign` is '-', '+' or 0. Variable tags
  // ({{) are not subject to lstrip_blocks.
  std::string_view control_text(std::string_view text, char sign, bool lstrip) const {
    if (sign == '-') return python_strip(text, false, true);
    if (sign == '+' || !lstrip) return text;
    const std::size_t newline = text.rfind('\n');
    const std::size_t line_begin = newline == std::string_view::npos ? 0 : newline + 1;
    if (line_begin == 0 && !line_starting_) return text;
    const std::string_view tail = text.substr(line_begin);
    if (tail.empty() || !python_strip(tail, true, false).empty()) return text;
    return text.substr(0, line_begin);
  }

  std::size_t skip_python_space(std::size_t i) const {
    while (i < src_.size()) {
      std::size_t len = 0;
      const char32_t cp = utf8_decode(src_, i, &len);
      if (!((len > 1 || cp < 0x80) && is_python_space(cp))) break;
      i += len;
    }
    return i;
  }

  // Matches `{%[-+]? \s* keyword \s*` at `at`; returns the offset after it.
  std::optional<std::size_t> match_keyword_tag(std::size_t at, std::string_view keyword,
                                               char* sign) const {
    if (src_.compare(at, 2, "{%") != 0) return std::nullopt;
    std::size_t i = at + 2;
    *sign = 0;
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) *sign = src_[i++];
    i = skip_python_space(i);
    if (src_.compare(i, keyword.size(), keyword) != 0) return std::nullopt;
    i += keyword.size();
    return skip_python_space(i);
  }

  Status lex_tag(std::size_t tag) {
    const char type = src_[tag + 1];
    std::size_t inner = tag + 2;
    char sign = 0;
    if (inner < src_.size() && (src_[inner] == '-' || src_[inner] == '+')) sign = src_[inner++];
    const std::string_view text(src_.data() + pos_, tag - pos_);

    // {% raw %}: a raw begin takes no '+' before its %} and no trim_blocks newline after it.
    char raw_sign = 0;
    if (type == '%') {
      if (auto after = match_keyword_tag(tag, "raw", &raw_sign)) {
        std::size_t i = *after;
        bool minus_end = false;
        if (src_.compare(i, 3, "-%}") == 0) {
          minus_end = true;
          i += 3;
        } else if (src_.compare(i, 2, "%}") == 0) {
          i += 2;
        } else {
          i = std::string::npos;
        }
        if (i != std::string::npos) {
          emit_text(pos_, control_text(text, sign, true));
          if (minus_end) i = skip_python_space(i);
          set_line_starting(i);
          return lex_raw(tag, i);
        }
      }
    }

    emit_text(pos_, control_text(text, sign, type != '{'));
    if (type == '#') return lex_comment(tag, inner);
    return lex_expression_tag(tag, inner, type == '{');
  }

  void set_line_starting(std::size_t end_of_match) {
    line_starting_ = end_of_match > 0 && src_[end_of_match - 1] == '\n';
  }

  Status lex_comment(std::size_t tag, std::size_t content) {
    const std::size_t close = src_.find("#}", content);
    if (close == std::string::npos) {
      // Jinja's lexer stops quietly at a comment opened at the very end of the template.
      if (content >= src_.size()) {
        pos_ = src_.size();
        return {};
      }
      return syntax_error(position(tag), "missing end of comment tag");
    }
    std::size_t end = close + 2;
    const char before = close > content ? src_[close - 1] : 0;
    if (before == '-') {
      end = skip_python_space(end);
    } else if (before != '+' && end < src_.size() && src_[end] == '\n') {
      ++end;  // trim_blocks
    }
    set_line_starting(end);
    pos_ = end;
    return {};
  }

  Status lex_raw(std::size_t tag, std::size_t content) {
    for (std::size_t i = src_.find("{%", content); i != std::string::npos;
         i = src_.find("{%", i + 1)) {
      char sign = 0;
      const auto after = match_keyword_tag(i, "endraw", &sign);
      if (!after) continue;
      std::size_t end = *after;
      bool matched = true;
      if (src_.compare(end, 3, "+%}") == 0) {
        end += 3;
      } else if (src_.compare(end, 3, "-%}") == 0) {
        end = skip_python_space(end + 3);
      } else if (src_.compare(end, 2, "%}") == 0) {
        end += 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        matched = false;
      }
      if (!matched) continue;
      emit_text(content,
                control_text(std::string_view(src_).substr(content, i - content), sign, true));
      set_line_starting(end);
      pos_ = end;
      return {};
    }
    return syntax_error(position(tag), "missing end of raw directive");
  }

  // Tries the end of the current tag at `i`; returns the offset after it.
  std::optional<std::size_t> match_tag_end(std::size_t i, bool variable) const {
    if (variable) {
      if (src_.compare(i, 3, "-}}") == 0) return skip_python_space(i + 3);
      if (src_.compare(i, 2, "}}") == 0) return i + 2;
      return std::nullopt;
    }
    if (src_.compare(i, 3, "+%}") == 0) return i + 3;
    if (src_.compare(i, 3, "-%}") == 0) return skip_python_space(i + 3);
    if (src_.compare(i, 2, "%}") == 0) {
      std::size_t end = i + 2;
      if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
      return end;
    }
    return std::nullopt;
  }

  Status lex_expression_tag(std::size_t tag, std::size_t i, bool variable) {
    emit(variable ? TokenKind::kVariableBegin : TokenKind::kBlockBegin, tag);
    std::string brackets;  // Expected closing brackets, innermost last.
    while (true) {
      while (i < src_.size() && is_ascii_space(src_[i]))
        ++i;
      if (i >= src_.size()) {
        return syntax_error(position(tag), variable ? "unexpected end of template, missing '}}'"
                                                    : "unexpected end of template, missing '%}'");
      }
      if (brackets.empty()) {
        if (auto end = match_tag_end(i, variable)) {
          emit(variable ? TokenKind::kVariableEnd : TokenKind::kBlockEnd, i);
          set_line_starting(*end);
          pos_ = *end;
          return {};
        }
      }
      const char c = src_[i];
      if (is_digit(c)) {
        SPW_ASSIGN_OR_RETURN(i, lex_number(i));
      } else if (is_name_start(c)) {
        const std::size_t start = i;
        while (i < src_.size() && is_name_char(src_[i]))
          ++i;
        emit(TokenKind::kName, start, src_.substr(start, i - start));
      } else if (c == '\'' || c == '"') {
        SPW_ASSIGN_OR_RETURN(i, lex_string(i));
      } else {
        SPW_ASSIGN_OR_RETURN(i, lex_operator(i, &brackets));
      }
    }
  }

  Result<std::size_t> lex_operator(std::size_t i, std::string* brackets) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const std::string_view op : kTwo) {
      if (src_.compare(i, 2, op) == 0) {
        emit(TokenKind::kOperator, i, std::string(op));
        return i + 2;
      }
    }
    const char c = src_[i];
    static constexpr std::string_view kOne = "+-/*%~[](){}=<>.:|,;";
    if (kOne.find(c) == std::string_view::npos) {
      std::size_t len = 0;
      (void)utf8_decode(src_, i, &len);
      return syntax_error(position(i),
                          fmt::format("unexpected character '{}'", src_.substr(i, len)));
    }
    if (c == '(' || c == '[' || c == '{') {
      if (brackets->size() >= limits_.max_nesting_depth)
        return make_error(ErrorCode::kOutOfRange, "{}:{}: brackets nested deeper than {}",
                          position(i).line, position(i).column, limits_.max_nesting_depth);
      brackets->push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets->empty()) return syntax_error(position(i), fmt::format("unexpected '{}'", c));
      if (brackets->back() != c) {
        return syntax_error(position(i),
                            fmt::format("unexpected '{}', expected '{}'", c, brackets->back()));
      }
      brackets->pop_back();
    }
    emit(TokenKind::kOperator, i, std::string(1, c));
    return i + 1;
  }

  // Digits with single underscores between them, as Python allows: 1_000.
  std::size_t scan_digits(std::size_t i) const {
    if (i >= src_.size() || !is_digit(src_[i])) return i;
    while (i < src_.size()) {
      if (is_digit(src_[i])) {
        ++i;
      } else if (src_[i] == '_' && i + 1 < src_.size() && is_digit(src_[i + 1])) {
        i += 2;
      } else {
        break;
      }
    }
    return i;
  }

  Result<std::size_t> lex_number(std::size_t start) {
    // A float first, as Jinja does, unless the number follows a '.' (as in x.0.1).
    const bool after_dot = start > 0 && src_[start - 1] == '.';
    std::size_t i = scan_digits(start);
    bool is_float = false;
    if (!after_dot) {
      if (i + 1 < src_.size() && src_[i] == '.' && is_digit(src_[i + 1])) {
        i = scan_digits(i + 1);
        is_float = true;
      }
      if (i < src_.size() && (src_[i] == 'e' || src_[i] == 'E')) {
        std::size_t j = i + 1;
        if (j < src_.size() && (src_[j] == '+' || src_[j] == '-')) ++j;
        const std::size_t k = scan_digits(j);
        if (k > j) {
          i = k;
          is_float = true;
        }
      }
    }
    if (is_float) {
      std::string digits;
      for (std::size_t k = start; k < i; ++k)
        if (src_[k] != '_') digits.push_back(src_[k]);
      double value = 0;
      const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (r.ec != std::errc()) return syntax_error(position(start), "invalid float literal");
      Token t;
      t.kind = TokenKind::kFloat;
      t.pos = position(start);
      t.number = value;
      tokens_.push_back(std::move(t));
      return i;
    }
    return lex_integer(start);
  }

  Result<std::size_t> lex_integer(std::size_t start) {
    int base = 10;
    std::size_t i = start;
    if (src_[i] == '0' && i + 1 < src_.size()) {
      const char p = src_[i + 1];
      if (p == 'x' || p == 'X') base = 16;
      if (p == 'o' || p == 'O') base = 8;
      if (p == 'b' || p == 'B') base = 2;
    }
    std::string digits;
    if (base != 10) {
      i += 2;
      while (i < src_.size()) {
        std::size_t j = i;
        if (src_[j] == '_') ++j;
        const int v = j < src_.size() ? hex_value(src_[j]) : -1;
        if (v < 0 || v >= base) break;
        digits.push_back(src_[j]);
        i = j + 1;
      }
      if (digits.empty()) return syntax_error(position(start), "invalid integer literal");
    } else if (src_[i] == '0') {
      // "0", "00", "0_0": a leading zero is followed by zeros only.
      ++i;
      while (i < src_.size() &&
             (src_[i] == '0' || (src_[i] == '_' && i + 1 < src_.size() && src_[i + 1] == '0')))
        ++i;
      digits = "0";
    } else {
      const std::size_t end = scan_digits(i);
      for (std::size_t k = i; k < end; ++k)
        if (src_[k] != '_') digits.push_back(src_[k]);
      i = end;
    }
    std::int64_t value = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
    if (r.ec != std::errc() || r.ptr != digits.data() + digits.size())
      return syntax_error(position(start), "integer literal out of range");
    Token t;
    t.kind = TokenKind::kInteger;
    t.pos = position(start);
    t.integer = value;
    tokens_.push_back(std::move(t));
    return i;
  }

  Result<std::size_t> lex_string(std::size_t start) {
    const char quote = src_[start];
    std::size_t i = start + 1;
    while (i < src_.size() && src_[i] != quote) {
      if (src_[i] == '\\') ++i;
      ++i;
    }
    if (i >= src_.size()) return syntax_error(position(start), "unterminated string literal");
    SPW_ASSIGN_OR_RETURN(
        std::string value,
        decode_escapes(std::string_view(src_).substr(start + 1, i - start - 1), start));
    emit(TokenKind::kString, start, std::move(value));
    return i + 1;
  }

  // Python's unicode-escape decoding of a string literal's body.
  Result<std::string> decode_escapes(std::string_view body, std::size_t start) {
    std::string out;
    out.reserve(body.size());
    for (std::size_t i = 0; i < body.size(); ++i) {
      if (body[i] != '\\' || i + 1 >= body.size()) {
        out.push_back(body[i]);
        continue;
      }
      const char e = body[++i];
      switch (e) {
        case '\n':
          break;  // Line continuation.
        case '\\':
        case '\'':
        case '"':
          out.push_back(e);
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const std::size_t n = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          char32_t cp = 0;
          for (std::size_t k = 1; k <= n; ++k) {
            const int v = i + k < body.size() ? hex_value(body[i + k]) : -1;
            if (v < 0)
              return syntax_error(position(start), fmt::format("truncated \\{} escape", e));
            cp = cp * 16 + static_cast<char32_t>(v);
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return syntax_error(position(start), "escape names no valid character");
          append_utf8(cp, &out);
          i += n;
          break;
        }
        case 'N':
          return syntax_error(position(start), "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0;
                 k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
              cp = cp * 8 + static_cast<char32_t>(body[++i] - '0');
            append_utf8(cp, &out);
          } else {
            out.push_back('\\');  // Unknown escapes stay as they are.
            out.push_back(e);
          }
      }
    }
    return out;
  }

  std::string src_;
  const JinjaLimits& limits_;
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  bool line_starting_ = true;
  std::size_t cursor_ = 0;
  SourcePos cursor_pos_;
};

}  // namespace

Result<std::vector<Token>> tokenize(std::string_view source, const JinjaLimits& limits) {
  if (source.size() > limits.max_template_bytes) {
    return make_error(ErrorCode::kOutOfRange, "template of {} bytes exceeds the limit of {}",
                      source.size(), limits.max_template_bytes);
  }
  return Lexer(normalize_newlines(source), limits).run();
}

}  // namespace spillway::serve::jinja
