#include "engine/llama2c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/gguf.h"

#include "test_support.h"

namespace spillway::engine {
namespace {

using ::spillway::testing::shared_path;

// A tiny checkpoint whose float i (counting from the first weight) has the value i, held in a
// float vector so the bytes are aligned like a mapping.
struct TinyCheckpoint {
  std::int32_t dim = 8, hidden = 12, layers = 2, heads = 2, kv_heads = 1, vocab = 10, seq = 4;
  bool shared = true;
  std::vector<float> storage;

  std::span<const std::byte> bytes(std::size_t drop_tail_bytes = 0) const {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(storage.data()),
                                      storage.size() * sizeof(float) - drop_tail_bytes);
  }

  void build() {
    const std::int64_t kv_dim = dim / heads * kv_heads;
    const std::int64_t floats =
        vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * dim * kv_dim + 3 * dim * hidden) +
        dim + seq * (dim / heads) + (shared ? 0 : vocab * dim);
    storage.assign(static_cast<std::size_t>(7 + floats), 0.0f);
    const std::int32_t header[7] = {dim, hidden, layers, heads, kv_heads, shared ? vocab : -vocab,
                                    seq};
    std::memcpy(storage.data(), header, sizeof(header));
    for (std::int64_t i = 0; i < floats; ++i)
      storage[static_cast<std::size_t>(7 + i)] = float(i);
  }
};

float first_float(const GgufTensorInfo& t) {
  float v;
  std::memcpy(&v, t.data, sizeof(v));
  return v;
}

TEST(Llama2cTest, Stories260KMatchesTheGgufConversion) {
  const std::string bin = shared_path("models/stories260K.bin");
  const std::string gguf = shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(bin);
  SPW_REQUIRE_SHARED_FILE(gguf);
  Result<Llama2cCheckpoint> ckpt = Llama2cCheckpoint::open(bin);
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  const Llama2cConfig& c = ckpt->config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_EQ(c.head_size(), 8);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_EQ(ckpt->tensors().size(), 2u + 9 * 5);
  EXPECT_EQ(ckpt->find_tensor("output.weight"), nullptr);

  // Same names, shapes and bytes as llama.cpp's conversion. For attn_q/attn_k this is the
  // evidence that the GGUF rows are NOT permuted relative to llama2.c, so one RoPE mode
  // (adjacent pairs) serves both sources.
  Result<GgufFile> file = GgufFile::open(gguf);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  for (const GgufTensorInfo& t : ckpt->tensors()) {
    const GgufTensorInfo* g = file->find_tensor(t.name);
    ASSERT_NE(g, nullptr) << t.name;
    EXPECT_EQ(g->type, t.type) << t.name;
    EXPECT_EQ(g->shape, t.shape) << t.name;
    ASSERT_EQ(g->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(g->data, t.data, t.nbytes), 0) << t.name << " differs";
  }
  // The GGUF's output.weight is a copy of the shared embedding.
  const GgufTensorInfo* output = file->find_tensor("output.weight");
  const GgufTensorInfo* embd = ckpt->find_tensor("token_embd.weight");
  ASSERT_NE(output, nullptr);
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(std::memcmp(output->data, embd->data, embd->nbytes), 0);
}

