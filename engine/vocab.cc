#include "engine/vocab.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

#include "engine/gguf.h"

namespace spillway::engine {
namespace {

constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";  // U+2581, SentencePiece's space.

// Optional metadata: nullopt when the key is absent, an error naming the key when it has the
// wrong type.
Result<std::optional<bool>> optional_bool(const GgufFile& file, std::string_view key) {
  if (file.find(key) == nullptr) return std::optional<bool>();
  SPW_ASSIGN_OR_RETURN(const bool v, file.get_bool(key));
  return std::optional<bool>(v);
}

Result<std::optional<std::int64_t>> optional_int(const GgufFile& file, std::string_view key) {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return std::optional<std::int64_t>();
  // A uint64 id too large for int64 is as out of range as any other; say so via -1.
  if (value->type() == GgufValueType::kUint64) {
    SPW_ASSIGN_OR_RETURN(const std::uint64_t v, file.get_u64(key));
    const auto max = static_cast<std::uint64_t>(INT64_MAX);
    return std::optional<std::int64_t>(v > max ? -1 : static_cast<std::int64_t>(v));
  }
  SPW_ASSIGN_OR_RETURN(const std::int64_t v, file.get_i64(key));
  return std::optional<std::int64_t>(v);
}

// The array at `key`, checked to hold strings (or, when !strings, numbers) and at least
// `min_size` elements; nullptr when absent. llama.cpp also accepts longer arrays.
Result<const GgufValue*> optional_array(const GgufFile& file, std::string_view key, bool strings,
                                        std::uint64_t min_size) {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return static_cast<const GgufValue*>(nullptr);
  const GgufValueType t = value->array_type();
  const bool type_ok =
      value->is_array() && (strings ? t == GgufValueType::kString
                                    : t != GgufValueType::kString && t != GgufValueType::kBool &&
                                          t != GgufValueType::kArray);
  if (!type_ok) {
    return make_error(ErrorCode::kInvalidArgument, "metadata key '{}': expected an array of {}",
                      key, strings ? "strings" : "numbers");
  }
  if (value->array_size() < min_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "metadata key '{}': {} elements, but the vocabulary has {} tokens", key,
                      value->array_size(), min_size);
  }
  return value;
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (true) {
    const std::size_t hit = text.find(from, pos);
    out.append(
        text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos));
    if (hit == std::string_view::npos) return out;
    out.append(to);
    pos = hit + from.size();
  }
}

bool is_byte_piece(std::string_view text) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  return text.size() == 6 && text.substr(0, 3) == "<0x" && text[5] == '>' &&
         kHex.find(text[3]) != std::string_view::npos &&
         kHex.find(text[4]) != std::string_view::npos;
}

}  // namespace

PreTokenizerInfo pre_tokenizer_from_name(std::string_view name) {
  // The names llama.cpp's llama_vocab::load maps to these regexes, with its flags.
  const auto in = [&](std::initializer_list<std::string_view> names) {
    for (const std::string_view n : names)
      if (name == n) return true;
    return false;
  };
  if (in({"", "default"})) return {PreTokenizer::kDefault, true, false, false};
  if (in({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
          "lfm2"})) {
    return {PreTokenizer::kLlama3, true, true, true};
  }
  if (in({"dbrx", "smaug-bpe"})) return {PreTokenizer::kLlama3, true, false, false};
  if (in({"qwen2", "deepseek-r1-qwen", "stablelm2"})) {
    return {PreTokenizer::kQwen2, true, false, false};
  }
  if (in({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "mpt",
          "olmo", "jais"})) {
    return {PreTokenizer::kGpt2, true, false, false};
  }
  return {PreTokenizer::kDefault, false, false, false};
}

std::int32_t Vocab::find(std::string_view text) const {
  const auto it = token_to_id.find(text);
  return it == token_to_id.end() ? -1 : it->second;
}

namespace {

// End-of-turn markers of the chat formats in use (Llama 3, ChatML/Qwen, Phi-3, Gemma, GPT-2
// style, Llama 3.1 tool calls, DeepSeek/others); only control or user-defined tokens count, so
// ordinary text that happens to spell one is never an end.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>",    "<|im_end|>", "<|end|>", "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>", "<EOT>",   "<|end_of_text|>",
};

void collect_eog_ids(Vocab& vocab) {
  vocab.eog_ids.clear();
  for (const std::int32_t id : {vocab.eos_id, vocab.eot_id, vocab.eom_id}) {
    if (id >= 0) vocab.eog_ids.push_back(id);
  }
  for (const std::string_view text : kEogTexts) {
    const auto it = vocab.token_to_id.find(text);
    if (it == vocab.token_to_id.end()) continue;
    const TokenType t = vocab.types[static_cast<std::size_t>(it->second)];
    if (t == TokenType::kControl || t == TokenType::kUserDefined)
      vocab.eog_ids.push_back(it->second);
  }
  std::sort(vocab.eog_ids.begin(), vocab.eog_ids.end());
  vocab.eog_ids.erase(std::unique(vocab.eog_ids.begin(), vocab.eog_ids.end()), vocab.eog_ids.end());
}

}  // namespace

