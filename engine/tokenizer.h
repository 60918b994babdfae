// Text <-> token ids, reproducing llama.cpp's tokenizers exactly (llama_tokenize /
// llama_token_to_piece): SentencePiece-style BPE for "llama" vocabularies
// (tokenizer_spm.cc) and GPT-2 byte-level BPE for "gpt2" vocabularies (tokenizer_bpe.cc).
//
// Special tokens: before the model-specific algorithm runs, the text is cut at occurrences of
// special-token texts, longest first. User-defined tokens are always cut out; control and
// unknown tokens (e.g. "<s>", "<|eot_id|>") only when parse_special is set, so that user text
// cannot inject them by default.
//
// Thread-safety: immutable after construction; concurrent encode/token_to_piece calls on one
// Tokenizer are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "engine/vocab.h"

namespace spillway::engine {

// The longest text encode() accepts, so that one request cannot make it run unbounded.
inline constexpr std::size_t kMaxEncodeBytes = 64u << 20;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids for `text`. add_special: prepend BOS / append EOS as the vocabulary's add_bos /
  // add_eos say. parse_special: recognise control-token texts in `text` (see above).
  // Any bytes are accepted, including invalid UTF-8. Errors: kOutOfRange for text longer than
  // kMaxEncodeBytes; kFailedPrecondition when a byte cannot be represented (an SPM vocabulary
  // with neither a byte token nor an unknown token for it).
  [[nodiscard]] Result<std::vector<std::int32_t>> encode(std::string_view text, bool add_special,
                                                         bool parse_special) const;

  // The bytes token `id` decodes to, on its own (no leading-space handling; see
  // detokenizer.h for that). Control and unknown tokens decode to "" unless render_special,
  // then to their text; unused/undefined tokens and ids outside the vocabulary decode to "".
  // A piece need not be valid UTF-8 (byte tokens are single bytes).
  [[nodiscard]] std::string token_to_piece(std::int32_t id, bool render_special = false) const;

  [[nodiscard]] const Vocab& vocab() const { return vocab_; }
  [[nodiscard]] std::int32_t n_tokens() const { return vocab_.size(); }

 protected:
  // REQUIRES: `vocab` passed finalize_vocab().
  explicit Tokenizer(Vocab vocab);

  // Appends the ids of one fragment of plain text (non-empty, free of cut-out special
  // tokens). `starts_segment`: the fragment begins the input or follows a special token.
  [[nodiscard]] virtual Status encode_fragment(std::string_view fragment, bool starts_segment,
                                               std::vector<std::int32_t>* out) const = 0;

  // The piece of a normal token (the model-specific part of token_to_piece).
  [[nodiscard]] virtual std::string normal_piece(std::int32_t id) const = 0;

  // Fills the piece cache; derived constructors call it last.
  void cache_pieces();

  const Vocab vocab_;

 private:
  std::vector<std::int32_t> special_tokens_;  // Cut-out candidates, longest text first.
  std::vector<std::string> pieces_;           // token_to_piece(id, render_special=true).
};

// The tokenizer for `vocab`'s kind. Validates the vocabulary first (finalize_vocab).
[[nodiscard]] Result<std::unique_ptr<Tokenizer>> make_tokenizer(Vocab vocab);

// Implementations, for make_tokenizer. REQUIRES: a finalized vocabulary of the right kind.
[[nodiscard]] Result<std::unique_ptr<Tokenizer>> make_spm_tokenizer(Vocab vocab);
[[nodiscard]] Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(Vocab vocab);

}  // namespace spillway::engine