TEST(Llama2cTest, LayoutOfASyntheticCheckpoint) {
  TinyCheckpoint tiny;
  tiny.shared = false;
  tiny.build();
  Result<Llama2cCheckpoint> ckpt = Llama2cCheckpoint::parse(tiny.bytes());
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_FALSE(ckpt->config().shared_classifier);
  EXPECT_EQ(ckpt->config().vocab_size, 10);
  EXPECT_EQ(ckpt->tensors().size(), 3u + 9 * 2);
  const std::int64_t dim = 8, hidden = 12, kv_dim = 4, vocab = 10, layers = 2;
  struct Expected {
    std::string name;
    std::vector<std::int64_t> shape;
    std::int64_t first;  // Index of the tensor's first float after the header.
  };
  const std::int64_t att = vocab * dim;
  const std::int64_t wq = att + layers * dim;
  const std::int64_t wk = wq + layers * dim * dim;
  const std::int64_t wv = wk + layers * dim * kv_dim;
  const std::int64_t wo = wv + layers * dim * kv_dim;
  const std::int64_t ffn = wo + layers * dim * dim;
  const std::int64_t w1 = ffn + layers * dim;
  const std::int64_t w2 = w1 + layers * dim * hidden;
  const std::int64_t w3 = w2 + layers * dim * hidden;
  const std::int64_t fin = w3 + layers * dim * hidden;
  const std::int64_t wcls = fin + dim + 2 * 4 * 2;
  const std::vector<Expected> expected = {
      {"token_embd.weight", {dim, vocab}, 0},
      {"blk.1.attn_norm.weight", {dim}, att + dim},
      {"blk.0.attn_q.weight", {dim, dim}, wq},
      {"blk.1.attn_k.weight", {dim, kv_dim}, wk + dim * kv_dim},
      {"blk.0.attn_v.weight", {dim, kv_dim}, wv},
      {"blk.1.attn_output.weight", {dim, dim}, wo + dim * dim},
      {"blk.0.ffn_norm.weight", {dim}, ffn},
      {"blk.1.ffn_gate.weight", {dim, hidden}, w1 + dim * hidden},
      {"blk.0.ffn_down.weight", {hidden, dim}, w2},
      {"blk.1.ffn_up.weight", {dim, hidden}, w3 + dim * hidden},
      {"output_norm.weight", {dim}, fin},
      {"output.weight", {dim, vocab}, wcls},
  };
  for (const Expected& e : expected) {
    const GgufTensorInfo* t = ckpt->find_tensor(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_EQ(t->type, GgmlType::kF32);
    EXPECT_EQ(t->shape, e.shape) << e.name;
    EXPECT_EQ(t->nbytes, static_cast<std::size_t>(t->elements()) * 4) << e.name;
    EXPECT_EQ(t->offset, 28u + 4u * static_cast<std::uint64_t>(e.first)) << e.name;
    EXPECT_EQ(first_float(*t), static_cast<float>(e.first)) << e.name;
  }
  const GgufTensorInfo* out = ckpt->find_tensor("output.weight");
  EXPECT_EQ(out->data + out->nbytes, tiny.bytes().data() + tiny.bytes().size());
}

TEST(Llama2cTest, EveryTruncationAndExtraByteIsRejected) {
  TinyCheckpoint tiny;
  tiny.build();
  ASSERT_TRUE(Llama2cCheckpoint::parse(tiny.bytes()).ok());
  for (std::size_t drop = 1; drop <= tiny.bytes().size(); ++drop) {
    Result<Llama2cCheckpoint> ckpt = Llama2cCheckpoint::parse(tiny.bytes(drop));
    ASSERT_FALSE(ckpt.ok()) << drop;
    EXPECT_EQ(ckpt.error().code(), ErrorCode::kDataLoss) << ckpt.error().message();
  }
  tiny.storage.push_back(0.0f);
  Result<Llama2cCheckpoint> longer = Llama2cCheckpoint::parse(tiny.bytes());
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.error().message().find("size mismatch"), std::string::npos);
}

TEST(Llama2cTest, RejectsBadHeaders) {
  const auto check = [](auto mutate, ErrorCode code, std::string_view substring) {
    TinyCheckpoint tiny;
    tiny.build();
    std::int32_t header[7];
    std::memcpy(header, tiny.storage.data(), sizeof(header));
    mutate(header);
    std::memcpy(tiny.storage.data(), header, sizeof(header));
    Result<Llama2cCheckpoint> ckpt = Llama2cCheckpoint::parse(tiny.bytes());
    ASSERT_FALSE(ckpt.ok()) << substring;
    EXPECT_EQ(ckpt.error().code(), code) << ckpt.error().message();
    EXPECT_NE(ckpt.error().message().find(substring), std::string::npos) << ckpt.error().message();
  };
  check([](std::int32_t* h) { h[0] = 0; }, ErrorCode::kDataLoss, "header field dim is 0");
  check([](std::int32_t* h) { h[0] = -8; }, ErrorCode::kDataLoss, "header field dim is -8");
  check([](std::int32_t* h) { h[3] = 3; }, ErrorCode::kDataLoss, "not a multiple of n_heads");
  check([](std::int32_t* h) { h[4] = 3; }, ErrorCode::kDataLoss, "n_kv_heads");
  check([](std::int32_t* h) { h[3] = 8; }, ErrorCode::kDataLoss, "head size 1 is odd");
  check([](std::int32_t* h) { h[5] = INT32_MIN; }, ErrorCode::kDataLoss, "vocab_size");
  check([](std::int32_t* h) { h[5] = -10; }, ErrorCode::kDataLoss, "size mismatch");
  check([](std::int32_t* h) { h[2] = INT32_MAX; }, ErrorCode::kDataLoss, "n_layers");
  check(
      [](std::int32_t* h) {
        h[0] = 1 << 16;
        h[1] = 1 << 20;
        h[2] = 1 << 10;
        h[5] = 1 << 20;
        h[6] = 1 << 20;
      },
      ErrorCode::kDataLoss, "size mismatch");
  check([](std::int32_t* h) { h[0] = 0x616b3432; }, ErrorCode::kUnimplemented, "export version");
  Result<Llama2cCheckpoint> tiny_file = Llama2cCheckpoint::parse(std::span<const std::byte>());
  EXPECT_EQ(tiny_file.error().code(), ErrorCode::kDataLoss);
}

TEST(Llama2cTest, OpenReportsPath) {
  Result<Llama2cCheckpoint> missing = Llama2cCheckpoint::open("/nonexistent/model.bin");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("/nonexistent/model.bin"), std::string::npos);
  const std::string gguf = shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(gguf);
  Result<Llama2cCheckpoint> wrong = Llama2cCheckpoint::open(gguf);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().message().rfind(gguf + ": ", 0), 0u) << wrong.error().message();
}

}  // namespace
}  // namespace spillway::engine
