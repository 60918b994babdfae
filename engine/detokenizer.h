// Token ids -> text, whole or streamed token by token.
//
// Streaming: a token's piece may end inside a UTF-8 character (byte tokens split an emoji
// into four tokens; a BPE token may hold half a character), so StreamingDetokenizer emits
// only complete characters and holds back an incomplete tail until later tokens complete it.
// Bytes that can never form a character are replaced by U+FFFD (one per maximal ill-formed
// subpart, as the Unicode standard recommends) as soon as that is certain; flush() replaces
// a tail still incomplete at the end. The output is therefore always valid UTF-8, and the
// concatenation of all push() results plus flush() equals detokenize() of the same ids.
//
// Leading space: SPM vocabularies (add_space_prefix) encode "Hello" as "▁Hello", so the first
// piece of a sequence carries a space the text never had. With strip_leading_space, one
// leading space is removed from the first piece that follows any leading BOS tokens, as
// llama.cpp's llama_detokenize does for the first token and llama2.c's run.c does for the
// token after BOS; decode(encode(s)) == s then holds. Turn it off when decoding a
// continuation (tokens generated after a prompt), where the space is real.
//
// Control and unknown tokens (BOS, EOS, <unk>, <|eot_id|>) render as nothing unless
// render_special.
//
// Thread-safety: a StreamingDetokenizer is used by one thread at a time; it borrows the
// Tokenizer, which must outlive it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "engine/tokenizer.h"

namespace spillway::engine {

struct DetokenizeOptions {
  bool strip_leading_space = true;  // Only has an effect for add_space_prefix vocabularies.
  bool render_special = false;
};

class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, DetokenizeOptions options = {});

  // The text that token `id` completes (possibly empty). Ids outside the vocabulary are
  // ignored (they render as nothing and leave the state unchanged).
  [[nodiscard]] std::string push(std::int32_t id);
  // The rest: a held-back incomplete character becomes U+FFFD. The detokenizer is then
  // ready for a new sequence (the leading-space rule applies again).
  [[nodiscard]] std::string flush();

 private:
  const Tokenizer* tokenizer_;
  DetokenizeOptions options_;
  bool at_start_ = true;  // No token other than BOS pushed yet.
  std::string pending_;   // Bytes of an incomplete UTF-8 character.
};

// The text of `ids`; the same as streaming them through one StreamingDetokenizer.
[[nodiscard]] std::string detokenize(const Tokenizer& tokenizer, std::span<const std::int32_t> ids,
                                     DetokenizeOptions options = {});

}  // namespace spillway::engine
