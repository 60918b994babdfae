#include "engine/gguf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "engine/gguf_writer.h"

#include "test_support.h"

namespace spillway::engine {
namespace {

using ::spillway::testing::shared_path;
using ::spillway::testing::temp_dir;

// Builds GGUF bytes field by field, so tests can write headers no writer would produce.
class Raw {
 public:
  Raw& u8(std::uint8_t v) { return put(v); }
  Raw& u32(std::uint32_t v) { return put(v); }
  Raw& i32(std::int32_t v) { return put(v); }
  Raw& u64(std::uint64_t v) { return put(v); }
  Raw& f32(float v) { return put(v); }
  Raw& str(std::string_view s) {
    u64(s.size());
    for (const char c : s)
      buf.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Raw& header(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv) {
    for (const char c : std::string_view("GGUF"))
      buf.push_back(static_cast<std::byte>(c));
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  // A tensor info: name, dims, type, offset.
  Raw& tensor(std::string_view name, std::vector<std::uint64_t> ne, std::uint32_t type,
              std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(ne.size()));
    for (const std::uint64_t d : ne)
      u64(d);
    return u32(type).u64(offset);
  }
  Raw& pad(std::size_t alignment = 32) {
    while (buf.size() % alignment != 0)
      buf.push_back(std::byte{0});
    return *this;
  }
  Raw& zeros(std::size_t n) {
    buf.insert(buf.end(), n, std::byte{0});
    return *this;
  }

  std::vector<std::byte> buf;

 private:
  template <typename T>
  Raw& put(T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
    return *this;
  }
};

// Parses `bytes` and expects failure with `code` and a message containing `substring`.
void expect_error(const std::vector<std::byte>& bytes, ErrorCode code, std::string_view substring,
                  const GgufLimits& limits = {}) {
  Result<GgufFile> file = GgufFile::parse(bytes, limits);
  ASSERT_FALSE(file.ok()) << "parsed, expected: " << substring;
  EXPECT_EQ(file.error().code(), code) << file.error().to_string();
  EXPECT_NE(file.error().message().find(substring), std::string::npos)
      << "message: " << file.error().message() << "\nexpected substring: " << substring;
}

// Touches every metadata value and tensor byte, so sanitizers see any bad view.
void touch_everything(const GgufFile& file) {
  std::uint64_t sink = 0;
  for (const GgufKv& kv : file.metadata()) {
    sink += kv.key.size();
    if (auto s = kv.value.as_string(); s.ok()) sink += s->size();
    if (auto v = kv.value.as_f64(); v.ok()) sink += static_cast<std::uint64_t>(*v != 0);
    for (std::uint64_t i = 0; i < kv.value.array_size(); ++i) {
      if (auto s = kv.value.string_at(i); s.ok()) sink += s->empty() ? 0 : s->back();
      if (auto f = kv.value.f32_at(i); f.ok()) sink += static_cast<std::uint64_t>(*f != 0);
    }
  }
  for (const GgufTensorInfo& t : file.tensors()) {
    for (std::size_t i = 0; i < t.nbytes; i += 997)
      sink += static_cast<std::uint8_t>(t.data[i]);
    if (t.nbytes > 0) sink += static_cast<std::uint8_t>(t.data[t.nbytes - 1]);
  }
  EXPECT_GE(sink, 0u);
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

std::vector<std::byte> pattern_bytes(std::size_t n, std::uint8_t seed) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return out;
}

// A small file exercising every writer feature; its last tensor needs no padding, so every
// proper prefix of it is truncated.
struct SmallModel {
  std::vector<std::byte> f32_data = pattern_bytes(4 * 6 * 2, 1);
  std::vector<std::byte> q8_data = pattern_bytes(34 * 16, 2);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\xe2\x96\x81hello", ""};
  std::vector<float> scores = {0.0f, -1.5f, 2.25f, 1e-3f, -0.0f};
  std::vector<std::int32_t> types = {2, 3, 3, 1, -7};

