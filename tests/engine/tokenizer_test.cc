// Tokenizer, vocabulary and detokenizer tests. The reference behaviour is llama.cpp's: the
// SPM acceptance test replays llama.cpp's own test vectors (test-tokenizer-0 on
// ggml-vocab-llama-spm.gguf); BPE is checked on hand-built vocabularies and the
// pre-tokenizers against their regexes evaluated by hand.
#include "engine/tokenizer.h"

#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/detokenizer.h"
#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "engine/pretokenizer.h"
#include "engine/unicode.h"
#include "engine/vocab.h"

#include "test_support.h"

namespace spillway::engine {
namespace {

using Ids = std::vector<std::int32_t>;
using Words = std::vector<std::string>;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The test strings of a llama.cpp .inp file, split as test-tokenizer-0 splits them: each
// string is the text before a "\n__ggml_vocab_test__\n" separator.
std::vector<std::string> read_vocab_tests_inp(const std::string& path) {
  const std::string raw = read_file(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> tests;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    const std::size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      tests.push_back(raw.substr(pos));
      break;
    }
    tests.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return tests;
}

std::vector<Ids> read_vocab_tests_out(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<Ids> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ids(line);
    Ids row;
    for (std::int32_t id; ids >> id;)
      row.push_back(id);
    out.push_back(row);
  }
  return out;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  auto file = GgufFile::open(path);
  EXPECT_TRUE(file.ok()) << file.error().to_string();
  if (!file.ok()) return nullptr;
  auto vocab = vocab_from_gguf(*file);
  EXPECT_TRUE(vocab.ok()) << vocab.error().to_string();
  if (!vocab.ok()) return nullptr;
  auto tokenizer = make_tokenizer(std::move(vocab).value());
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.error().to_string();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

Ids encode(const Tokenizer& tokenizer, std::string_view text, bool add_special = false,
           bool parse_special = false) {
  auto ids = tokenizer.encode(text, add_special, parse_special);
  EXPECT_TRUE(ids.ok()) << ids.error().to_string();
  return ids.ok() ? *ids : Ids{};
}

std::string ids_to_string(const Ids& ids) {
  std::string s;
  for (const std::int32_t id : ids)
    s += std::to_string(id) + " ";
  return s;
}

// ---------------------------------------------------------------------------------------------
// (a) llama.cpp's SPM test vectors.

class LlamaSpmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::shared_path("models/ggml-vocab-llama-spm.gguf");
    SPW_REQUIRE_SHARED_FILE(path_);
    tokenizer_ = load_gguf_tokenizer(path_);
    ASSERT_NE(tokenizer_, nullptr);
  }

  std::string path_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(LlamaSpmTest, VocabularyMetadata) {
  const Vocab& v = tokenizer_->vocab();
  EXPECT_EQ(v.kind, VocabKind::kSpm);
  EXPECT_EQ(v.pre, "default");
  EXPECT_EQ(v.size(), 32000);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_EQ(v.pad_id, -1);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.types[1], TokenType::kControl);
  EXPECT_EQ(v.types[0], TokenType::kUnknown);
  EXPECT_EQ(v.types[3 + 0x0A], TokenType::kByte);
  EXPECT_EQ(v.find("\xE2\x96\x81Hello"), 15043);
  EXPECT_TRUE(v.warnings.empty());
}

TEST_F(LlamaSpmTest, MatchesLlamaCppTestVectors) {
  const auto inputs = read_vocab_tests_inp(path_ + ".inp");
  const auto expected = read_vocab_tests_out(path_ + ".out");
  ASSERT_EQ(inputs.size(), 46u);
  ASSERT_EQ(expected.size(), inputs.size());
  int passed = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    // As test-tokenizer-0: add_special = false, parse_special = false.
    const Ids ids = encode(*tokenizer_, inputs[i]);
    EXPECT_EQ(ids, expected[i]) << "test " << i << ": '" << inputs[i]
                                << "'\n  got:      " << ids_to_string(ids)
                                << "\n  expected: " << ids_to_string(expected[i]);
    if (ids == expected[i]) ++passed;
  }
  EXPECT_EQ(passed, 46);
}

TEST_F(LlamaSpmTest, DecodingRoundTrips) {
  for (const std::string& text : read_vocab_tests_inp(path_ + ".inp")) {
    const Ids ids = encode(*tokenizer_, text);
    EXPECT_EQ(detokenize(*tokenizer_, ids), text);
    // With BOS: the space is stripped from the piece after BOS instead.
    EXPECT_EQ(detokenize(*tokenizer_, encode(*tokenizer_, text, /*add_special=*/true)), text);
  }
}