Status finalize_vocab(Vocab& vocab) {
  const std::size_t n = vocab.tokens.size();
  if (n == 0) return make_error(ErrorCode::kInvalidArgument, "vocabulary has no tokens");
  if (n > static_cast<std::size_t>(kMaxVocabTokens)) {
    return make_error(ErrorCode::kOutOfRange, "vocabulary has {} tokens (limit {})", n,
                      kMaxVocabTokens);
  }
  if (vocab.scores.empty()) vocab.scores.assign(n, 0.0f);
  if (vocab.types.empty()) vocab.types.assign(n, TokenType::kNormal);
  if (vocab.scores.size() != n || vocab.types.size() != n) {
    return make_error(ErrorCode::kInvalidArgument,
                      "vocabulary has {} tokens but {} scores and {} token types", n,
                      vocab.scores.size(), vocab.types.size());
  }
  if (vocab.merges.size() > static_cast<std::size_t>(kMaxMerges)) {
    return make_error(ErrorCode::kOutOfRange, "vocabulary has {} merges (limit {})",
                      vocab.merges.size(), kMaxMerges);
  }
  vocab.token_to_id.clear();
  vocab.token_to_id.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::string& text = vocab.tokens[i];
    if (text.empty()) {
      text = "[EMPTY_" + std::to_string(i) + "]";
      vocab.warnings.push_back(fmt::format("empty token at index {} renamed '{}'", i, text));
    }
    if (text.size() > kMaxTokenBytes) {
      return make_error(ErrorCode::kOutOfRange, "token {} is {} bytes long (limit {})", i,
                        text.size(), kMaxTokenBytes);
    }
    const auto [it, inserted] = vocab.token_to_id.emplace(text, static_cast<std::int32_t>(i));
    if (!inserted) {
      return make_error(ErrorCode::kInvalidArgument,
                        "duplicate token in vocabulary: '{}' has ids {} and {}", text, it->second,
                        i);
    }
    const auto t = static_cast<std::int32_t>(vocab.types[i]);
    if (t < 0 || t > static_cast<std::int32_t>(TokenType::kByte)) {
      // llama.cpp treats unknown types as undefined: never matched, rendered as nothing.
      vocab.types[i] = TokenType::kUndefined;
    }
  }
  const std::pair<const char*, std::int32_t> ids[] = {{"bos", vocab.bos_id}, {"eos", vocab.eos_id},
                                                      {"unk", vocab.unk_id}, {"pad", vocab.pad_id},
                                                      {"eot", vocab.eot_id}, {"eom", vocab.eom_id}};
  for (const auto& [name, id] : ids) {
    if (id != -1 && !vocab.contains(id)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{} token id {} is outside the vocabulary (size {})", name, id, n);
    }
  }
  if (vocab.add_bos && vocab.bos_id == -1) {
    return make_error(ErrorCode::kInvalidArgument, "add_bos is set but there is no BOS token");
  }
  if (vocab.add_eos && vocab.eos_id == -1) {
    return make_error(ErrorCode::kInvalidArgument, "add_eos is set but there is no EOS token");
  }
  collect_eog_ids(vocab);
  return Status();
}

bool Vocab::is_eog(std::int32_t id) const {
  return std::binary_search(eog_ids.begin(), eog_ids.end(), id);
}