  GgufWriter writer() const {
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 5);
    w.add_i32("test.negative", -42);
    w.add_u64("test.big", 1ull << 40);
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.add_bool("tokenizer.ggml.add_bos_token", true);
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_f32_array("tokenizer.ggml.scores", scores);
    w.add_i32_array("tokenizer.ggml.token_type", types);
    w.add_tensor("a.weight", GgmlType::kF32, {6, 2}, f32_data);
    w.add_tensor("b.weight", GgmlType::kF16, {5, 3},
                 [](std::int64_t first_row, std::span<std::byte> rows) {
                   for (std::size_t i = 0; i < rows.size(); ++i) {
                     rows[i] = static_cast<std::byte>(first_row * 10 + static_cast<int>(i));
                   }
                   return Status();
                 });
    w.add_tensor("c.weight", GgmlType::kQ8_0, {32, 16}, q8_data);
    return w;
  }
};

TEST(GgufTest, Stories260KMetadataAndTensors) {
  const std::string path = shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(path);
  Result<GgufFile> file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->data_offset(), 14176u);
  EXPECT_EQ(file->bytes().size(), 1185376u);
  EXPECT_EQ(file->metadata().size(), 19u);
  EXPECT_EQ(file->get_string("general.architecture").value(), "llama");
  EXPECT_EQ(file->get_u64("llama.embedding_length").value(), 64u);
  EXPECT_EQ(file->get_u64("llama.feed_forward_length").value(), 172u);
  EXPECT_EQ(file->get_u64("llama.block_count").value(), 5u);
  EXPECT_EQ(file->get_u64("llama.attention.head_count").value(), 8u);
  EXPECT_EQ(file->get_u64("llama.attention.head_count_kv").value(), 4u);
  EXPECT_EQ(file->get_u64("llama.context_length").value(), 2048u);
  EXPECT_EQ(file->get_u64("llama.rope.dimension_count").value(), 8u);
  EXPECT_FLOAT_EQ(file->get_f32("llama.attention.layer_norm_rms_epsilon").value(), 1e-5f);
  EXPECT_EQ(file->get_u64("tokenizer.ggml.bos_token_id").value(), 1u);
  EXPECT_EQ(file->get_u64("tokenizer.ggml.padding_token_id").value(), 4294967295u);

  const GgufValue* tokens = file->find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_TRUE(tokens->is_array());
  EXPECT_EQ(tokens->array_type(), GgufValueType::kString);
  EXPECT_EQ(tokens->array_size(), 512u);
  EXPECT_EQ(tokens->string_at(0).value(), "<unk>");
  EXPECT_EQ(tokens->string_at(1).value(), "<s>");
  EXPECT_EQ(tokens->string_at(2).value(), "</s>");
  EXPECT_EQ(tokens->string_at(512).error().code(), ErrorCode::kOutOfRange);
  const GgufValue* scores = file->find("tokenizer.ggml.scores");
  ASSERT_NE(scores, nullptr);
  EXPECT_EQ(scores->array_type(), GgufValueType::kFloat32);
  EXPECT_EQ(scores->array_bytes().size(), 512u * 4);
  const GgufValue* token_type = file->find("tokenizer.ggml.token_type");
  ASSERT_NE(token_type, nullptr);
  EXPECT_EQ(token_type->int_at(0).value(), 2);
  EXPECT_EQ(token_type->int_at(1).value(), 3);

  ASSERT_EQ(file->tensors().size(), 48u);
  const GgufTensorInfo* k = file->find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->type, GgmlType::kF32);
  EXPECT_EQ(k->shape, (std::vector<std::int64_t>{64, 32}));
  EXPECT_EQ(k->nbytes, 64u * 32 * 4);
  EXPECT_EQ(k->data, file->bytes().data() + file->data_offset() + k->offset);
  const GgufTensorInfo* embd = file->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->shape, (std::vector<std::int64_t>{64, 512}));
  EXPECT_EQ(embd->offset, 0u);
  EXPECT_EQ(file->find_tensor("blk.5.attn_k.weight"), nullptr);
  for (int l = 0; l < 5; ++l) {
    for (const char* t : {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_gate",
                          "ffn_down", "ffn_up", "ffn_norm"}) {
      EXPECT_NE(file->find_tensor(fmt::format("blk.{}.{}.weight", l, t)), nullptr) << l << t;
    }
  }
  touch_everything(*file);
}