TEST_F(LlamaSpmTest, SpecialTokens) {
  EXPECT_EQ(encode(*tokenizer_, "", /*add_special=*/true), Ids({1}));
  EXPECT_EQ(encode(*tokenizer_, "", /*add_special=*/false), Ids());
  EXPECT_EQ(encode(*tokenizer_, "Hello", /*add_special=*/true), Ids({1, 15043}));
  // Control-token text is plain text unless parse_special.
  const Ids plain = encode(*tokenizer_, "<s>Hello", false, /*parse_special=*/false);
  EXPECT_NE(plain.front(), 1);
  // Parsed: "<s>" becomes BOS, and the text after it starts a segment (space prefix).
  EXPECT_EQ(encode(*tokenizer_, "<s>Hello</s>", false, /*parse_special=*/true), Ids({1, 15043, 2}));
  EXPECT_EQ(tokenizer_->token_to_piece(1), "");
  EXPECT_EQ(tokenizer_->token_to_piece(1, /*render_special=*/true), "<s>");
  EXPECT_EQ(tokenizer_->token_to_piece(15043), " Hello");
  EXPECT_EQ(tokenizer_->token_to_piece(3 + 0xF0), "\xF0");
}

TEST_F(LlamaSpmTest, LlamaCppTokenizer1RoundTripOnEveryToken) {
  // llama.cpp's test-tokenizer-1-spm: every normal token's piece re-encodes to text that
  // decodes to the same piece.
  const Vocab& v = tokenizer_->vocab();
  int checked = 0;
  for (std::int32_t id = 0; id < v.size(); ++id) {
    const std::string piece = detokenize(*tokenizer_, Ids{id});
    if (!is_valid_utf8(tokenizer_->token_to_piece(id))) continue;  // Byte tokens 0x80+.
    const Ids ids = encode(*tokenizer_, piece, false, /*parse_special=*/true);
    ASSERT_EQ(detokenize(*tokenizer_, ids), piece) << "token " << id;
    ++checked;
  }
  EXPECT_GT(checked, 31000);
}

// ---------------------------------------------------------------------------------------------
// (b) stories260K: GGUF vocabulary vs its llama2.c export; llama2.c's Llama 2 tokenizer.bin vs
// the Llama SPM GGUF.

void expect_same_vocab(const Vocab& a, const Vocab& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.types, b.types);
  EXPECT_EQ(a.bos_id, b.bos_id);
  EXPECT_EQ(a.eos_id, b.eos_id);
  EXPECT_EQ(a.unk_id, b.unk_id);
  EXPECT_EQ(a.pad_id, b.pad_id);
  EXPECT_EQ(a.add_bos, b.add_bos);
  EXPECT_EQ(a.add_eos, b.add_eos);
  EXPECT_EQ(a.add_space_prefix, b.add_space_prefix);
}

TEST(Stories260kTest, Llama2cTokenizerEqualsGgufVocab) {
  const std::string gguf_path = testing::shared_path("models/stories260K.gguf");
  const std::string bin_path = testing::shared_path("models/tok512.bin");
  SPW_REQUIRE_SHARED_FILE(gguf_path);
  SPW_REQUIRE_SHARED_FILE(bin_path);
  auto file = GgufFile::open(gguf_path);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  auto from_gguf = vocab_from_gguf(*file);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.error().to_string();
  auto from_bin = vocab_from_llama2c(bin_path, 512);
  ASSERT_TRUE(from_bin.ok()) << from_bin.error().to_string();
  expect_same_vocab(*from_gguf, *from_bin);
  // The GGUF stores padding_token_id = 0xFFFFFFFF, the converters' "none": no pad, no warning.
  EXPECT_TRUE(from_gguf->warnings.empty());
  EXPECT_EQ(from_gguf->pad_id, -1);

  auto a = make_tokenizer(std::move(from_gguf).value());
  auto b = make_tokenizer(std::move(from_bin).value());
  ASSERT_TRUE(a.ok() && b.ok());
  for (const std::string_view text :
       {"Once upon a time, there was a little girl named Lily.",
        " She loved to play outside in the park.\nOne day, she saw a big, red ball!",
        "\"Mom, can I have a cookie?\" asked Tom. 123 + 456 = 579", "", "  ",
        "Ünïcödé and 🦙 fall back to bytes"}) {
    const Ids ids = encode(**a, text, /*add_special=*/true);
    EXPECT_EQ(ids, encode(**b, text, /*add_special=*/true)) << text;
    EXPECT_EQ(detokenize(**a, ids), text);
    EXPECT_EQ(detokenize(**b, ids), text);
  }
}

