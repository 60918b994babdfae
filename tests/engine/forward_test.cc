// The forward pass's batch-first contract: any split of the same tokens into batches, any mix
// of sequences in one batch and any placement of cache blocks give the same logits.
#include "engine/forward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model_fixture.h"

namespace spillway::engine {
namespace {

struct Harness {
  explicit Harness(const Model& m, std::int32_t blocks = 64, std::int32_t max_batch = 64)
      : cache(std::move(KvCache::create(m.config(), {16, blocks})).value()),
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

}  // namespace
}  // namespace spillway::engine