TEST(GgufTest, TypedGettersReportMissingKeysAndWrongTypes) {
  const std::string path = shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(path);
  Result<GgufFile> file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  Result<std::uint64_t> missing = file->get_u64("llama.no_such_key");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("llama.no_such_key"), std::string::npos);
  Result<std::string_view> wrong = file->get_string("llama.block_count");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong.error().message().find("llama.block_count"), std::string::npos);
  EXPECT_EQ(file->get_bool("general.architecture").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(file->find("tokenizer.ggml.tokens")->int_at(0).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST(GgufTest, Stories260KF16) {
  const std::string path = shared_path("models/stories260K-f16.gguf");
  SPW_REQUIRE_SHARED_FILE(path);
  Result<GgufFile> file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  ASSERT_EQ(file->tensors().size(), 48u);
  for (const GgufTensorInfo& t : file->tensors()) {
    EXPECT_EQ(t.type, t.shape.size() == 2 ? GgmlType::kF16 : GgmlType::kF32) << t.name;
  }
  EXPECT_EQ(file->find_tensor("blk.0.ffn_down.weight")->nbytes, 172u * 64 * 2);
}

TEST(GgufTest, VocabOnlyFileHasNoTensors) {
  const std::string path = shared_path("models/ggml-vocab-llama-spm.gguf");
  SPW_REQUIRE_SHARED_FILE(path);
  Result<GgufFile> file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_EQ(file->metadata().size(), 22u);
  EXPECT_EQ(file->get_string("tokenizer.ggml.model").value(), "llama");
  EXPECT_TRUE(file->get_bool("tokenizer.ggml.add_bos_token").value());
  EXPECT_FALSE(file->get_bool("tokenizer.ggml.add_eos_token").value());
  EXPECT_EQ(file->find("tokenizer.ggml.tokens")->array_size(), 32000u);
  EXPECT_EQ(file->get_u64("llama.embedding_length").value(), 4096u);
  touch_everything(*file);
}

TEST(GgufTest, OpenReportsPath) {
  Result<GgufFile> missing = GgufFile::open("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("/nonexistent/model.gguf"), std::string::npos);

  const auto dir = temp_dir("gguf_open");
  EXPECT_EQ(GgufFile::open(dir.string()).error().code(), ErrorCode::kInvalidArgument);
  const std::string empty = (dir / "empty.gguf").string();
  std::ofstream(empty).close();
  Result<GgufFile> file = GgufFile::open(empty);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(file.error().message().rfind(empty + ": ", 0), 0u) << file.error().message();
}

TEST(GgufWriterTest, RoundTrip) {
  const SmallModel model;
  const auto dir = temp_dir("gguf_writer");
  const std::string path = (dir / "small.gguf").string();
  ASSERT_TRUE(model.writer().write(path).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  Result<GgufFile> file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->data_offset() % 32, 0u);
  ASSERT_EQ(file->metadata().size(), 9u);
  EXPECT_EQ(file->metadata()[0].key, "general.architecture");
  EXPECT_EQ(file->get_string("general.architecture").value(), "llama");
  EXPECT_EQ(file->find("llama.block_count")->type(), GgufValueType::kUint32);
  EXPECT_EQ(file->get_u64("llama.block_count").value(), 5u);
  EXPECT_EQ(file->get_i64("test.negative").value(), -42);
  EXPECT_EQ(file->get_u64("test.negative").error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(file->get_u64("test.big").value(), 1ull << 40);
  EXPECT_EQ(file->get_f32("llama.attention.layer_norm_rms_epsilon").value(), 1e-5f);
  EXPECT_TRUE(file->get_bool("tokenizer.ggml.add_bos_token").value());

  const GgufValue* tokens = file->find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(tokens->array_size(), model.tokens.size());
  for (std::size_t i = 0; i < model.tokens.size(); ++i) {
    EXPECT_EQ(tokens->string_at(i).value(), model.tokens[i]);
  }
  const GgufValue* scores = file->find("tokenizer.ggml.scores");
  ASSERT_EQ(scores->array_size(), model.scores.size());
  for (std::size_t i = 0; i < model.scores.size(); ++i) {
    EXPECT_EQ(scores->f32_at(i).value(), model.scores[i]);
  }
  EXPECT_EQ(std::memcmp(scores->array_bytes().data(), model.scores.data(), 4 * model.scores.size()),
            0);
  const GgufValue* types = file->find("tokenizer.ggml.token_type");
  for (std::size_t i = 0; i < model.types.size(); ++i) {
    EXPECT_EQ(types->int_at(i).value(), model.types[i]);
  }

  ASSERT_EQ(file->tensors().size(), 3u);
  const GgufTensorInfo& a = file->tensors()[0];
  EXPECT_EQ(a.name, "a.weight");
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{6, 2}));
  ASSERT_EQ(a.nbytes, model.f32_data.size());
  EXPECT_EQ(std::memcmp(a.data, model.f32_data.data(), a.nbytes), 0);
  const GgufTensorInfo* b = file->find_tensor("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, GgmlType::kF16);
  ASSERT_EQ(b->nbytes, 5u * 3 * 2);
  for (std::size_t i = 0; i < b->nbytes; ++i) {
    // One fill() call covers all three 10-byte rows.
    EXPECT_EQ(b->data[i], static_cast<std::byte>(i)) << i;
  }
  const GgufTensorInfo* c = file->find_tensor("c.weight");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->type, GgmlType::kQ8_0);
  ASSERT_EQ(c->nbytes, model.q8_data.size());
  EXPECT_EQ(std::memcmp(c->data, model.q8_data.data(), c->nbytes), 0);

  // serialize() produces the same bytes as write().
  Result<std::vector<std::byte>> bytes = model.writer().serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, read_file(path));
}

TEST(GgufWriterTest, FillIsCalledInRowChunks) {
  // 4 MiB chunks of 1 MiB rows: a 9-row tensor takes three calls (4 + 4 + 1 rows).
  GgufWriter w;
  std::vector<std::int64_t> firsts;
  w.add_tensor("big", GgmlType::kF32, {1 << 18, 9},
               [&firsts](std::int64_t first_row, std::span<std::byte> rows) {
                 firsts.push_back(first_row);
                 EXPECT_EQ(rows.size() % (1u << 20), 0u);
                 std::memset(rows.data(), static_cast<int>(first_row), rows.size());
                 return Status();
               });
  Result<std::vector<std::byte>> bytes = w.serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(firsts, (std::vector<std::int64_t>{0, 4, 8}));
  Result<GgufFile> file = GgufFile::parse(*bytes);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  const GgufTensorInfo& t = file->tensors()[0];
  EXPECT_EQ(t.data[5u << 20], std::byte{4});
  EXPECT_EQ(t.data[t.nbytes - 1], std::byte{8});
}

TEST(GgufWriterTest, RejectsBadInput) {
  {
    GgufWriter w;
    w.add_u32("a", 1);
    w.add_u32("a", 2);
    EXPECT_EQ(w.serialize().error().code(), ErrorCode::kInvalidArgument);
  }
  {
    GgufWriter w;
    const std::vector<std::byte> data(12);
    w.add_tensor("t", GgmlType::kF32, {4}, data);  // Needs 16 bytes.
    EXPECT_NE(w.serialize().error().message().find("12 bytes given"), std::string::npos);
  }
  {
    GgufWriter w;
    w.add_tensor("t", GgmlType::kQ8_0, {10, 1},
                 [](std::int64_t, std::span<std::byte>) { return Status(); });
    EXPECT_EQ(w.serialize().error().code(), ErrorCode::kInvalidArgument);
  }
  {
    GgufWriter w;
    w.add_tensor("t", GgmlType::kF32, {4}, [](std::int64_t, std::span<std::byte>) {
      return Status(make_error(ErrorCode::kInternal, "source gone"));
    });
    const auto dir = temp_dir("gguf_writer_fail");
    const std::string path = (dir / "x.gguf").string();
    Status s = w.write(path);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("source gone"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  }
}

TEST(GgufTest, EveryPrefixOfAValidFileFailsCleanly) {
  Result<std::vector<std::byte>> bytes = SmallModel().writer().serialize();
  ASSERT_TRUE(bytes.ok());
  Result<GgufFile> full = GgufFile::parse(*bytes);
  ASSERT_TRUE(full.ok()) << full.error().to_string();
  const GgufTensorInfo& last = full->tensors().back();
  ASSERT_EQ(full->data_offset() + last.offset + last.nbytes, bytes->size());
  for (std::size_t n = 0; n < bytes->size(); ++n) {
    // A copy of exactly n bytes, so ASan catches any read past the end.
    const std::vector<std::byte> prefix(bytes->begin(), bytes->begin() + static_cast<long>(n));
    Result<GgufFile> file = GgufFile::parse(prefix);
    ASSERT_FALSE(file.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(file.error().code(), ErrorCode::kDataLoss) << n << ": " << file.error().message();
  }
}

TEST(GgufTest, RandomBytesAndMutationsNeverCrash) {
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<std::byte> buf(static_cast<std::size_t>(rng() % 200));
    for (std::byte& b : buf)
      b = static_cast<std::byte>(byte(rng));
    if (iter % 2 == 0 && buf.size() >= 8) {  // Get past the magic and version half the time.
      std::memcpy(buf.data(), "GGUF\x03\x00\x00\x00", 8);
    }
    Result<GgufFile> file = GgufFile::parse(buf);
    if (file.ok()) touch_everything(*file);
  }
  Result<std::vector<std::byte>> valid = SmallModel().writer().serialize();
  ASSERT_TRUE(valid.ok());
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::byte> buf = *valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      buf[rng() % buf.size()] = static_cast<std::byte>(byte(rng));
    }
    Result<GgufFile> file = GgufFile::parse(buf);
    if (file.ok()) touch_everything(*file);
  }
}