TEST(Stories260kTest, GreedyGoldenIdsDecodeToGoldenText) {
  const std::string gguf_path = testing::shared_path("models/stories260K.gguf");
  const std::string ids_path = testing::shared_path("models/stories260K_greedy256_ids.txt");
  const std::string text_path = testing::shared_path("models/stories260K_greedy256.txt");
  SPW_REQUIRE_SHARED_FILE(gguf_path);
  SPW_REQUIRE_SHARED_FILE(ids_path);
  SPW_REQUIRE_SHARED_FILE(text_path);
  auto tokenizer = load_gguf_tokenizer(gguf_path);
  ASSERT_NE(tokenizer, nullptr);
  Ids ids;
  std::istringstream in(read_file(ids_path));
  for (std::int32_t id; in >> id;)
    ids.push_back(id);
  ASSERT_EQ(ids.size(), 257u);
  ASSERT_EQ(ids.front(), 1);
  std::string golden = read_file(text_path);
  while (!golden.empty() && golden.back() == '\n')
    golden.pop_back();
  std::string text = detokenize(*tokenizer, ids);
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  EXPECT_EQ(text, golden);
}

TEST(Llama2cTokenizerTest, Llama2TokenizerBinEqualsLlamaSpmGguf) {
  const std::string gguf_path = testing::shared_path("models/ggml-vocab-llama-spm.gguf");
  const std::string bin_path = testing::shared_path("models/tokenizer.bin");
  SPW_REQUIRE_SHARED_FILE(gguf_path);
  SPW_REQUIRE_SHARED_FILE(bin_path);
  auto file = GgufFile::open(gguf_path);
  ASSERT_TRUE(file.ok());
  auto from_gguf = vocab_from_gguf(*file);
  auto from_bin = vocab_from_llama2c(bin_path, 32000);
  ASSERT_TRUE(from_gguf.ok() && from_bin.ok());
  expect_same_vocab(*from_gguf, *from_bin);
}

TEST(Llama2cTokenizerTest, RejectsBadFiles) {
  const auto dir = testing::temp_dir("llama2c_tokenizer");
  EXPECT_EQ(vocab_from_llama2c((dir / "missing.bin").string(), 3).status().code(),
            ErrorCode::kNotFound);
  const auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  // max_token_length, then one token: score 0, length 100, but only 2 bytes of text.
  std::string truncated(4, '\0');
  truncated += std::string(4, '\0') + std::string("\x64\0\0\0", 4) + "ab";
  EXPECT_EQ(vocab_from_llama2c(write("truncated.bin", truncated), 1).status().code(),
            ErrorCode::kDataLoss);
  std::string negative(4, '\0');
  negative += std::string(4, '\0') + std::string("\xff\xff\xff\xff", 4);
  EXPECT_EQ(vocab_from_llama2c(write("negative.bin", negative), 1).status().code(),
            ErrorCode::kDataLoss);
  EXPECT_EQ(vocab_from_llama2c(write("empty.bin", ""), 1).status().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(vocab_from_llama2c(write("any.bin", negative), 0).status().code(),
            ErrorCode::kInvalidArgument);
  // Two tokens with the same text.
  std::string dup(4, '\0');
  for (int i = 0; i < 2; ++i)
    dup += std::string(4, '\0') + std::string("\x01\0\0\0", 4) + "a";
  EXPECT_EQ(vocab_from_llama2c(write("dup.bin", dup), 2).status().code(),
            ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// GGUF metadata handling on synthetic files.

Result<Vocab> vocab_from_writer(const GgufWriter& writer, std::vector<std::byte>* storage) {
  SPW_ASSIGN_OR_RETURN(*storage, writer.serialize());
  SPW_ASSIGN_OR_RETURN(const GgufFile file, GgufFile::parse(*storage));
  return vocab_from_gguf(file);
}

TEST(VocabFromGgufTest, EndOfGenerationTokens) {
  const std::vector<std::string> tokens = {"<unk>", "<s>",        "</s>",    "<|eot_id|>",
                                           "a",     "<|im_end|>", "<|end|>", "<eom>"};
  std::vector<std::byte> storage;
  GgufWriter w;
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  // <|eot_id|> is a control token, <|im_end|> only plain text (not an end), <|end|>
  // user-defined; <eom> is named by tokenizer.ggml.eom_token_id.
  w.add_i32_array("tokenizer.ggml.token_type", std::vector<std::int32_t>{2, 3, 3, 3, 1, 1, 4, 3});
  w.add_u32("tokenizer.ggml.eom_token_id", 7);
  auto v = vocab_from_writer(w, &storage);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_EQ(v->eom_id, 7);
  EXPECT_EQ(v->eog_ids, (std::vector<std::int32_t>{2, 3, 6, 7}));
  EXPECT_TRUE(v->is_eog(2));
  EXPECT_FALSE(v->is_eog(5));
  EXPECT_FALSE(v->is_eog(4));
}

TEST(VocabFromGgufTest, DefaultsValidationAndErrors) {
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
  std::vector<std::byte> storage;
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    auto v = vocab_from_writer(w, &storage);
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    // llama.cpp's SPM defaults; no scores/types: 0 and normal.
    EXPECT_EQ(v->bos_id, 1);
    EXPECT_EQ(v->eos_id, 2);
    EXPECT_EQ(v->unk_id, 0);
    EXPECT_TRUE(v->add_bos);
    EXPECT_TRUE(v->add_space_prefix);
    EXPECT_EQ(v->scores, std::vector<float>(6, 0.0f));
    EXPECT_EQ(v->types, std::vector<TokenType>(6, TokenType::kNormal));
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_u32("tokenizer.ggml.bos_token_id", 99);  // Out of range: default kept, warned.
    w.add_bool("tokenizer.ggml.add_space_prefix", false);
    w.add_bool("tokenizer.ggml.add_eos_token", true);
    auto v = vocab_from_writer(w, &storage);
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    EXPECT_EQ(v->bos_id, 1);
    EXPECT_EQ(v->warnings.size(), 1u);
    EXPECT_FALSE(v->add_space_prefix);
    EXPECT_TRUE(v->add_eos);
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "bert");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    EXPECT_EQ(vocab_from_writer(w, &storage).status().code(), ErrorCode::kUnimplemented);
  }
  {
    GgufWriter w;  // Scores shorter than tokens.
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_f32_array("tokenizer.ggml.scores", std::vector<float>{1, 2});
    EXPECT_EQ(vocab_from_writer(w, &storage).status().code(), ErrorCode::kInvalidArgument);
  }
  {
    GgufWriter w;  // Wrong type.
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_string("tokenizer.ggml.add_bos_token", "yes");
    EXPECT_FALSE(vocab_from_writer(w, &storage).ok());
  }
  {
    GgufWriter w;  // BPE without merges.
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    EXPECT_EQ(vocab_from_writer(w, &storage).status().code(), ErrorCode::kInvalidArgument);
  }
  {
    GgufWriter w;  // BPE with an unknown pre-tokenizer: default, with a warning.
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "no-such-pre");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_string_array("tokenizer.ggml.merges", std::vector<std::string>{"a b"});
    auto v = vocab_from_writer(w, &storage);
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    EXPECT_EQ(v->kind, VocabKind::kBpe);
    EXPECT_EQ(v->pre_tokenizer, PreTokenizer::kDefault);
    EXPECT_FALSE(v->add_space_prefix);
    EXPECT_FALSE(v->add_bos);
    EXPECT_EQ(v->bos_id, -1);  // Default 11 is outside this 6-token vocabulary.
    ASSERT_FALSE(v->warnings.empty());
    EXPECT_NE(v->warnings[0].find("no-such-pre"), std::string::npos);
  }
  {
    GgufWriter w;  // Llama 3: add_bos and ignore_merges by default.
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", "llama-bpe");
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_string_array("tokenizer.ggml.merges", std::vector<std::string>{"a b"});
    w.add_u32("tokenizer.ggml.bos_token_id", 1);
    auto v = vocab_from_writer(w, &storage);
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    EXPECT_EQ(v->pre_tokenizer, PreTokenizer::kLlama3);
    EXPECT_TRUE(v->add_bos);
    EXPECT_TRUE(v->ignore_merges);
    EXPECT_EQ(v->merges, std::vector<std::string>{"a b"});
  }
}

