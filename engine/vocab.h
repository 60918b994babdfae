// A model's vocabulary: token texts, scores, types, BPE merges and the special-token
// settings, read from GGUF metadata (tokenizer.ggml.*) or from a llama2.c tokenizer file, with
// the defaults llama.cpp's llama_vocab::load applies.
//
// A Vocab is a plain value. Loaders return it validated and indexed (token_to_id built);
// code that builds one by hand calls finalize_vocab() before use (make_tokenizer does).
//
// Thread-safety: a value; concurrent reads are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace spillway::engine {

class GgufFile;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type; part of the format).
enum class TokenType : std::int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class VocabKind : std::uint8_t {
  kSpm,  // tokenizer.ggml.model "llama": SentencePiece-style, scores drive merges.
  kBpe,  // tokenizer.ggml.model "gpt2": byte-level BPE, merge order drives merges.
};

// How BPE vocabularies split text into words before merging (llama.cpp's pre-tokenizer
// types; the regexes are in pretokenizer.h).
enum class PreTokenizer : std::uint8_t {
  kDefault,  // llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEFAULT cascade (GPT-2 regex plus splits).
  kGpt2,     // The GPT-2 regex alone ("gpt-2", "phi-2", "mpt", "olmo", ...).
  kLlama3,   // Llama 3 ("llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", ...).
  kQwen2,    // Qwen2 ("qwen2", "deepseek-r1-qwen", "stablelm2"): Llama 3's, 1-digit numbers.
};

struct PreTokenizerInfo {
  PreTokenizer kind = PreTokenizer::kDefault;
  bool known = false;          // False: the name is not recognised and kDefault is used.
  bool ignore_merges = false;  // A word that is itself a token is emitted without merging.
  bool add_bos = false;        // llama.cpp's default add_bos for this pre-tokenizer.
};
// Maps a tokenizer.ggml.pre name to its pre-tokenizer. "" and "default" map to kDefault.
[[nodiscard]] PreTokenizerInfo pre_tokenizer_from_name(std::string_view name);

// Caps on what a vocabulary may declare; real ones are far below (Gemma: 262k tokens).
inline constexpr std::int64_t kMaxVocabTokens = 1 << 21;
inline constexpr std::size_t kMaxTokenBytes = 1 << 16;
inline constexpr std::int64_t kMaxMerges = 1 << 22;

struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Vocab {
  VocabKind kind = VocabKind::kSpm;
  std::string pre;  // tokenizer.ggml.pre as stored ("" when absent).
  PreTokenizer pre_tokenizer = PreTokenizer::kDefault;  // BPE only.
  bool ignore_merges = false;                           // BPE only.

  std::vector<std::string> tokens;  // By id. Texts as stored (SPM uses U+2581 for spaces).
  std::vector<float> scores;        // By id; 0 when the file has none.
  std::vector<TokenType> types;     // By id; kNormal when the file has none.
  std::vector<std::string> merges;  // BPE: "left right", highest priority first.

  // Special ids, -1 when absent.
  std::int32_t bos_id = -1;
  std::int32_t eos_id = -1;
  std::int32_t unk_id = -1;
  std::int32_t pad_id = -1;
  std::int32_t eot_id = -1;  // End of turn (tokenizer.ggml.eot_token_id), e.g. Llama 3 <|eot_id|>.
  std::int32_t eom_id = -1;  // End of message (tokenizer.ggml.eom_token_id).

  // End-of-generation ids, sorted: eos, eot, eom, and control tokens whose text is a known
  // end-of-turn marker (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, ...),
  // as llama.cpp collects them. Built by finalize_vocab().
  std::vector<std::int32_t> eog_ids;

  bool add_bos = false;           // encode(add_special=true) prepends BOS.
  bool add_eos = false;           // encode(add_special=true) appends EOS.
  bool add_space_prefix = false;  // SPM: a space is prepended to text that starts the input
                                  // or follows a special token.

  // Non-fatal oddities met while loading (a special id out of range, an unknown
  // pre-tokenizer name, an empty token renamed, ...), one line each, for the caller to log.
  std::vector<std::string> warnings;

  // Built by finalize_vocab(); tokens[token_to_id[t]] == t.
  std::unordered_map<std::string, std::int32_t, TextHash, std::equal_to<>> token_to_id;

  [[nodiscard]] std::int32_t size() const { return static_cast<std::int32_t>(tokens.size()); }
  [[nodiscard]] bool contains(std::int32_t id) const { return id >= 0 && id < size(); }
  // The id of the token whose text is exactly `text`, or -1.
  [[nodiscard]] std::int32_t find(std::string_view text) const;
  [[nodiscard]] TokenType type(std::int32_t id) const { return types[id]; }
  // True for ids in eog_ids: generation stops after sampling one.
  [[nodiscard]] bool is_eog(std::int32_t id) const;
};

// Validates a vocabulary and builds its index: sizes within the limits above, scores/types
// either empty (filled with defaults) or one per token, no duplicate texts (empty texts are
// renamed "[EMPTY_<id>]" as llama.cpp does, with a warning), special ids -1 or in range,
// and add_bos/add_eos only with the corresponding id. Token types outside the enum become
// kUndefined.
[[nodiscard]] Status finalize_vocab(Vocab& vocab);

// Reads tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, bos_token_id,
// eos_token_id, unknown_token_id, padding_token_id, add_bos_token, add_eos_token,
// add_space_prefix}. Models other than "llama" and "gpt2" are kUnimplemented. As in
// llama.cpp, a special id that is out of range keeps its default (with a warning), and an
// unknown pre-tokenizer name falls back to kDefault (with a warning; llama.cpp refuses it).
[[nodiscard]] Result<Vocab> vocab_from_gguf(const GgufFile& file);

// Reads a llama2.c tokenizer file (int32 max_token_length, then per token: float32 score,
// int32 length, bytes) holding `vocab_size` tokens, and converts it into the SentencePiece
// vocabulary it was exported from: spaces back to U+2581, "\n<s>\n" / "\n</s>\n" back to
// "<s>" / "</s>", ids 0/1/2 as unk/bos/eos, "<0xNN>" pieces as byte tokens.
[[nodiscard]] Result<Vocab> vocab_from_llama2c(const std::string& tokenizer_bin_path,
                                               std::int32_t vocab_size);

}  // namespace spillway::engine