TEST(GgufTest, RejectsWrongMagicAndVersions) {
  Raw wrong;
  wrong.buf = {std::byte{'G'}, std::byte{'G'}, std::byte{'M'}, std::byte{'L'}};
  wrong.u32(3).u64(0).u64(0);
  expect_error(wrong.buf, ErrorCode::kDataLoss, "not a GGUF file");
  expect_error(Raw().header(1, 0, 0).buf, ErrorCode::kUnimplemented, "GGUF version 1");
  expect_error(Raw().header(4, 0, 0).buf, ErrorCode::kUnimplemented, "version 4");
  expect_error(Raw().header(0x03000000, 0, 0).buf, ErrorCode::kUnimplemented, "big-endian");
  expect_error({}, ErrorCode::kDataLoss, "not a GGUF file");
}

TEST(GgufTest, AcceptsVersion2AndNoTensors) {
  // The views point into the bytes, so they must outlive the file.
  const std::vector<std::byte> v2_bytes = Raw().header(2, 0, 1).str("k").u32(4).u32(7).buf;
  Result<GgufFile> v2 = GgufFile::parse(v2_bytes);
  ASSERT_TRUE(v2.ok()) << v2.error().to_string();
  EXPECT_EQ(v2->version(), 2u);
  EXPECT_EQ(v2->get_u64("k").value(), 7u);
  EXPECT_TRUE(v2->tensors().empty());
  const std::vector<std::byte> empty_bytes = Raw().header(3, 0, 0).buf;
  Result<GgufFile> empty = GgufFile::parse(empty_bytes);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->data_offset(), 24u);
}