TEST(VocabTest, FinalizeRejectsInconsistentVocabularies) {
  Vocab v;
  EXPECT_FALSE(finalize_vocab(v).ok());  // No tokens.
  v.tokens = {"a", "b", "a"};
  EXPECT_EQ(finalize_vocab(v).code(), ErrorCode::kInvalidArgument);  // Duplicate.
  v.tokens = {"a", "b", ""};
  v.scores.clear();
  v.types.clear();
  ASSERT_TRUE(finalize_vocab(v).ok());
  EXPECT_EQ(v.tokens[2], "[EMPTY_2]");
  EXPECT_EQ(v.warnings.size(), 1u);
  v.bos_id = 3;
  EXPECT_FALSE(finalize_vocab(v).ok());
  v.bos_id = -1;
  v.add_bos = true;
  EXPECT_FALSE(finalize_vocab(v).ok());
  v.add_bos = false;
  v.scores = {1.0f};
  EXPECT_FALSE(finalize_vocab(v).ok());
}

// ---------------------------------------------------------------------------------------------
// SPM on hand-built vocabularies: score order, ties, byte fallback, unknown handling.

constexpr std::string_view kSp = "\xE2\x96\x81";  // U+2581

std::unique_ptr<Tokenizer> spm_tokenizer(std::vector<std::pair<std::string, float>> pieces,
                                         bool byte_tokens, bool with_unk = true) {
  Vocab v;
  v.kind = VocabKind::kSpm;
  v.add_space_prefix = true;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.scores = {0, 0, 0};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  v.unk_id = with_unk ? 0 : -1;
  v.bos_id = 1;
  v.eos_id = 2;
  if (byte_tokens) {
    for (int b = 0; b < 256; ++b) {
      v.tokens.push_back(fmt::format("<0x{:02X}>", b));
      v.scores.push_back(0);
      v.types.push_back(TokenType::kByte);
    }
  }
  for (auto& [text, score] : pieces) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(TokenType::kNormal);
  }
  auto t = make_tokenizer(std::move(v));
  EXPECT_TRUE(t.ok()) << t.error().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<std::string> texts_of(const Tokenizer& t, const Ids& ids) {
  std::vector<std::string> out;
  for (const std::int32_t id : ids)
    out.push_back(t.vocab().tokens[id]);
  return out;
}

