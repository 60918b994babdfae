#include "serve/jinja_strings.h"

#include <fmt/core.h>

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace spillway::serve::jinja {
namespace {

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

char32_t to_lower_cp(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

char32_t to_upper_cp(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x3B1 && c <= 0x3C9) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

bool is_cased(char32_t c) {
  return to_lower_cp(c) != c || to_upper_cp(c) != c || c == 0xDF;
}

// Applies `map` to every character; bytes that start no valid sequence are copied.
template <typename Map>
std::string map_chars(std::string_view s, Map map) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode(s, i, &len);
    if (len == 1 && static_cast<unsigned char>(s[i]) >= 0x80) {
      out.push_back(s[i]);
    } else {
      append_utf8(map(cp), &out);
    }
    i += len;
  }
  return out;
}

bool is_jinja_word_separator(char32_t cp) {
  return is_python_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
}

bool is_line_break(char32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D ||
         cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

// Characters repr() escapes although they are not ASCII controls: C1 controls and the
// non-printable separators and format characters likely to appear in text.
bool repr_escapes(char32_t cp) {
  return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
         (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF;
}

}  // namespace

std::size_t utf8_char_length(std::string_view s, std::size_t i) {
  std::size_t len = 0;
  (void)utf8_decode(s, i, &len);
  return len;
}

char32_t utf8_decode(std::string_view s, std::size_t i, std::size_t* length) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  *length = 1;
  if (c < 0x80) return c;
  std::size_t need = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return c;
  }
  if (i + need >= s.size()) return c;  // Truncated.
  for (std::size_t k = 1; k <= need; ++k) {
    const unsigned char b = byte(i + k);
    const unsigned char min = k == 1 ? lo : 0x80;
    const unsigned char max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) return c;
    cp = (cp << 6) | (b & 0x3F);
  }
  *length = need + 1;
  return cp;
}

void append_utf8(char32_t cp, std::string* out) {
  if (cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); i += utf8_char_length(s, i))
    ++n;
  return n;
}

std::vector<std::size_t> utf8_offsets(std::string_view s) {
  std::vector<std::size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (std::size_t i = 0; i < s.size(); i += utf8_char_length(s, i))
    offsets.push_back(i);
  offsets.push_back(s.size());
  return offsets;
}

bool is_python_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

namespace {

template <typename Pred>
std::string_view strip_if(std::string_view s, bool left, bool right, Pred strip) {
  std::size_t begin = 0;
  std::size_t end = s.size();
  if (left) {
    while (begin < end) {
      std::size_t len = 0;
      const char32_t cp = utf8_decode(s, begin, &len);
      if (!strip(cp, s.substr(begin, len))) break;
      begin += len;
    }
  }
  if (right) {
    while (end > begin) {
      std::size_t start = end - 1;
      while (start > begin && is_continuation(static_cast<unsigned char>(s[start])))
        --start;
      std::size_t len = 0;
      const char32_t cp = utf8_decode(s, start, &len);
      if (start + len != end) {  // Not one valid character: the last byte stands alone.
        start = end - 1;
        len = 1;
      }
      if (!strip(len == 1 ? static_cast<unsigned char>(s[start]) : cp, s.substr(start, len))) break;
      end = start;
    }
  }
  return s.substr(begin, end - begin);
}

}  // namespace

std::string_view python_strip(std::string_view s, bool left, bool right) {
  return strip_if(s, left, right, [](char32_t cp, std::string_view bytes) {
    return (bytes.size() > 1 || cp < 0x80) && is_python_space(cp);
  });
}

std::string_view python_strip_chars(std::string_view s, std::string_view chars, bool left,
                                    bool right) {
  std::vector<std::string_view> set;
  for (std::size_t i = 0; i < chars.size();) {
    const std::size_t len = utf8_char_length(chars, i);
    set.push_back(chars.substr(i, len));
    i += len;
  }
  return strip_if(s, left, right, [&](char32_t, std::string_view bytes) {
    for (const std::string_view c : set)
      if (c == bytes) return true;
    return false;
  });
}

std::string python_lower(std::string_view s) {
  return map_chars(s, to_lower_cp);
}

std::string python_upper(std::string_view s) {
  return map_chars(s, to_upper_cp);
}

std::string python_capitalize(std::string_view s) {
  bool first = true;
  return map_chars(s, [&](char32_t cp) {
    const char32_t out = first ? to_upper_cp(cp) : to_lower_cp(cp);
    first = false;
    return out;
  });
}

std::string python_title(std::string_view s) {
  bool previous_cased = false;
  return map_chars(s, [&](char32_t cp) {
    const bool cased = is_cased(cp);
    const char32_t out = cased ? (previous_cased ? to_lower_cp(cp) : to_upper_cp(cp)) : cp;
    previous_cased = cased;
    return out;
  });
}

std::string jinja_title(std::string_view s) {
  bool word_start = true;
  return map_chars(s, [&](char32_t cp) {
    if (is_jinja_word_separator(cp)) {
      word_start = true;
      return cp;
    }
    const char32_t out = word_start ? to_upper_cp(cp) : to_lower_cp(cp);
    word_start = false;
    return out;
  });
}