TEST(GgufTest, RejectsHugeCounts) {
  expect_error(Raw().header(3, 1ull << 60, 0).zeros(64).buf, ErrorCode::kDataLoss,
               "header declares 1152921504606846976 tensors but only 64 bytes follow");
  expect_error(Raw().header(3, 0, ~0ull).buf, ErrorCode::kDataLoss, "metadata pairs");
  GgufLimits limits;
  limits.max_tensors = 1;
  expect_error(Raw().header(3, 2, 0).zeros(200).buf, ErrorCode::kOutOfRange, "limit 1", limits);
}

TEST(GgufTest, RejectsHugeStringsAndArrays) {
  expect_error(Raw().header(3, 0, 1).u64(1ull << 62).zeros(16).buf, ErrorCode::kDataLoss,
               "string length 4611686018427387904");
  expect_error(Raw().header(3, 0, 1).str("k").u32(8).u64(~0ull).buf, ErrorCode::kDataLoss,
               "string length");
  expect_error(Raw().header(3, 0, 1).str("k").u32(9).u32(6).u64(1ull << 61).zeros(16).buf,
               ErrorCode::kDataLoss, "metadata 'k': array of 2305843009213693952 float32");
  expect_error(Raw().header(3, 0, 1).str("k").u32(9).u32(8).u64(1ull << 40).zeros(16).buf,
               ErrorCode::kDataLoss, "extends past end of file");
  GgufLimits limits;
  limits.max_array_elements = 2;
  limits.max_string_bytes = 3;
  expect_error(Raw().header(3, 0, 1).str("k").u32(9).u32(0).u64(3).zeros(3).buf,
               ErrorCode::kOutOfRange, "array length 3 exceeds the limit of 2", limits);
  expect_error(Raw().header(3, 0, 1).str("k").u32(8).str("abcd").buf, ErrorCode::kOutOfRange,
               "string length 4 exceeds the limit of 3", limits);
}