TEST(SpmTokenizerTest, HigherScoreMergesFirst) {
  const std::string sp(kSp);
  // "▁ab": the pairs ▁a and ab compete; the higher-scoring merge wins.
  auto t1 = spm_tokenizer({{sp, -5}, {"a", -5}, {"b", -5}, {"ab", -1}, {sp + "a", -2}}, false);
  EXPECT_EQ(texts_of(*t1, encode(*t1, "ab")), Words({sp, "ab"}));
  auto t2 = spm_tokenizer({{sp, -5}, {"a", -5}, {"b", -5}, {"ab", -2}, {sp + "a", -1}}, false);
  EXPECT_EQ(texts_of(*t2, encode(*t2, "ab")), Words({sp + "a", "b"}));
  // Equal scores: the leftmost pair first ("aaa" -> "aa" + "a").
  auto t3 = spm_tokenizer({{sp, -5}, {"a", -5}, {"aa", -1}}, false);
  EXPECT_EQ(texts_of(*t3, encode(*t3, "aaa")), Words({sp, "aa", "a"}));
  // Merges continue through intermediate tokens.
  auto t4 = spm_tokenizer({{sp, -5}, {"a", -5}, {"b", -5}, {"ab", -1}, {sp + "ab", -3}}, false);
  EXPECT_EQ(texts_of(*t4, encode(*t4, "ab ab")), Words({sp + "ab", sp + "ab"}));
}