std::vector<std::string> python_split(std::string_view s, std::optional<std::string_view> sep,
                                      std::int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep.has_value()) {
    const std::string_view d = *sep;
    if (!from_right) {
      std::size_t start = 0;
      while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
        const std::size_t at = s.find(d, start);
        if (at == std::string_view::npos) break;
        parts.emplace_back(s.substr(start, at - start));
        start = at + d.size();
      }
      parts.emplace_back(s.substr(start));
      return parts;
    }
    std::size_t end = s.size();
    while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
      if (end < d.size()) break;
      const std::size_t at = s.rfind(d, end - d.size());
      if (at == std::string_view::npos) break;
      parts.emplace_back(s.substr(at + d.size(), end - at - d.size()));
      end = at;
    }
    parts.emplace_back(s.substr(0, end));
    return {parts.rbegin(), parts.rend()};
  }
  // Whitespace runs. Work on character boundaries.
  const std::vector<std::size_t> off = utf8_offsets(s);
  const std::size_t n = off.size() - 1;
  const auto space_at = [&](std::size_t k) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode(s, off[k], &len);
    return (len > 1 || cp < 0x80) && is_python_space(cp);
  };
  if (!from_right) {
    std::size_t k = 0;
    while (true) {
      while (k < n && space_at(k))
        ++k;
      if (k == n) break;
      if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) == maxsplit) {
        parts.emplace_back(s.substr(off[k]));
        break;
      }
      const std::size_t begin = k;
      while (k < n && !space_at(k))
        ++k;
      parts.emplace_back(s.substr(off[begin], off[k] - off[begin]));
    }
    return parts;
  }
  std::size_t k = n;
  while (true) {
    while (k > 0 && space_at(k - 1))
      --k;
    if (k == 0) break;
    if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) == maxsplit) {
      parts.emplace_back(s.substr(0, off[k]));
      break;
    }
    const std::size_t end = k;
    while (k > 0 && !space_at(k - 1))
      --k;
    parts.emplace_back(s.substr(off[k], off[end] - off[k]));
  }
  return {parts.rbegin(), parts.rend()};
}

std::vector<std::string_view> python_splitlines(std::string_view s) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode(s, i, &len);
    if ((len > 1 || cp < 0x80) && is_line_break(cp)) {
      lines.push_back(s.substr(start, i - start));
      if (cp == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++len;
      start = i + len;
    }
    i += len;
  }
  if (start < s.size()) lines.push_back(s.substr(start));
  return lines;
}

std::string format_python_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  // Shortest round-trip digits in scientific form, re-laid out by Python's rules: fixed
  // notation when -4 <= exponent < 16, else an exponent of at least two digits.
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(result.ptr - buf));
  std::string out;
  if (!sci.empty() && sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const std::size_t e = sci.find('e');
  std::string digits;
  for (const char c : sci.substr(0, e))
    if (c != '.') digits.push_back(c);
  const int exponent = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int point = exponent + 1;  // Digits before the decimal point in fixed notation.
  if (point <= -4 || point > 16) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out;
  }
  if (point <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-point), '0');
    out += digits;
  } else if (static_cast<std::size_t>(point) >= digits.size()) {
    out += digits;
    out.append(static_cast<std::size_t>(point) - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, static_cast<std::size_t>(point));
    out.push_back('.');
    out.append(digits, static_cast<std::size_t>(point));
  }
  return out;
}

void append_python_repr(std::string_view s, std::string* out) {
  const bool use_double =
      s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char quote = use_double ? '"' : '\'';
  out->push_back(quote);
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode(s, i, &len);
    const bool raw_byte = len == 1 && cp >= 0x80;
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      *out += "\\n";
    } else if (cp == '\r') {
      *out += "\\r";
    } else if (cp == '\t') {
      *out += "\\t";
    } else if (cp < 0x20 || cp == 0x7F || raw_byte || (cp <= 0xFF && repr_escapes(cp))) {
      *out += fmt::format("\\x{:02x}", static_cast<unsigned>(cp));
    } else if (repr_escapes(cp)) {
      *out += fmt::format("\\u{:04x}", static_cast<unsigned>(cp));
    } else {
      out->append(s.substr(i, len));
    }
    i += len;
  }
  out->push_back(quote);
}

void append_json_string(std::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode(s, i, &len);
    switch (cp) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (cp < 0x20) {
          *out += fmt::format("\\u{:04x}", static_cast<unsigned>(cp));
        } else if (cp < 0x80 || !ensure_ascii) {
          out->append(s.substr(i, len));
        } else {
          const char32_t c = (len == 1) ? 0xFFFD : cp;  // A stray byte is no character.
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            *out += fmt::format("\\u{:04x}\\u{:04x}", static_cast<unsigned>(0xD800 + (v >> 10)),
                                static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
          } else {
            *out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
          }
        }
    }
    i += len;
  }
  out->push_back('"');
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace spillway::serve::jinja