Result<Vocab> vocab_from_gguf(const GgufFile& file) {
  Vocab vocab;
  SPW_ASSIGN_OR_RETURN(const std::string_view model, file.get_string("tokenizer.ggml.model"));
  if (file.find("tokenizer.ggml.pre") != nullptr) {
    SPW_ASSIGN_OR_RETURN(const std::string_view pre, file.get_string("tokenizer.ggml.pre"));
    vocab.pre = std::string(pre);
  }

  // Defaults per model, as llama.cpp's llama_vocab::impl::load sets them before reading the
  // optional keys.
  if (model == "llama") {
    vocab.kind = VocabKind::kSpm;
    vocab.bos_id = 1;
    vocab.eos_id = 2;
    vocab.unk_id = 0;
    vocab.add_space_prefix = true;
    vocab.add_bos = true;
    vocab.add_eos = false;
  } else if (model == "gpt2") {
    vocab.kind = VocabKind::kBpe;
    vocab.bos_id = 11;
    vocab.eos_id = 11;
    const PreTokenizerInfo info = pre_tokenizer_from_name(vocab.pre);
    if (!info.known) {
      vocab.warnings.push_back(fmt::format(
          "unknown pre-tokenizer '{}'; using 'default' (llama.cpp refuses this model)", vocab.pre));
    } else if (vocab.pre.empty()) {
      vocab.warnings.push_back("missing pre-tokenizer type; using 'default'");
    }
    vocab.pre_tokenizer = info.kind;
    vocab.ignore_merges = info.ignore_merges;
    vocab.add_bos = info.add_bos;
  } else {
    return make_error(ErrorCode::kUnimplemented,
                      "tokenizer model '{}' is not supported (supported: llama, gpt2)", model);
  }
  SPW_ASSIGN_OR_RETURN(const std::optional<bool> space_prefix,
                       optional_bool(file, "tokenizer.ggml.add_space_prefix"));
  if (space_prefix) vocab.add_space_prefix = *space_prefix;

  // Tokens, scores, types.
  SPW_ASSIGN_OR_RETURN(const GgufValue* tokens,
                       optional_array(file, "tokenizer.ggml.tokens", /*strings=*/true, 0));
  if (tokens == nullptr) {
    return make_error(ErrorCode::kInvalidArgument,
                      "metadata key 'tokenizer.ggml.tokens' not found");
  }
  const std::uint64_t n = tokens->array_size();
  if (n == 0 || n > static_cast<std::uint64_t>(kMaxVocabTokens)) {
    return make_error(ErrorCode::kOutOfRange,
                      "tokenizer.ggml.tokens has {} entries (expected 1..{})", n, kMaxVocabTokens);
  }
  SPW_ASSIGN_OR_RETURN(const GgufValue* scores,
                       optional_array(file, "tokenizer.ggml.scores", /*strings=*/false, n));
  SPW_ASSIGN_OR_RETURN(const GgufValue* types,
                       optional_array(file, "tokenizer.ggml.token_type", /*strings=*/false, n));
  vocab.tokens.reserve(n);
  vocab.scores.reserve(n);
  vocab.types.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    SPW_ASSIGN_OR_RETURN(const std::string_view text, tokens->string_at(i));
    vocab.tokens.emplace_back(text);
    float score = 0.0f;
    if (scores != nullptr) {
      SPW_ASSIGN_OR_RETURN(score, scores->f32_at(i));
    }
    vocab.scores.push_back(score);
    std::int64_t type = static_cast<std::int64_t>(TokenType::kNormal);
    if (types != nullptr) {
      SPW_ASSIGN_OR_RETURN(type, types->int_at(i));
    }
    const bool known_type = type >= 0 && type <= static_cast<std::int64_t>(TokenType::kByte);
    vocab.types.push_back(known_type ? static_cast<TokenType>(type) : TokenType::kUndefined);
  }

  if (vocab.kind == VocabKind::kBpe) {
    SPW_ASSIGN_OR_RETURN(const GgufValue* merges,
                         optional_array(file, "tokenizer.ggml.merges", /*strings=*/true, 0));
    if (merges == nullptr) {
      return make_error(ErrorCode::kInvalidArgument,
                        "metadata key 'tokenizer.ggml.merges' not found (required for gpt2)");
    }
    if (merges->array_size() > static_cast<std::uint64_t>(kMaxMerges)) {
      return make_error(ErrorCode::kOutOfRange, "tokenizer.ggml.merges has {} entries (limit {})",
                        merges->array_size(), kMaxMerges);
    }
    vocab.merges.reserve(merges->array_size());
    for (std::uint64_t i = 0; i < merges->array_size(); ++i) {
      SPW_ASSIGN_OR_RETURN(const std::string_view merge, merges->string_at(i));
      vocab.merges.emplace_back(merge);
    }
  }

  // Special ids: llama.cpp disables a default that is out of range, and ignores (with a
  // warning) a stored id that is out of range.
  const std::pair<const char*, std::int32_t*> special[] = {
      {"tokenizer.ggml.bos_token_id", &vocab.bos_id},
      {"tokenizer.ggml.eos_token_id", &vocab.eos_id},
      {"tokenizer.ggml.unknown_token_id", &vocab.unk_id},
      {"tokenizer.ggml.padding_token_id", &vocab.pad_id},
      {"tokenizer.ggml.eot_token_id", &vocab.eot_id},
      {"tokenizer.ggml.eom_token_id", &vocab.eom_id},
  };
  for (const auto& [key, id] : special) {
    if (*id >= 0 && static_cast<std::uint64_t>(*id) >= n) *id = -1;
    SPW_ASSIGN_OR_RETURN(const std::optional<std::int64_t> stored, optional_int(file, key));
    if (!stored) continue;
    // -1 stored as uint32 (4294967295) is the converters' way of writing "no such token".
    if (*stored == -1 || *stored == 0xFFFFFFFFLL) {
      *id = -1;
      continue;
    }
    if (*stored < 0 || static_cast<std::uint64_t>(*stored) >= n) {
      vocab.warnings.push_back(
          fmt::format("{} = {} is outside the vocabulary; using {}", key, *stored, *id));
    } else {
      *id = static_cast<std::int32_t>(*stored);
    }
  }
  SPW_ASSIGN_OR_RETURN(const std::optional<bool> add_bos,
                       optional_bool(file, "tokenizer.ggml.add_bos_token"));
  if (add_bos) vocab.add_bos = *add_bos;
  SPW_ASSIGN_OR_RETURN(const std::optional<bool> add_eos,
                       optional_bool(file, "tokenizer.ggml.add_eos_token"));
  if (add_eos) vocab.add_eos = *add_eos;

  SPW_TRY(finalize_vocab(vocab));
  return vocab;
}

