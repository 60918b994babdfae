// The forward pass's batch-first contract: any split of the same tokens into batches, any mix
// of sequences in one batch and any placement of cache blocks give the same logits.
#include "engine/forward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "engine/quant.h"
#include "engine/quant_blocks.h"

#include "model_fixture.h"

namespace spillway::engine {
namespace {

struct Harness {
  explicit Harness(const Model& m, std::int32_t blocks = 64, std::int32_t max_batch = 64,
                   KvType kv_type = KvType::kF16)
      : cache(std::move(KvCache::create(m.config(), {16, blocks, kv_type})).value()),
        pool(2),
        forward(m, cache, pool, max_batch),
        n_vocab(m.config().n_vocab) {}
  KvCache cache;
  ThreadPool pool;
  ForwardPass forward;
  std::int32_t n_vocab;
};

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class ForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SPW_REQUIRE_SHARED_FILE(spillway::testing::stories_gguf());
    model_ = spillway::testing::load_model_or_die({spillway::testing::stories_gguf(), ""});
    ASSERT_NE(model_, nullptr);
    auto ids = model_->tokenizer().encode("Once upon a time, there was a little dog named Max.",
                                          true, false);
    ASSERT_TRUE(ids.ok());
    prompt_ = *ids;
  }
  std::unique_ptr<Model> model_;
  std::vector<std::int32_t> prompt_;
};

// Logits after the last prompt token, computed in one batch and one token per step.
TEST_F(ForwardTest, BatchedPrefillEqualsTokenByToken) {
  const auto n = static_cast<std::int32_t>(prompt_.size());
  std::vector<std::int32_t> table(4);
  std::iota(table.begin(), table.end(), 0);
  const std::span<const std::int32_t> tables[] = {table};

  Harness a(*model_);
  std::vector<BatchToken> batch;
  for (std::int32_t p = 0; p < n; ++p)
    batch.push_back({0, p, prompt_[p], p == n - 1});
  std::vector<float> la(a.n_vocab);
  ASSERT_TRUE(a.forward.run({batch, tables}, la).ok());

  Harness b(*model_);
  std::vector<float> lb(b.n_vocab);
  for (std::int32_t p = 0; p < n; ++p) {
    const BatchToken t{0, p, prompt_[p], true};
    ASSERT_TRUE(b.forward.run({std::span(&t, 1), tables}, lb).ok());
  }
  EXPECT_LT(max_abs_diff(la, lb), 1e-4f);
}

// Two sequences of different lengths in one batch, with scattered, interleaved cache blocks,
// give the same logits as each sequence alone.
TEST_F(ForwardTest, MixedSequencesAndScatteredBlocks) {
  const auto n = static_cast<std::int32_t>(prompt_.size());
  auto other = model_->tokenizer().encode("Lily had a red ball", true, false);
  ASSERT_TRUE(other.ok());
  const auto m = static_cast<std::int32_t>(other->size());

  Harness alone(*model_);
  std::vector<std::int32_t> contiguous = {0, 1, 2, 3};
  const std::span<const std::int32_t> one[] = {contiguous};
  std::vector<float> ref_a(alone.n_vocab), ref_b(alone.n_vocab);
  std::vector<BatchToken> batch;
  for (std::int32_t p = 0; p < n; ++p)
    batch.push_back({0, p, prompt_[p], p == n - 1});
  ASSERT_TRUE(alone.forward.run({batch, one}, ref_a).ok());
  batch.clear();
  for (std::int32_t p = 0; p < m; ++p)
    batch.push_back({0, p, (*other)[p], p == m - 1});
  ASSERT_TRUE(alone.forward.run({batch, one}, ref_b).ok());

  Harness mixed(*model_);
  std::vector<std::int32_t> ta = {9, 2, 30, 5}, tb = {7, 41};
  const std::span<const std::int32_t> two[] = {ta, tb};
  batch.clear();
  // Interleave the two prompts' tokens.
  for (std::int32_t p = 0; p < std::max(n, m); ++p) {
    if (p < m) batch.push_back({1, p, (*other)[p], p == m - 1});
    if (p < n) batch.push_back({0, p, prompt_[p], p == n - 1});
  }
  std::vector<float> logits(2 * mixed.n_vocab);
  ASSERT_TRUE(mixed.forward.run({batch, two}, logits).ok());
  // Logit rows come in batch order: sequence 1 finishes first here only if m < n.
  ASSERT_LT(m, n);
  EXPECT_LT(max_abs_diff(std::span(logits).first(mixed.n_vocab), ref_b), 1e-4f);
  EXPECT_LT(max_abs_diff(std::span(logits).last(mixed.n_vocab), ref_a), 1e-4f);
}

