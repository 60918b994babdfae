// UTF-8 and code-point classification for the tokenizers: what llama.cpp's unicode.cpp
// provides, reduced to what the SPM and byte-level BPE tokenizers need.
//
// Two decoders exist on purpose. `decode_utf8_lenient` reproduces llama.cpp's decoding of
// tokenizer input (it accepts overlong forms and surrogates, and turns each undecodable byte
// into U+FFFD), because token ids must match llama.cpp's byte for byte. `scan_utf8` is strict
// (Unicode Table 3-7) and is what the detokenizer uses on output.
//
// Thread-safety: pure functions over immutable tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::engine {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Bytes in the UTF-8 sequence led by `lead`, from its high four bits alone (1 for ASCII,
// continuation bytes and 0xF8..0xFF), as llama.cpp's unicode_len_utf8.
[[nodiscard]] int utf8_sequence_length(unsigned char lead);

// Decodes one code point at `text[*offset]` and advances `*offset` past it. An invalid or
// truncated sequence yields U+FFFD and advances by one byte. REQUIRES: *offset < text.size().
[[nodiscard]] char32_t decode_utf8_lenient(std::string_view text, std::size_t* offset);
[[nodiscard]] std::vector<char32_t> decode_utf8_lenient(std::string_view text);

// Appends the UTF-8 encoding of `cp`; code points above U+10FFFF append U+FFFD.
void append_utf8(char32_t cp, std::string* out);

// The classes the pre-tokenizer regexes distinguish. Whitespace (the Unicode White_Space
// property) takes precedence over the general category, as in llama.cpp.
enum class UnicodeClass : std::uint8_t {
  kOther = 0,        // Marks, symbols, separators that are not whitespace, controls, unassigned.
  kLetter = 1,       // \p{L}
  kNumber = 2,       // \p{N}
  kPunctuation = 3,  // \p{P}
  kWhitespace = 4,   // \s
};
[[nodiscard]] UnicodeClass unicode_class(char32_t cp);

// GPT-2's byte-level alphabet: every byte maps to a printable code point (printable Latin-1
// bytes to themselves, the others to U+0100 upwards).
[[nodiscard]] char32_t byte_to_unicode(std::uint8_t byte);
// The byte a code point of that alphabet stands for; -1 for code points outside it.
[[nodiscard]] int unicode_to_byte(char32_t cp);

// Incremental strict UTF-8 checking over a byte buffer.
struct Utf8Scan {
  enum class Kind { kValid, kInvalid, kIncomplete };
  Kind kind;
  std::size_t length;  // kValid: the sequence; kInvalid: the maximal ill-formed subpart
                       // (to replace by one U+FFFD); kIncomplete: the bytes present.
};
// Classifies the sequence that starts at `bytes[0]`. REQUIRES: !bytes.empty().
[[nodiscard]] Utf8Scan scan_utf8(std::string_view bytes);
// True when all of `bytes` is strict UTF-8 (no ill-formed or truncated sequence).
[[nodiscard]] bool is_valid_utf8(std::string_view bytes);

}  // namespace spillway::engine
