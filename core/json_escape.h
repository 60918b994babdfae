// Escaping text for a JSON string (RFC 8259), shared by everything that writes JSON or
// logfmt by hand (logs, error bodies).
//
// Escapes '"', '\\' and control characters (\n, \r, \t by name, the others and DEL as \u00XX).
// Well-formed UTF-8 passes through unchanged; each byte that is not part of a well-formed
// sequence (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF) becomes
// \ufffd, so untrusted bytes still give valid JSON.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace spillway {

// `text` as the contents of a JSON string (quotes not included), appended to `out`.
void append_json_escaped(std::string& out, std::string_view text);
// The same, returned.
[[nodiscard]] std::string json_escape(std::string_view text);

// The length of the well-formed UTF-8 sequence at the front of `text`, or 0 if it is
// ill-formed or cut off (also 0 for an ASCII byte and for empty text).
[[nodiscard]] std::size_t utf8_sequence_length(std::string_view text);

}  // namespace spillway