TEST(SpmTokenizerTest, UnknownCharactersUseBytesThenUnk) {
  const std::string sp(kSp);
  auto bytes = spm_tokenizer({{sp, -1}, {"a", -1}}, /*byte_tokens=*/true);
  EXPECT_EQ(texts_of(*bytes, encode(*bytes, "a\xC3\xA9")), Words({sp, "a", "<0xC3>", "<0xA9>"}));
  EXPECT_EQ(detokenize(*bytes, encode(*bytes, "a\xC3\xA9")), "a\xC3\xA9");
  auto unk = spm_tokenizer({{sp, -1}, {"a", -1}}, /*byte_tokens=*/false);
  EXPECT_EQ(encode(*unk, "a\xC3\xA9"), Ids({3, 4, 0, 0}));  // One <unk> per byte.
  auto none = spm_tokenizer({{sp, -1}, {"a", -1}}, false, /*with_unk=*/false);
  EXPECT_EQ(none->encode("a\xC3\xA9", false, false).status().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(encode(*none, "a"), Ids({3, 4}));
}

// ---------------------------------------------------------------------------------------------
// (c) Byte-level BPE on a hand-built vocabulary.

// `raw` in GPT-2's byte alphabet ("Ġ" for a space, ...).
std::string bl(std::string_view raw) {
  std::string out;
  for (const char c : raw)
    append_utf8(byte_to_unicode(static_cast<std::uint8_t>(c)), &out);
  return out;
}

std::unique_ptr<Tokenizer> bpe_tokenizer(PreTokenizer pre, bool ignore_merges = false) {
  Vocab v;
  v.kind = VocabKind::kBpe;
  v.pre_tokenizer = pre;
  v.ignore_merges = ignore_merges;
  for (int b = 0; b < 256; ++b)
    v.tokens.push_back(bl(std::string(1, static_cast<char>(b))));
  // 256..
  for (const char* t : {"he", " t", " the", "ll", "llo", " hello"})
    v.tokens.push_back(bl(t));
  v.tokens.push_back("<|endoftext|>");  // 262
  v.tokens.push_back("x\xE2\x9C\x93");  // 263: a character outside the byte alphabet.
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  v.types[262] = TokenType::kControl;
  v.bos_id = 262;
  v.eos_id = 262;
  for (const auto& [l, r] : std::vector<std::pair<std::string, std::string>>{
           {"h", "e"}, {" ", "t"}, {" t", "he"}, {"l", "l"}, {"ll", "o"}}) {
    v.merges.push_back(bl(l) + " " + bl(r));
  }
  auto t = make_tokenizer(std::move(v));
  EXPECT_TRUE(t.ok()) << t.error().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(BpeTokenizerTest, MergesByRank) {
  auto t = bpe_tokenizer(PreTokenizer::kGpt2);
  // " the": h+e (rank 0), Ġ+t (1), Ġt+he (2). " hello": h+e, l+l, ll+o; "Ġhello" is a token
  // but no merge forms it.
  EXPECT_EQ(encode(*t, " the hello"), Ids({258, ' ', 256, 260}));
  // Equal ranks: leftmost first.
  EXPECT_EQ(encode(*t, "lll"), Ids({259, 'l'}));
  // Multi-byte characters become one token per byte of the byte alphabet.
  EXPECT_EQ(encode(*t, "\xC3\xA9"), Ids({0xC3, 0xA9}));
  EXPECT_EQ(detokenize(*t, encode(*t, "Caf\xC3\xA9 the hello!")), "Caf\xC3\xA9 the hello!");
  EXPECT_EQ(t->token_to_piece(258), " the");
  EXPECT_EQ(t->token_to_piece(263), "x[UNK_BYTE_0xe29c93x\xE2\x9C\x93]");
}

TEST(BpeTokenizerTest, IgnoreMergesTakesWholeWords) {
  auto t = bpe_tokenizer(PreTokenizer::kLlama3, /*ignore_merges=*/true);
  EXPECT_EQ(encode(*t, " the hello"), Ids({258, 261}));
}

TEST(BpeTokenizerTest, SpecialTokensAndFlags) {
  auto t = bpe_tokenizer(PreTokenizer::kGpt2);
  EXPECT_EQ(encode(*t, "<|endoftext|>he", false, /*parse_special=*/true), Ids({262, 256}));
  const Ids plain = encode(*t, "<|endoftext|>he", false, /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 262), 0);
  EXPECT_EQ(detokenize(*t, plain), "<|endoftext|>he");
  EXPECT_EQ(detokenize(*t, Ids({262, 256})), "he");
  EXPECT_EQ(detokenize(*t, Ids({262, 256}), {.render_special = true}), "<|endoftext|>he");
  // add_bos is off for this vocabulary: add_special adds nothing.
  EXPECT_EQ(encode(*t, "he", /*add_special=*/true), Ids({256}));
  // BPE does not add or strip a space prefix.
  EXPECT_EQ(detokenize(*t, encode(*t, " he")), " he");
}

// The pre-tokenizers against their regexes (expected splits computed from the regexes).
TEST(PreTokenizerTest, SplitsLikeTheRegexes) {
  const std::string text =
      "Hello world's  I've 'RE x   y\n \nz 1234567 $5+3<=4 don't "
      "我想在apple工作1314151天～ 🦙.cpp";
  EXPECT_EQ(
      pretokenize(text, PreTokenizer::kGpt2),
      Words({"Hello",   " world", "'s", " ",      " I", "'ve",  " '",       "RE",
             " x",      "  ",     " y", "\n ",    "\n", "z",    " 1234567", " $",
             "5",       "+",      "3",  "<=",     "4",  " don", "'t",       " 我想在apple工作",
             "1314151", "天",     "～", " 🦙.", "cpp"}));
  EXPECT_EQ(pretokenize(text, PreTokenizer::kLlama3), Words({"Hello", " world",
                                                             "'s",    " ",
                                                             " I",    "'ve",
                                                             " '",    "RE",
                                                             " x",    "  ",
                                                             " y",    "\n \n",
                                                             "z",     " ",
                                                             "123",   "456",
                                                             "7",     " $",
                                                             "5",     "+",
                                                             "3",     "<=",
                                                             "4",     " don",
                                                             "'t",    " 我想在apple工作",
                                                             "131",   "415",
                                                             "1",     "天",
                                                             "～",    " 🦙.",
                                                             "cpp"}));
  EXPECT_EQ(
      pretokenize(text, PreTokenizer::kQwen2),
      Words({"Hello", " world", "'s", " ", " I", "'ve", " '", "RE",   " x", "  ",
             " y",    "\n \n",  "z",  " ", "1",  "2",   "3",  "4",    "5",  "6",
             "7",     " $",     "5",  "+", "3",  "<=",  "4",  " don", "'t", " 我想在apple工作",
             "1",     "3",      "1",  "4", "1",  "5",   "1",  "天",   "～", " 🦙.",
             "cpp"}));
  // llama.cpp's "default": punctuation runs are split off first, so contractions never form.
  EXPECT_EQ(pretokenize(text, PreTokenizer::kDefault),
            Words({"Hello", " world", "'",   "s",   " ",    " I",    "'",   "ve",
                   " ",     "'",      "RE",  " x",  "  ",   " y",    "\n ", "\n",
                   "z",     " ",      "123", "456", "7",    " ",     "$",   "5",
                   "+",     "3",      "<=",  "4",   " don", "'",     "t",   " 我想在apple工作",
                   "131",   "415",    "1",   "天",  "～",   " 🦙", ".",   "cpp"}));

  EXPECT_EQ(pretokenize("    Hello\n    Hello", PreTokenizer::kGpt2),
            Words({"   ", " Hello", "\n   ", " Hello"}));
  EXPECT_EQ(pretokenize("    Hello\n    Hello", PreTokenizer::kLlama3),
            Words({"   ", " Hello", "\n", "   ", " Hello"}));
  EXPECT_EQ(pretokenize("333333333", PreTokenizer::kLlama3), Words({"333", "333", "333"}));
  EXPECT_EQ(pretokenize("333333333", PreTokenizer::kGpt2), Words({"333333333"}));
  EXPECT_EQ(pretokenize("3.14 1e10", PreTokenizer::kQwen2),
            Words({"3", ".", "1", "4", " ", "1", "e", "1", "0"}));
  EXPECT_EQ(pretokenize("\t\tfoo\r\n\r\nbar  ", PreTokenizer::kGpt2),
            Words({"\t", "\t", "foo", "\r\n\r", "\n", "bar", "  "}));
  EXPECT_EQ(pretokenize("\t\tfoo\r\n\r\nbar  ", PreTokenizer::kLlama3),
            Words({"\t", "\tfoo", "\r\n\r\n", "bar", "  "}));
  // Non-ASCII whitespace (U+00A0, U+3000) is whitespace.
  EXPECT_EQ(pretokenize("a\xC2\xA0"
                        "b\xE3\x80\x80 c",
                        PreTokenizer::kLlama3),
            Words({"a",
                   "\xC2\xA0"
                   "b",
                   "\xE3\x80\x80", " c"}));
  // Invalid UTF-8 becomes U+FFFD, a [^\s\p{L}\p{N}] character.
  EXPECT_EQ(pretokenize("a\xFF"
                        "b",
                        PreTokenizer::kGpt2),
            Words({"a", "\xEF\xBF\xBD", "b"}));
  EXPECT_TRUE(pretokenize("", PreTokenizer::kDefault).empty());
}

TEST(UnicodeTest, StrictUtf8Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // a, é, €, 😀
  EXPECT_FALSE(is_valid_utf8("a\x80"));                                 // A lone continuation byte.
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));                              // Truncated.
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));                              // Overlong.
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));                          // A surrogate.
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));                      // Past U+10FFFF.
}

