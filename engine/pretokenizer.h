// Pre-tokenization for byte-level BPE: splitting text into the words that BPE merges within,
// equivalent to the regexes llama.cpp applies (llm_tokenizer_bpe), written by hand because
// std::regex has no \p{L} / \p{N}:
//
//   kGpt2:    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
//   kLlama3:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//             ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2:   as kLlama3 with \p{N} (one digit per word)
//   kDefault: four regexes in turn, each splitting the pieces of the previous one:
//             [\p{P}\$\+<=>\^~\|]+, then kGpt2's, then \p{N}+, then [0-9][0-9][0-9]
//
// As with llama.cpp's regex splitting, text a regex does not match stays a piece of its own,
// so the pieces always concatenate back to the input. Invalid UTF-8 in the input becomes
// U+FFFD, one per undecodable byte (as llama.cpp's unicode_cpts_from_utf8).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/vocab.h"

namespace spillway::engine {

// The words of `text` in order, as UTF-8 (not yet mapped to the byte-level alphabet).
[[nodiscard]] std::vector<std::string> pretokenize(std::string_view text, PreTokenizer kind);

}  // namespace spillway::engine
