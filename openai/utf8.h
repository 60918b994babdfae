// UTF-8 checks for text that leaves Spillway inside JSON: response bodies must be valid UTF-8
// even when a model emits a token that is only part of a character.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace spillway::openai {

// Length of the valid UTF-8 sequence starting at `text[0]` (1 to 4), or 0 when it is not one:
// a stray continuation byte, a truncated sequence, an overlong form, a surrogate or a code
// point above U+10FFFF. REQUIRES: !text.empty().
[[nodiscard]] std::size_t utf8_sequence_length(std::string_view text);

// True when every byte of `text` belongs to a valid UTF-8 sequence.
[[nodiscard]] bool is_valid_utf8(std::string_view text);

}  // namespace spillway::openai