TEST(GgufTest, RejectsBadMetadata) {
  expect_error(Raw().header(3, 0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).buf,
               ErrorCode::kDataLoss, "duplicate metadata key 'k'");
  expect_error(Raw().header(3, 0, 1).str("k").u32(13).u32(0).buf, ErrorCode::kDataLoss,
               "unknown value type 13");
  expect_error(Raw().header(3, 0, 1).str("k").u32(9).u32(9).u64(1).u32(4).u64(0).buf,
               ErrorCode::kUnimplemented, "arrays of arrays");
  expect_error(Raw().header(3, 0, 1).str("").u32(4).u32(0).buf, ErrorCode::kDataLoss,
               "empty metadata key");
  expect_error(Raw().header(3, 0, 1).str("general.alignment").u32(4).u32(48).buf,
               ErrorCode::kDataLoss, "general.alignment 48 is not a power of two");
  expect_error(Raw().header(3, 0, 1).str("general.alignment").u32(4).u32(0).buf,
               ErrorCode::kDataLoss, "not a power of two");
  expect_error(Raw().header(3, 0, 1).str("general.alignment").u32(8).str("32").buf,
               ErrorCode::kDataLoss, "general.alignment");
  expect_error(Raw().header(3, 0, 1).str("general.alignment").u32(4).u32(1u << 30).buf,
               ErrorCode::kOutOfRange, "exceeds the limit");
  expect_error(Raw().header(3, 0, 1).str("k").u32(6).u8(0).buf, ErrorCode::kDataLoss,
               "truncated file");
}

// A one-tensor file: the header, then 64 bytes of data.
std::vector<std::byte> one_tensor(std::vector<std::uint64_t> ne, std::uint32_t type,
                                  std::uint64_t offset, std::size_t data_bytes = 64) {
  return Raw()
      .header(3, 1, 0)
      .tensor("blk.0.attn_q.weight", ne, type, offset)
      .pad()
      .zeros(data_bytes)
      .buf;
}

TEST(GgufTest, RejectsBadTensorInfos) {
  ASSERT_TRUE(GgufFile::parse(one_tensor({4, 4}, 0, 0)).ok());
  expect_error(one_tensor({4, 4}, 0, 32), ErrorCode::kDataLoss,
               "tensor 'blk.0.attn_q.weight': data [128, 192) extends past end of file (160 "
               "bytes)");
  expect_error(one_tensor({4, 4}, 0, ~0ull - 31), ErrorCode::kDataLoss, "extends past end");
  expect_error(one_tensor({4, 4}, 0, 0, 63), ErrorCode::kDataLoss, "extends past end of file");
  expect_error(one_tensor({4, 4}, 99, 0), ErrorCode::kUnimplemented,
               "tensor 'blk.0.attn_q.weight': unknown ggml type 99");
  expect_error(one_tensor({4, 4}, 0, 8), ErrorCode::kDataLoss,
               "offset 8 is not a multiple of the alignment 32");
  expect_error(one_tensor({4, 0}, 0, 0), ErrorCode::kDataLoss, "dimension 1 is zero");
  expect_error(one_tensor({}, 0, 0), ErrorCode::kDataLoss, "0 dimensions");
  expect_error(one_tensor({1, 1, 1, 1, 1}, 0, 0), ErrorCode::kDataLoss, "5 dimensions");
  expect_error(one_tensor({1ull << 32, 1ull << 32}, 0, 0), ErrorCode::kDataLoss, "overflows");
  expect_error(one_tensor({1ull << 62, 1}, 0, 0), ErrorCode::kDataLoss, "overflows");
  expect_error(one_tensor({10, 2}, 8, 0), ErrorCode::kDataLoss,
               "row of 10 elements is not a multiple of the q8_0 block size 32");
  expect_error(
      Raw().header(3, 2, 0).tensor("t", {4}, 0, 0).tensor("t", {4}, 0, 32).pad().zeros(64).buf,
      ErrorCode::kDataLoss, "duplicate tensor name 't'");
  expect_error(Raw().header(3, 1, 0).tensor("", {4}, 0, 0).pad().zeros(32).buf,
               ErrorCode::kDataLoss, "empty tensor name");
  expect_error(Raw().header(3, 1, 0).tensor(std::string(65, 'x'), {4}, 0, 0).pad().zeros(32).buf,
               ErrorCode::kOutOfRange, "string length 65 exceeds the limit of 64");
}

