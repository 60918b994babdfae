// The reference operations against values worked out from their definitions.
#include "engine/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "engine/thread_pool.h"

namespace spillway::engine {
namespace {

TEST(Ops, RmsNorm) {
  const float x[] = {1, 2, 3, 4};
  const float w[] = {1, 1, 2, 0.5f};
  float out[4];
  rms_norm(x, w, 0.0f, 4, out);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0);
  EXPECT_NEAR(out[0], 1 / rms, 1e-6);
  EXPECT_NEAR(out[2], 2 * 3 / rms, 1e-6);
  EXPECT_NEAR(out[3], 0.5 * 4 / rms, 1e-6);
}

ModelConfig rope_config(RopeMode mode) {
  ModelConfig c;
  c.head_dim = 4;
  c.rope_dim = 4;
  c.rope_freq_base = 10000.0f;
  c.rope_mode = mode;
  return c;
}

TEST(Ops, RopeNormalRotatesAdjacentPairs) {
  std::vector<float> x = {1, 0, 1, 0};
  rope(x.data(), 1, 3, rope_config(RopeMode::kNormal), {});
  // Pair 0: angle 3 * 10000^0; pair 1: angle 3 * 10000^(-1/2).
  EXPECT_NEAR(x[0], std::cos(3.0), 1e-5);
  EXPECT_NEAR(x[1], std::sin(3.0), 1e-5);
  EXPECT_NEAR(x[2], std::cos(0.03), 1e-5);
  EXPECT_NEAR(x[3], std::sin(0.03), 1e-5);
}

TEST(Ops, RopeNeoxRotatesHalves) {
  std::vector<float> x = {1, 1, 0, 0};
  rope(x.data(), 1, 3, rope_config(RopeMode::kNeox), {});
  EXPECT_NEAR(x[0], std::cos(3.0), 1e-5);
  EXPECT_NEAR(x[2], std::sin(3.0), 1e-5);
  EXPECT_NEAR(x[1], std::cos(0.03), 1e-5);
  EXPECT_NEAR(x[3], std::sin(0.03), 1e-5);
}

TEST(Ops, RopeFrequencyFactorsDivideAngles) {
  std::vector<float> x = {1, 0, 1, 0};
  const float factors[] = {2.0f, 1.0f};
  rope(x.data(), 1, 3, rope_config(RopeMode::kNormal), factors);
  EXPECT_NEAR(x[0], std::cos(1.5), 1e-5);
  EXPECT_NEAR(x[2], std::cos(0.03), 1e-5);
}

TEST(Ops, RopeAtPositionZeroIsIdentityAndPreservesNorm) {
  std::vector<float> x = {0.3f, -1.2f, 2.0f, 0.5f};
  auto y = x;
  rope(y.data(), 1, 0, rope_config(RopeMode::kNormal), {});
  EXPECT_EQ(x, y);
  rope(y.data(), 1, 1234, rope_config(RopeMode::kNormal), {});
  const double n0 = std::inner_product(x.begin(), x.end(), x.begin(), 0.0);
  const double n1 = std::inner_product(y.begin(), y.end(), y.begin(), 0.0);
  EXPECT_NEAR(n0, n1, 1e-4);
}

TEST(Ops, SoftmaxAndSwiglu) {
  float x[] = {1, 2, 3};
  softmax(x, 3);
  const double z = std::exp(1) + std::exp(2) + std::exp(3);
  EXPECT_NEAR(x[0], std::exp(1) / z, 1e-6);
  EXPECT_NEAR(x[2], std::exp(3) / z, 1e-6);
  float big[] = {1000, 1000};
  softmax(big, 2);
  EXPECT_FLOAT_EQ(big[0], 0.5f);

  const float g[] = {0.0f, 2.0f};
  const float u[] = {5.0f, 3.0f};
  float out[2];
  swiglu(g, u, 2, out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_NEAR(out[1], 2.0 / (1 + std::exp(-2.0)) * 3.0, 1e-5);
}

TEST(Ops, DotF32MatchesDouble) {
  std::vector<float> a(37), b(37);
  double ref = 0;
  for (int i = 0; i < 37; ++i) {
    a[i] = std::sin(i * 0.7f);
    b[i] = std::cos(i * 0.3f);
    ref += double(a[i]) * b[i];
  }
  EXPECT_NEAR(dot_f32(a.data(), b.data(), 37), ref, 1e-5);
}

TEST(ThreadPool, RunsEveryShareOnceAndParallelForCoversRange) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::vector<int> hits(pool.size(), 0);
    for (int round = 0; round < 100; ++round)
      pool.run([&](int i, int) { ++hits[i]; });
    for (int h : hits)
      EXPECT_EQ(h, 100);
    std::vector<int> covered(1001, 0);
    pool.parallel_for(1001, 8, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        ++covered[i];
    });
    for (int c : covered)
      ASSERT_EQ(c, 1);
  }
}

}  // namespace
}  // namespace spillway::engine
