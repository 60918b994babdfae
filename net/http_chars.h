// Character classes of HTTP's grammar (RFC 9110 section 5.6.2, RFC 9112), as tables: every byte
// of every header name and value read or written is checked against them.
//
// Thread-safety: constants.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace spillway::net::internal {

// tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~".
inline constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c)
    t[static_cast<std::size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c)
    t[static_cast<std::size_t>(c)] = true;
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<std::size_t>(c)] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}();

// What a received field value (and a reason phrase) may hold: HTAB, SP, VCHAR and obs-text;
// no other control character.
inline constexpr std::array<bool, 256> kFieldValueChars = [] {
  std::array<bool, 256> t{};
  for (std::size_t c = 0x20; c < 256; ++c)
    t[c] = c != 0x7f;
  t['\t'] = true;
  return t;
}();

[[nodiscard]] inline bool is_token_char(char c) {
  return kTokenChars[static_cast<unsigned char>(c)];
}

[[nodiscard]] inline bool is_field_value_char(char c) {
  return kFieldValueChars[static_cast<unsigned char>(c)];
}

// `s` without the optional whitespace (SP, HTAB) around it.
[[nodiscard]] inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

}  // namespace spillway::net::internal