TEST(UnicodeTest, Classes) {
  EXPECT_EQ(unicode_class('a'), UnicodeClass::kLetter);
  EXPECT_EQ(unicode_class(U'\u6211'), UnicodeClass::kLetter);
  EXPECT_EQ(unicode_class('7'), UnicodeClass::kNumber);
  EXPECT_EQ(unicode_class(U'\u00BD'), UnicodeClass::kNumber);  // ½
  EXPECT_EQ(unicode_class('!'), UnicodeClass::kPunctuation);
  EXPECT_EQ(unicode_class('$'), UnicodeClass::kOther);        // Sc
  EXPECT_EQ(unicode_class(U'\uFF5E'), UnicodeClass::kOther);  // ～ Sm
  EXPECT_EQ(unicode_class(U'\U0001F999'), UnicodeClass::kOther);
  EXPECT_EQ(unicode_class(U'\u00A0'), UnicodeClass::kWhitespace);
  EXPECT_EQ(unicode_class(0x10FFFF), UnicodeClass::kOther);
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(unicode_to_byte(byte_to_unicode(static_cast<std::uint8_t>(b))), b);
  EXPECT_EQ(byte_to_unicode(' '), U'\u0120');
  EXPECT_EQ(unicode_to_byte('~' + 1), -1);
}

// ---------------------------------------------------------------------------------------------
// (d) Streaming detokenization.

TEST_F(LlamaSpmTest, StreamingHoldsBackSplitCharacters) {
  // llama.cpp's test vector: the llama emoji has no token, so it is four byte tokens.
  const Ids ids = encode(*tokenizer_, " this is \xF0\x9F\xA6\x99.cpp");
  ASSERT_EQ(ids, Ids({29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223}));
  StreamingDetokenizer stream(*tokenizer_);
  std::vector<std::string> pieces;
  for (const std::int32_t id : ids)
    pieces.push_back(stream.push(id));
  pieces.push_back(stream.flush());
  // The first piece, "▁", loses its space: the text's own space is in "▁this".
  EXPECT_EQ(pieces,
            Words({"", " this", " is", " ", "", "", "", "\xF0\x9F\xA6\x99", ".", "cpp", ""}));
  std::string joined;
  for (const std::string& p : pieces) {
    EXPECT_TRUE(is_valid_utf8(p));
    joined += p;
  }
  EXPECT_EQ(joined, detokenize(*tokenizer_, ids));
  EXPECT_EQ(joined, " this is \xF0\x9F\xA6\x99.cpp");  // The prefix space is the text's own.
}

