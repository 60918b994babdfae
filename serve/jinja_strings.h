// Python `str` semantics over UTF-8 byte strings, as the Jinja interpreter needs them: Python
// counts, indexes and slices strings by code point, strips Unicode whitespace, prints floats
// and reprs in its own way, and `json.dumps` escapes in its own way.
//
// Invalid UTF-8 is tolerated: each byte that does not start a valid sequence counts as one
// character, so no input makes these functions fail or read out of bounds.
//
// Case conversions cover ASCII, Latin-1, basic Greek and Cyrillic; other characters are left
// as they are (Python maps all of Unicode). Chat templates change the case of role names.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::serve::jinja {

// Length in bytes of the character that starts at s[i]: a valid UTF-8 sequence, or 1.
// REQUIRES: i < s.size().
[[nodiscard]] std::size_t utf8_char_length(std::string_view s, std::size_t i);
// The code point that starts at s[i], and its length; a byte that starts no valid sequence
// decodes as itself (0x80..0xFF) with length 1.
[[nodiscard]] char32_t utf8_decode(std::string_view s, std::size_t i, std::size_t* length);
void append_utf8(char32_t cp, std::string* out);

// Number of characters (code points).
[[nodiscard]] std::size_t utf8_length(std::string_view s);
// Byte offset of every character, followed by s.size().
[[nodiscard]] std::vector<std::size_t> utf8_offsets(std::string_view s);

// str.isspace() for one code point.
[[nodiscard]] bool is_python_space(char32_t cp);
// str.strip() / lstrip() / rstrip(): Unicode whitespace, or the characters of `chars`.
[[nodiscard]] std::string_view python_strip(std::string_view s, bool left, bool right);
[[nodiscard]] std::string_view python_strip_chars(std::string_view s, std::string_view chars,
                                                  bool left, bool right);

[[nodiscard]] std::string python_lower(std::string_view s);
[[nodiscard]] std::string python_upper(std::string_view s);
// str.capitalize(): first character upper case, the rest lower case.
[[nodiscard]] std::string python_capitalize(std::string_view s);
// str.title(): upper case after an uncased character, lower case after a cased one.
[[nodiscard]] std::string python_title(std::string_view s);
// Jinja's `title` filter: upper case at the start of each word, where words begin after
// whitespace or one of - ( { [ <.
[[nodiscard]] std::string jinja_title(std::string_view s);

// str.split(sep, maxsplit) and str.rsplit(): without `sep`, splits at runs of whitespace and
// drops empty parts. REQUIRES: sep, when given, is not empty.
[[nodiscard]] std::vector<std::string> python_split(std::string_view s,
                                                    std::optional<std::string_view> sep,
                                                    std::int64_t maxsplit, bool from_right);
// str.splitlines(): splits at \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029.
[[nodiscard]] std::vector<std::string_view> python_splitlines(std::string_view s);

// repr(float) / str(float): shortest round-trip digits, always with a '.' or an exponent.
[[nodiscard]] std::string format_python_float(double value);
// repr(str): quoted with ' (or " when the text holds ' and no "), with escapes.
void append_python_repr(std::string_view s, std::string* out);
// json.dumps(str): quoted, escaping ", \ and control characters; with `ensure_ascii`, every
// non-ASCII character as \uXXXX (surrogate pairs above U+FFFF).
void append_json_string(std::string_view s, bool ensure_ascii, std::string* out);
// markupsafe.escape: & < > " ' as HTML entities.
[[nodiscard]] std::string html_escape(std::string_view s);

}  // namespace spillway::serve::jinja