TEST_F(ForwardTest, RejectsMalformedBatches) {
  Harness h(*model_, 4, 8);
  std::vector<std::int32_t> table = {0};
  const std::span<const std::int32_t> tables[] = {table};
  std::vector<float> logits(h.n_vocab);
  auto run = [&](std::vector<BatchToken> b) { return h.forward.run({b, tables}, logits); };
  EXPECT_EQ(run({}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(run({{0, 0, 512, true}}).code(), ErrorCode::kInvalidArgument);  // Token id.
  EXPECT_EQ(run({{1, 0, 1, true}}).code(), ErrorCode::kInvalidArgument);    // Sequence.
  EXPECT_EQ(run({{0, 16, 1, true}}).code(), ErrorCode::kInvalidArgument);   // Not covered.
  EXPECT_EQ(run({{0, 0, 1, false}, {0, 2, 1, true}}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(run(std::vector<BatchToken>(9, {0, 0, 1, false})).code(), ErrorCode::kInvalidArgument);
  std::vector<float> small(10);
  const BatchToken t{0, 0, 1, true};
  EXPECT_EQ(h.forward.run({std::span(&t, 1), tables}, small).code(), ErrorCode::kInvalidArgument);
  std::vector<std::int32_t> bad_table = {99};
  const std::span<const std::int32_t> bad[] = {bad_table};
  EXPECT_EQ(h.forward.run({std::span(&t, 1), bad}, logits).code(), ErrorCode::kInvalidArgument);
}

// Every weight type runs end to end, and quantized weights stay close to the F32 weights
// they were made from (mkmodel draws the same values for every type with one seed).
TEST(ForwardTypes, QuantizedModelsTrackF32) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  auto logits_for = [](GgmlType type) {
    auto model =
        spillway::testing::load_model_or_die({spillway::testing::tiny_model_path(type), ""});
    Harness h(*model, 8, 16);
    std::vector<std::int32_t> table = {0, 1};
    const std::span<const std::int32_t> tables[] = {table};
    std::vector<BatchToken> batch;
    const std::int32_t ids[] = {1, 450, 4996, 17354, 1701};
    for (std::int32_t p = 0; p < 5; ++p)
      batch.push_back({0, p, ids[p], p == 4});
    std::vector<float> logits(h.n_vocab);
    EXPECT_TRUE(h.forward.run({batch, tables}, logits).ok());
    return logits;
  };
  auto cosine = [](const std::vector<float>& a, const std::vector<float>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    return ab / std::sqrt(aa * bb);
  };
  const auto f32 = logits_for(GgmlType::kF32);
  for (float v : f32)
    ASSERT_TRUE(std::isfinite(v));
  const struct {
    GgmlType type;
    double min_cosine;
  } cases[] = {{GgmlType::kF16, 0.9999}, {GgmlType::kBF16, 0.999}, {GgmlType::kQ8_0, 0.999},
               {GgmlType::kQ6_K, 0.995}, {GgmlType::kQ4_0, 0.95},  {GgmlType::kQ4_K, 0.95}};
  for (const auto& c : cases) {
    EXPECT_GT(cosine(f32, logits_for(c.type)), c.min_cosine) << ggml_type_info(c.type).name;
  }
}

// A Q8_0 cache keeps the batch contract bit for bit: two sequences prefilled interleaved in one
// batch over scattered blocks, then decoded together, give each the logits it gets alone.
TEST(ForwardKvTypes, Q8_0CacheBatchesEqualSequencesAlone) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  auto model = spillway::testing::load_model_or_die(
      {spillway::testing::tiny_model_path(GgmlType::kQ8_0), ""});
  ASSERT_EQ(model->config().head_dim % 32, 0);
  const std::vector<std::int32_t> a = {1,     450,   4996,  17354, 1701, 29916, 432,  975,   278,
                                       17366, 11203, 29889, 450,   4996, 17354, 1701, 29916, 432};
  const std::vector<std::int32_t> b = {1, 3118, 263, 931, 29892};
  const std::int32_t next_a = 278, next_b = 727;
  // Prompt, then one decode step; the logits of both.
  const auto alone = [&](const std::vector<std::int32_t>& tokens, std::int32_t next) {
    Harness h(*model, 16, 64, KvType::kQ8_0);
    std::vector<std::int32_t> table = {0, 1};
    const std::span<const std::int32_t> tables[] = {table};
    const auto n = static_cast<std::int32_t>(tokens.size());
    std::vector<BatchToken> batch;
    for (std::int32_t p = 0; p < n; ++p)
      batch.push_back({0, p, tokens[static_cast<std::size_t>(p)], p == n - 1});
    std::vector<float> logits(2 * static_cast<std::size_t>(h.n_vocab));
    EXPECT_TRUE(h.forward.run({batch, tables}, std::span(logits).first(h.n_vocab)).ok());
    const BatchToken step{0, n, next, true};
    EXPECT_TRUE(
        h.forward.run({std::span(&step, 1), tables}, std::span(logits).last(h.n_vocab)).ok());
    return logits;
  };
  const std::vector<float> ref_a = alone(a, next_a), ref_b = alone(b, next_b);

  Harness h(*model, 16, 64, KvType::kQ8_0);
  std::vector<std::int32_t> ta = {9, 2}, tb = {12};
  const std::span<const std::int32_t> tables[] = {ta, tb};
  const auto na = static_cast<std::int32_t>(a.size()), nb = static_cast<std::int32_t>(b.size());
  std::vector<BatchToken> batch;
  for (std::int32_t p = 0; p < na; ++p) {
    if (p < nb) batch.push_back({1, p, b[static_cast<std::size_t>(p)], p == nb - 1});
    batch.push_back({0, p, a[static_cast<std::size_t>(p)], p == na - 1});
  }
  std::vector<float> prefill(2 * static_cast<std::size_t>(h.n_vocab));
  ASSERT_TRUE(h.forward.run({batch, tables}, prefill).ok());
  const BatchToken steps[] = {{0, na, next_a, true}, {1, nb, next_b, true}};
  std::vector<float> decode(2 * static_cast<std::size_t>(h.n_vocab));
  ASSERT_TRUE(h.forward.run({steps, tables}, decode).ok());
  const auto v = static_cast<std::size_t>(h.n_vocab);
  const auto same = [&](const std::vector<float>& got, std::size_t at,
                        const std::vector<float>& ref, std::size_t ref_at) {
    return std::equal(got.begin() + at * v, got.begin() + (at + 1) * v, ref.begin() + ref_at * v);
  };
  EXPECT_TRUE(same(prefill, 0, ref_b, 0)) << "b's prompt logits differ in the batch";
  EXPECT_TRUE(same(prefill, 1, ref_a, 0)) << "a's prompt logits differ in the batch";
  EXPECT_TRUE(same(decode, 0, ref_a, 1)) << "a's decode logits differ in the batch";
  EXPECT_TRUE(same(decode, 1, ref_b, 1)) << "b's decode logits differ in the batch";
}

// A Q8_0 cache needs heads of whole 32-element blocks: stories260K's head_dim is 8.
TEST_F(ForwardTest, Q8_0CacheRejectsHeadsNotAMultipleOf32) {
  ASSERT_EQ(model_->config().head_dim, 8);
  const auto cache = KvCache::create(model_->config(), {16, 4, KvType::kQ8_0});
  ASSERT_FALSE(cache.ok());
  EXPECT_EQ(cache.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(cache.error().message().find("head_dim to be a multiple of 32; this model's is 8"),
            std::string::npos)
      << cache.error().message();
  EXPECT_TRUE(KvCache::create(model_->config(), {16, 4, KvType::kF16}).ok());
}

// The cache's Q8_0 writer: ggml's bytes for finite blocks; a block with a NaN or an infinity
// reads back as NaN throughout (a NaN cast to int8 would be undefined, and in practice a zero).
TEST(KvCacheSize, Q8_0WritesKeepNonFiniteValuesVisible) {
  std::vector<float> x(96);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  std::vector<BlockQ8_0> want(3), got(3);
  quantize_row(GgmlType::kQ8_0, x.data(), want.data(), 96);
  quantize_kv_q8_0(x.data(), got.data(), 96);
  EXPECT_EQ(std::memcmp(want.data(), got.data(), sizeof(BlockQ8_0) * 3), 0);
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    x[40] = bad;
    quantize_kv_q8_0(x.data(), got.data(), 96);
    std::vector<float> back(96);
    dequantize_row(GgmlType::kQ8_0, got.data(), back.data(), 96);
    for (std::size_t i = 0; i < 96; ++i) {
      if (i / 32 == 1) {
        EXPECT_TRUE(std::isnan(back[i])) << bad << " at " << i;
      } else {
        EXPECT_TRUE(std::isfinite(back[i])) << bad << " at " << i;
      }
    }
  }
}

// Bytes per token: K and V of every layer, Q8_0 at 34 bytes per 32 elements.
TEST(KvCacheSize, BytesPerTokenFollowTheType) {
  ModelConfig c;
  c.n_layer = 22;
  c.n_head = 32;
  c.n_head_kv = 4;
  c.head_dim = 64;
  EXPECT_EQ(KvCache::bytes_per_token(c, KvType::kF32), 2u * 256 * 22 * 4);
  EXPECT_EQ(KvCache::bytes_per_token(c, KvType::kF16), 2u * 256 * 22 * 2);
  EXPECT_EQ(KvCache::bytes_per_token(c, KvType::kQ8_0), 2u * 8 * 34 * 22);
  EXPECT_EQ(*parse_kv_type("q8_0"), KvType::kQ8_0);
  EXPECT_EQ(kv_type_name(KvType::kQ8_0), "q8_0");
  EXPECT_FALSE(parse_kv_type("q4_0").ok());
  EXPECT_NE(parse_kv_type("q4_0").error().message().find("f16, f32, q8_0"), std::string::npos);
}

}  // namespace
}  // namespace spillway::engine