TEST_F(LlamaSpmTest, StreamingReplacesBytesThatCannotFormCharacters) {
  const auto byte = [](int b) { return 3 + b; };
  StreamingDetokenizer stream(*tokenizer_);
  EXPECT_EQ(stream.push(byte(0xF0)), "");
  EXPECT_EQ(stream.push(byte(0x9F)), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");           // An unfinished character at the end.
  EXPECT_EQ(stream.push(byte(0xFF)), "\xEF\xBF\xBD");  // Never valid: replaced at once.
  EXPECT_EQ(stream.push(byte(0xE2)), "");
  EXPECT_EQ(stream.push(15043), "\xEF\xBF\xBD Hello");  // ▁Hello cannot continue E2.
  EXPECT_EQ(stream.push(byte(0xC0)), "\xEF\xBF\xBD");   // Overlong lead.
  EXPECT_EQ(stream.flush(), "");
}

TEST_F(LlamaSpmTest, StreamingMatchesWholeDecodingOnRandomIds) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::int32_t> any_id(-5, tokenizer_->n_tokens() + 5);
  std::uniform_int_distribution<std::int32_t> byte_id(3, 258);
  for (int round = 0; round < 200; ++round) {
    Ids ids;
    for (int i = 0; i < 24; ++i)
      ids.push_back(i % 3 == 0 ? any_id(rng) : byte_id(rng));
    StreamingDetokenizer stream(*tokenizer_);
    std::string joined;
    for (const std::int32_t id : ids) {
      const std::string piece = stream.push(id);
      ASSERT_TRUE(is_valid_utf8(piece));
      joined += piece;
    }
    joined += stream.flush();
    ASSERT_TRUE(is_valid_utf8(joined));
    ASSERT_EQ(joined, detokenize(*tokenizer_, ids));
  }
}

TEST(BpeTokenizerTest, StreamingSplitsEmojiAcrossByteTokens) {
  auto t = bpe_tokenizer(PreTokenizer::kGpt2);
  const Ids ids = encode(*t, "\xF0\x9F\x98\x81!");
  ASSERT_EQ(ids, Ids({0xF0, 0x9F, 0x98, 0x81, '!'}));
  StreamingDetokenizer stream(*t);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "");
  EXPECT_EQ(stream.push(ids[3]), "\xF0\x9F\x98\x81");
  EXPECT_EQ(stream.push(ids[4]), "!");
}

// ---------------------------------------------------------------------------------------------
// (e) Bad input.

TEST_F(LlamaSpmTest, OutOfRangeIdsDecodeToNothing) {
  for (const std::int32_t id : {-1, -1000, 32000, 1 << 30, INT32_MAX, INT32_MIN}) {
    EXPECT_EQ(tokenizer_->token_to_piece(id), "");
    EXPECT_EQ(tokenizer_->token_to_piece(id, /*render_special=*/true), "");
  }
  // They are skipped entirely: the leading-space rule still applies to "▁Hello".
  EXPECT_EQ(detokenize(*tokenizer_, Ids({-1, 15043, 32000, 2787})), "Hello World");
}

TEST_F(LlamaSpmTest, InvalidUtf8InputDoesNotCrash) {
  const std::string text =
      "\xFF\xFE\x80"
      "abc\xE2\x82 \xC0\xAF\xED\xA0\x80\xF4\x90\x80\x80\xE2";
  const Ids ids = encode(*tokenizer_, text, /*add_special=*/true, /*parse_special=*/true);
  ASSERT_FALSE(ids.empty());
  for (const std::int32_t id : ids)
    EXPECT_TRUE(tokenizer_->vocab().contains(id));
  const std::string decoded = detokenize(*tokenizer_, ids);
  EXPECT_TRUE(is_valid_utf8(decoded));
  EXPECT_NE(decoded.find("abc"), std::string::npos);
  // Byte fallback keeps every byte. As in llama.cpp, spaces are escaped before the text is cut
  // into characters, so the truncated "\xE2\x82" swallows the first byte of the escaped
  // space and that "▁" comes back as its three bytes.
  std::string raw;
  for (const std::int32_t id : ids)
    raw += tokenizer_->token_to_piece(id);
  std::string expected = " " + text;
  expected.replace(expected.find(' ', 1), 1, std::string(kSp));
  EXPECT_EQ(raw, expected);

  auto bpe = bpe_tokenizer(PreTokenizer::kDefault);
  const Ids bpe_ids = encode(*bpe, text);
  EXPECT_TRUE(is_valid_utf8(detokenize(*bpe, bpe_ids)));
}

TEST_F(LlamaSpmTest, RejectsOversizedInput) {
  const std::string huge(kMaxEncodeBytes + 1, 'a');
  EXPECT_EQ(tokenizer_->encode(huge, false, false).status().code(), ErrorCode::kOutOfRange);
}

}  // namespace
}  // namespace spillway::engine