TEST(GgufTest, HonoursCustomAlignment) {
  Raw raw;
  raw.header(3, 1, 1).str("general.alignment").u32(4).u32(64).tensor("t", {4}, 0, 0).pad(64);
  const std::size_t data_offset = raw.buf.size();
  raw.zeros(16);
  Result<GgufFile> file = GgufFile::parse(raw.buf);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->data_offset(), data_offset);

  Raw misaligned;
  misaligned.header(3, 1, 1).str("general.alignment").u32(4).u32(64).tensor("t", {4}, 0, 32);
  misaligned.pad(64).zeros(128);
  expect_error(misaligned.buf, ErrorCode::kDataLoss, "not a multiple of the alignment 64");
}

TEST(GgufTest, ValueAccessorsCheckTypesAndRanges) {
  Raw raw;
  raw.header(3, 0, 6);
  raw.str("i8").u32(1).u8(0xff);                     // -1
  raw.str("u64").u32(10).u64(~0ull);                 // Does not fit int64.
  raw.str("f64").u32(12).u64(0x3ff8000000000000);    // 1.5
  raw.str("b").u32(7).u8(2);                         // Any non-zero byte is true.
  raw.str("ints").u32(9).u32(3).u64(2).u32(0xffff);  // int16 elements -1 and 0.
  raw.str("empty").u32(9).u32(8).u64(0);
  Result<GgufFile> file = GgufFile::parse(raw.buf);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->get_i64("i8").value(), -1);
  EXPECT_EQ(file->get_u64("i8").error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(file->get_f32("i8").value(), -1.0f);
  EXPECT_EQ(file->get_u64("u64").value(), ~0ull);
  EXPECT_EQ(file->get_i64("u64").error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(file->get_f32("f64").value(), 1.5f);
  EXPECT_EQ(file->get_u64("f64").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(file->get_bool("b").value());
  const GgufValue* ints = file->find("ints");
  ASSERT_NE(ints, nullptr);
  EXPECT_EQ(ints->array_type(), GgufValueType::kInt16);
  ASSERT_EQ(ints->array_size(), 2u);
  EXPECT_EQ(ints->int_at(0).value(), -1);
  EXPECT_EQ(ints->int_at(1).value(), 0);
  EXPECT_EQ(ints->f32_at(0).value(), -1.0f);
  EXPECT_EQ(ints->int_at(2).error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(ints->string_at(0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ints->as_u64().error().code(), ErrorCode::kInvalidArgument);
  const GgufValue* empty = file->find("empty");
  EXPECT_EQ(empty->array_size(), 0u);
  EXPECT_EQ(empty->string_at(0).error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(file->find("b")->array_size(), 0u);
  EXPECT_EQ(file->find("b")->int_at(0).error().code(), ErrorCode::kInvalidArgument);
}

// Inputs kept from fuzzing (scripts/fuzz): each must parse or fail cleanly. valid-small.in is
// the fuzzer's hand-made seed and must parse. (Not named *.gguf: .gitignore excludes models.)
TEST(GgufTest, FuzzRegressions) {
  const auto dir = std::filesystem::path(__FILE__).parent_path() / "data" / "gguf_regressions";
  ASSERT_TRUE(std::filesystem::exists(dir / "valid-small.in")) << dir;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::vector<std::byte> bytes = read_file(entry.path().string());
    Result<GgufFile> file = GgufFile::parse(bytes);
    if (entry.path().filename() == "valid-small.in") {
      ASSERT_TRUE(file.ok()) << file.error().to_string();
      EXPECT_EQ(file->get_string("general.architecture").value(), "llama");
      EXPECT_EQ(file->find("tokenizer.ggml.tokens")->string_at(2).value(), "hi");
      EXPECT_EQ(file->tensors().size(), 2u);
    }
    if (file.ok()) touch_everything(*file);
  }
}

}  // namespace
}  // namespace spillway::engine