Result<Vocab> vocab_from_llama2c(const std::string& tokenizer_bin_path, std::int32_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > kMaxVocabTokens) {
    return make_error(ErrorCode::kInvalidArgument, "{}: vocab_size {} is outside 1..{}",
                      tokenizer_bin_path, vocab_size, kMaxVocabTokens);
  }
  SPW_ASSIGN_OR_RETURN(const MappedFile mapped, MappedFile::open(tokenizer_bin_path));
  const std::span<const std::byte> bytes = mapped.bytes();
  std::size_t pos = 0;
  const auto truncated = [&](std::string_view what, std::int32_t id) {
    return make_error(ErrorCode::kDataLoss, "{}: truncated at byte {} reading {} of token {}",
                      tokenizer_bin_path, pos, what, id);
  };
  const auto read_i32 = [&](std::int32_t* v) {
    if (bytes.size() - pos < 4) return false;
    std::memcpy(v, bytes.data() + pos, 4);
    pos += 4;
    return true;
  };

  std::int32_t max_token_length = 0;
  if (!read_i32(&max_token_length)) return truncated("max_token_length", -1);
  if (max_token_length < 0) {
    return make_error(ErrorCode::kDataLoss, "{}: negative max_token_length {}", tokenizer_bin_path,
                      max_token_length);
  }

  Vocab vocab;
  vocab.kind = VocabKind::kSpm;
  vocab.bos_id = 1;
  vocab.eos_id = 2;
  vocab.unk_id = 0;
  vocab.add_bos = true;
  vocab.add_eos = false;
  vocab.add_space_prefix = true;
  if (vocab_size < 3) {  // Too small for BOS and EOS; llama.cpp disables such defaults.
    vocab.bos_id = -1;
    vocab.eos_id = -1;
    vocab.add_bos = false;
  }
  vocab.tokens.reserve(static_cast<std::size_t>(vocab_size));
  for (std::int32_t id = 0; id < vocab_size; ++id) {
    float score = 0.0f;
    std::int32_t len = 0;
    static_assert(sizeof(float) == 4);
    if (bytes.size() - pos < 4) return truncated("the score", id);
    std::memcpy(&score, bytes.data() + pos, 4);
    pos += 4;
    if (!read_i32(&len)) return truncated("the length", id);
    if (len < 0 || static_cast<std::size_t>(len) > kMaxTokenBytes) {
      return make_error(ErrorCode::kDataLoss, "{}: token {} has length {}", tokenizer_bin_path, id,
                        len);
    }
    if (bytes.size() - pos < static_cast<std::size_t>(len)) return truncated("the text", id);
    const std::string_view raw(reinterpret_cast<const char*>(bytes.data() + pos),
                               static_cast<std::size_t>(len));
    pos += static_cast<std::size_t>(len);

    // Undo llama2.c's export (tokenizer.py): it rendered "▁" as " " and wrapped BOS/EOS in
    // newlines so that run.c could print them.
    std::string text;
    TokenType type = TokenType::kNormal;
    if (raw == "\n<s>\n" || raw == "\n</s>\n") {
      text = std::string(raw.substr(1, raw.size() - 2));
      type = TokenType::kControl;
    } else {
      text = replace_all(raw, " ", kSpaceEscape);
      if (is_byte_piece(text)) type = TokenType::kByte;
    }
    if (id == 0) type = TokenType::kUnknown;
    if (id == 1 || id == 2) type = TokenType::kControl;
    vocab.tokens.push_back(std::move(text));
    vocab.scores.push_back(score);
    vocab.types.push_back(type);
  }
  if (pos != bytes.size()) {
    vocab.warnings.push_back(fmt::format("{}: {} bytes after the last of {} tokens ignored",
                                         tokenizer_bin_path, bytes.size() - pos, vocab_size));
  }
  SPW_TRY(finalize_vocab(vocab));
  return vocab;
}

}  // namespace spillway::engine
