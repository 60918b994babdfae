// Tests for engine/cpu_features.h, engine/kernels.h and engine/matmul.h: every kernel level the
// machine supports, for every weight type, against the scalar reference dot_row on random
// inputs of awkward shapes, and the SPILLWAY_ISA dispatch.
//
// Two checks per output:
//   1. Against the exact dot of the weights with the activations the kernel actually used
//     (for quantized types, the int8 activations times their scales): only float rounding may
//     differ, bounded by (cols / 4 + 64) * FLT_EPSILON * M, where M = sum_i (|w_i| + A_i) |x_i|
//     and A_i is the largest |w| in i's block (it covers offset terms that cancel, such as Q4_0's
//     -8 or Q4_K's mins). This catches any indexing or scale mistake.
//   2. Against dot_row with the original float activations: the int8 quantization of the
//     activations adds at most sum_i |w_i| * d_x(i) / 2 (d_x = block amax / 127), on top of 1.
#include "engine/kernels.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/ggml_type.h"
#include "engine/half.h"
#include "engine/matmul.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_repack.h"
#include "engine/thread_pool.h"

namespace spillway::engine {
namespace {

std::vector<IsaLevel> supported_levels() {
  std::vector<IsaLevel> out;
  const IsaLevel top = max_isa(detect_cpu_features());
  for (IsaLevel l : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    if (static_cast<int>(l) <= static_cast<int>(top)) out.push_back(l);
  }
  return out;
}

struct TestMatrix {
  std::vector<std::byte> bytes;
  std::vector<std::byte> panel_bytes;
  Matrix m;
};

// Adds the panel layout to t (t.m.panels), 2 bytes off 64-byte alignment so kernels may not
// assume more than the layout's contract (2-byte alignment).
void add_panels(TestMatrix& t) {
  t.panel_bytes.assign(panel_layout_bytes(t.m.type, t.m.cols, t.m.rows) + 64, std::byte{0x5A});
  const auto address = reinterpret_cast<std::uintptr_t>(t.panel_bytes.data());
  std::byte* start = t.panel_bytes.data() + (64 - address % 64) % 64 + 2;
  repack_to_panels(t.m.type, t.m.data, t.m.cols, t.m.rows, start);
  t.m.panels = start;
}

TestMatrix random_matrix(GgmlType type, std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  TestMatrix t;
  t.m.type = type;
  t.m.rows = rows;
  t.m.cols = cols;
  t.m.row_bytes = *ggml_row_bytes(type, cols);
  t.m.name = "test";
  t.bytes.resize(t.m.row_bytes * static_cast<std::size_t>(rows) + 1);
  // Offset by one byte-pair so rows are only 2-byte aligned, as inside a GGUF file.
  std::vector<float> row(static_cast<std::size_t>(cols));
  std::vector<std::byte> aligned(t.m.row_bytes * static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    // Vary row magnitudes so per-block scales differ.
    const float scale = std::ldexp(1.0f, static_cast<int>(r % 5) - 2);
    for (float& v : row)
      v = u(rng) * scale;
    quantize_row(type, row.data(), aligned.data() + static_cast<std::size_t>(r) * t.m.row_bytes,
                 cols);
  }
  t.bytes = std::move(aligned);
  t.m.data = t.bytes.data();
  return t;
}

// `count` activations uniform in [-scale, scale).
std::vector<float> random_activations(std::int64_t count, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(count));
  for (float& v : x)
    v = u(rng) * scale;
  return x;
}

std::int64_t block_of(GgmlType type) {
  switch (act_format(type)) {
    case ActFormat::kQ8_32:
      return 32;
    case ActFormat::kQ8_256:
      return 256;
    case ActFormat::kFloat:
      break;
  }
  return ggml_type_info(type).block_elements;
}

// The activations a kernel of `type` computes with: x itself, or its Q8 quantization.
std::vector<float> effective_x(GgmlType type, const std::vector<float>& x, std::int64_t cols,
                               std::vector<float>* step) {
  const std::int64_t blk = block_of(type);
  std::vector<float> out(x.size());
  step->assign(x.size(), 0.0f);
  if (act_format(type) == ActFormat::kFloat) return x;
  for (std::size_t base = 0; base < x.size(); base += static_cast<std::size_t>(blk)) {
    float amax = 0.0f;
    for (std::int64_t i = 0; i < blk; ++i)
      amax = std::max(amax, std::fabs(x[base + i]));
    const float d = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (std::int64_t i = 0; i < blk; ++i) {
      out[base + i] = std::nearbyint(x[base + i] * id) * d;
      (*step)[base + i] = d;
    }
  }
  (void)cols;
  return out;
}

// Q8_0 weights of only -128, -127 and 127, and activations of only +-3 (quantized to +-127):
// the largest products the int8 kernels meet, where 16-bit pair sums could saturate.
void make_extreme_q8_0(TestMatrix& w, std::vector<float>& x, std::mt19937& rng) {
  constexpr std::int8_t kExtremes[] = {-128, -127, 127};
  std::uniform_int_distribution<int> pick(0, 2);
  for (std::int64_t r = 0; r < w.m.rows; ++r) {
    auto* blocks = reinterpret_cast<BlockQ8_0*>(w.bytes.data() + r * w.m.row_bytes);
    for (std::int64_t b = 0; b < w.m.cols / kQK8_0; ++b) {
      for (std::int8_t& q : blocks[b].qs)
        q = kExtremes[pick(rng)];
    }
  }
  for (float& v : x)
    v = pick(rng) == 0 ? -3.0f : 3.0f;
}

void check_matmul(IsaLevel level, GgmlType type, std::int64_t rows, std::int64_t cols,
                  std::int64_t n, ThreadPool& pool, std::uint32_t seed,
                  std::int64_t max_tokens = 16, bool panels = false, bool extremes = false) {
  SCOPED_TRACE(::testing::Message() << isa_name(level) << " " << ggml_type_info(type).name
                                    << " rows=" << rows << " cols=" << cols << " n=" << n
                                    << (panels ? " panels" : "") << (extremes ? " extremes" : ""));
  std::mt19937 rng(seed);
  TestMatrix w = random_matrix(type, rows, cols, rng);
  std::vector<float> x = random_activations(n * cols, rng, 3.0f);
  if (extremes) make_extreme_q8_0(w, x, rng);
  if (panels) add_panels(w);
  std::vector<float> y(static_cast<std::size_t>(n * rows), -12345.0f);
  // With the default max_tokens, n = 17 runs in two chunks.
  MatmulScratch scratch(pool.size(), cols + 256, max_tokens);
  matmul(pool, scratch, kernel_table(level), w.m, x.data(), n, y.data());

  std::vector<float> step;
  const std::vector<float> xq = effective_x(type, x, cols, &step);
  std::vector<float> wf(static_cast<std::size_t>(cols));
  const std::int64_t blk = block_of(type);
  for (std::int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, w.m.row(r), wf.data(), cols);
    for (std::int64_t t = 0; t < n; ++t) {
      const float* xt = x.data() + t * cols;
      const float* xqt = xq.data() + t * cols;
      const float* st = step.data() + t * cols;
      double magnitude = 0.0;
      double quant_bound = 0.0;
      for (std::int64_t b = 0; b < cols; b += blk) {
        double amp = 0.0;
        for (std::int64_t i = b; i < b + blk; ++i)
          amp = std::max(amp, std::fabs(double{wf[i]}));
        for (std::int64_t i = b; i < b + blk; ++i) {
          magnitude += (std::fabs(double{wf[i]}) + amp) * std::fabs(double{xqt[i]});
          quant_bound += std::fabs(double{wf[i]}) * st[i] / 2.0;
        }
      }
      const double float_bound = (static_cast<double>(cols) / 4.0 + 64.0) * FLT_EPSILON * magnitude;
      const double got = y[static_cast<std::size_t>(t * rows + r)];
      const double exact_used = dot_row(type, w.m.row(r), xqt, cols);
      ASSERT_LE(std::fabs(got - exact_used), float_bound + 1e-30)
          << "row " << r << " token " << t << " (vs the activations used)";
      const double exact = dot_row(type, w.m.row(r), xt, cols);
      ASSERT_LE(std::fabs(got - exact), quant_bound * 1.0001 + float_bound + 1e-30)
          << "row " << r << " token " << t << " (vs dot_row)";
    }
  }
}

class KernelsTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(KernelsTest, MatchesReferenceOnAwkwardShapes) {
  const GgmlType type = GetParam();
  const std::int64_t blk = act_format(type) == ActFormat::kFloat ? 1 : block_of(type);
  // One block, a few blocks (odd, so the two-block AVX-512 loop has a tail), many blocks; for
  // float types also sizes that leave a partial vector.
  std::vector<std::int64_t> col_sizes;
  if (blk == 1) {
    col_sizes = {1, 33, 257, 2051};
  } else if (blk == 32) {
    col_sizes = {32, 96, 352, 2080};
  } else {
    col_sizes = {256, 768, 2816};
  }
  ThreadPool pool(2);
  std::uint32_t seed = 1;
  for (IsaLevel level : supported_levels()) {
    for (std::int64_t rows : {1, 6, 48, 133}) {
      for (std::int64_t cols : col_sizes) {
        for (std::int64_t n : {1, 3, 5, 17}) {
          check_matmul(level, type, rows, cols, n, pool, seed++);
          if (HasFatalFailure()) return;
          if (has_panel_layout(type)) {
            check_matmul(level, type, rows, cols, n, pool, seed++, 16, /*panels=*/true);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, KernelsTest,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16,
                                           GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                                           GgmlType::kQ6_K),
                         [](const auto& param_info) {
                           return std::string(ggml_type_info(param_info.param).name);
                         });

TEST(KernelsTest, SingleThreadPoolMatchesToo) {
  ThreadPool pool(1);
  for (IsaLevel level : supported_levels()) {
    check_matmul(level, GgmlType::kQ8_0, 37, 352, 5, pool, 99);
    check_matmul(level, GgmlType::kQ4_K, 37, 512, 5, pool, 98);
  }
}

// Products sharing one input give exactly what separate products give (same quantized
// activations, same kernels), for matrices of different heights.
TEST(KernelsTest, SharedInputMatchesSeparateProducts) {
  ThreadPool pool(2);
  for (IsaLevel level : supported_levels()) {
    for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kF16}) {
      SCOPED_TRACE(::testing::Message() << isa_name(level) << " " << ggml_type_info(type).name);
      std::mt19937 rng(5);
      const std::int64_t cols = 512, n = 5;
      TestMatrix a = random_matrix(type, 300, cols, rng), b = random_matrix(type, 37, cols, rng);
      const std::vector<float> x = random_activations(n * cols, rng);
      MatmulScratch scratch(pool.size(), cols, 16);
      std::vector<float> ya(300 * n), yb(37 * n), sa(300 * n), sb(37 * n);
      const MatmulTarget targets[] = {{&a.m, ya.data()}, {&b.m, yb.data()}};
      ASSERT_TRUE(can_share_input(targets));
      matmul_shared_input(pool, scratch, kernel_table(level), targets, x.data(), n);
      matmul(pool, scratch, kernel_table(level), a.m, x.data(), n, sa.data());
      matmul(pool, scratch, kernel_table(level), b.m, x.data(), n, sb.data());
      EXPECT_EQ(ya, sa);
      EXPECT_EQ(yb, sb);
    }
  }
  std::mt19937 rng(6);
  TestMatrix q8 = random_matrix(GgmlType::kQ8_0, 4, 256, rng);
  TestMatrix q4 = random_matrix(GgmlType::kQ4_K, 4, 256, rng);
  std::vector<float> y(16);
  const MatmulTarget mixed[] = {{&q8.m, y.data()}, {&q4.m, y.data()}};
  EXPECT_FALSE(can_share_input(mixed));
}

TEST(KernelsTest, LongBatchesMatchToo) {
  // More tokens than one kernel pass over the rows takes (32), in one matmul call.
  ThreadPool pool(2);
  for (IsaLevel level : supported_levels()) {
    for (GgmlType type : {GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ6_K}) {
      check_matmul(level, type, 21, 512, 70, pool, 77, /*max_tokens=*/128);
      if (has_panel_layout(type)) {
        check_matmul(level, type, 37, 512, 70, pool, 78, /*max_tokens=*/128, /*panels=*/true);
      }
    }
  }
}

TEST(KernelsTest, ExtremeQ8_0ProductsDoNotSaturate) {
  ThreadPool pool(2);
  for (IsaLevel level : supported_levels()) {
    for (std::int64_t n : {1, 2, 5}) {
      for (bool panels : {false, true}) {
        check_matmul(level, GgmlType::kQ8_0, 37, 256, n, pool, 90, 16, panels, /*extremes=*/true);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// A token's outputs do not depend on the tokens computed with it: batched decode gives each
// sequence what decoding it alone gives, bit for bit (the kernels' tile shapes differ between
// one token and several, but each output's arithmetic and its order do not).
TEST(KernelsTest, BatchedTokensEqualTokensAlone) {
  ThreadPool pool(2);
  for (IsaLevel level : supported_levels()) {
    for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                          GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
      for (bool panels : {false, true}) {
        if (panels && !has_panel_layout(type)) continue;
        SCOPED_TRACE(::testing::Message() << isa_name(level) << " " << ggml_type_info(type).name
                                          << (panels ? " panels" : ""));
        std::mt19937 rng(11);
        const std::int64_t rows = 70, cols = 512, n = 9;
        TestMatrix w = random_matrix(type, rows, cols, rng);
        if (panels) add_panels(w);
        const std::vector<float> x = random_activations(n * cols, rng);
        MatmulScratch scratch(pool.size(), cols, n);
        std::vector<float> batched(static_cast<std::size_t>(n * rows));
        matmul(pool, scratch, kernel_table(level), w.m, x.data(), n, batched.data());
        for (std::int64_t t = 0; t < n; ++t) {
          std::vector<float> alone(static_cast<std::size_t>(rows));
          matmul(pool, scratch, kernel_table(level), w.m, x.data() + t * cols, 1, alone.data());
          EXPECT_TRUE(std::equal(alone.begin(), alone.end(), batched.begin() + t * rows))
              << "token " << t;
        }
      }
    }
  }
}

// The scalar panel kernels compute exactly what the scalar row kernels compute, so any
// misplaced byte of the repacking shows up as a difference; the SIMD panel kernels are checked
// against the reference bounds above.
TEST(KernelsTest, ScalarPanelKernelsEqualRowKernels) {
  ThreadPool pool(2);
  for (GgmlType type : {GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_0}) {
    for (std::int64_t rows : {1, 17, 70}) {
      SCOPED_TRACE(::testing::Message() << ggml_type_info(type).name << " rows=" << rows);
      std::mt19937 rng(static_cast<std::uint32_t>(rows));
      const std::int64_t cols = 96, n = 3;
      TestMatrix rowwise = random_matrix(type, rows, cols, rng);
      TestMatrix panelled = rowwise;
      panelled.m.data = panelled.bytes.data();
      add_panels(panelled);
      const std::vector<float> x = random_activations(n * cols, rng);
      MatmulScratch scratch(pool.size(), cols, n);
      std::vector<float> y_rows(static_cast<std::size_t>(n * rows));
      std::vector<float> y_panels(static_cast<std::size_t>(n * rows));
      matmul(pool, scratch, scalar_kernels(), rowwise.m, x.data(), n, y_rows.data());
      matmul(pool, scratch, scalar_kernels(), panelled.m, x.data(), n, y_panels.data());
      EXPECT_EQ(y_rows, y_panels);
    }
  }
}

TEST(KernelsTest, PanelLayoutPadsAndPlacesRows) {
  std::mt19937 rng(3);
  // 17 rows: one full panel and one with 15 zero rows of padding.
  TestMatrix t = random_matrix(GgmlType::kF16, 17, 5, rng);
  ASSERT_EQ(panel_layout_bytes(GgmlType::kF16, 5, 17), std::size_t{2 * 16 * 5 * 2});
  std::vector<std::byte> out(panel_layout_bytes(GgmlType::kF16, 5, 17), std::byte{0x77});
  repack_to_panels(GgmlType::kF16, t.m.data, 5, 17, out.data());
  const auto* p = reinterpret_cast<const std::uint16_t*>(out.data());
  const auto* w = reinterpret_cast<const std::uint16_t*>(t.m.data);
  EXPECT_EQ(p[3 * 16 + 2], w[2 * 5 + 3]);               // Row 2, column 3.
  EXPECT_EQ(p[16 * 5 + 4 * 16 + 0], w[16 * 5 + 4]);     // Row 16, column 4.
  EXPECT_EQ(p[16 * 5 + 4 * 16 + 1], std::uint16_t{0});  // Padding row 17.
  // Q8_0 stores each quant flipped to unsigned (q + 128), its scales after the quants.
  TestMatrix q = random_matrix(GgmlType::kQ8_0, 3, 64, rng);
  std::vector<std::byte> qp(panel_layout_bytes(GgmlType::kQ8_0, 64, 3));
  repack_to_panels(GgmlType::kQ8_0, q.m.data, 64, 3, qp.data());
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(q.m.row(2));
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(qp.data());
  // Row 2, block 1, element 4 * 5 + 3: group 5, lane 2, byte 3.
  EXPECT_EQ(bytes[512 + 64 * 5 + 4 * 2 + 3],
            static_cast<std::uint8_t>(static_cast<std::uint8_t>(blocks[1].qs[23]) ^ 0x80));
  std::uint16_t scale = 0;
  std::memcpy(&scale, bytes + 2 * 512 + 32 + 2 * 2, 2);
  EXPECT_EQ(scale, blocks[1].d);
}

TEST(KernelsTest, QuantizersAreBitIdenticalAcrossLevels) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  constexpr std::int64_t kCols = 1024;
  std::vector<float> x(kCols);
  for (float& v : x)
    v = u(rng);
  x[5] = 0.0f;
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // An all-zero block.
  const KernelTable& ref = scalar_kernels();
  alignas(64) std::int8_t q_ref[kCols];
  alignas(64) std::int8_t q[kCols];
  float d_ref[kCols / 32], d[kCols / 32];
  std::int32_t s_ref[kCols / 32], s[kCols / 32];
  std::int16_t s16_ref[kCols / 16], s16[kCols / 16];
  for (IsaLevel level : supported_levels()) {
    SCOPED_TRACE(isa_name(level));
    const KernelTable& k = kernel_table(level);
    EXPECT_EQ(k.level, level);
    ref.quantize_q8_32(x.data(), kCols, q_ref, d_ref, s_ref);
    k.quantize_q8_32(x.data(), kCols, q, d, s);
    EXPECT_EQ(0, std::memcmp(q_ref, q, sizeof q));
    EXPECT_EQ(0, std::memcmp(d_ref, d, sizeof d));
    EXPECT_EQ(0, std::memcmp(s_ref, s, sizeof s));
    ref.quantize_q8_256(x.data(), kCols, q_ref, d_ref, s16_ref);
    k.quantize_q8_256(x.data(), kCols, q, d, s16);
    EXPECT_EQ(0, std::memcmp(q_ref, q, sizeof q));
    EXPECT_EQ(0, std::memcmp(d_ref, d, kCols / 256 * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(s16_ref, s16, sizeof s16));
  }
}

// The F16 KV-cache kernels against plain fp16 arithmetic, on lengths around the vector widths.
TEST(KernelsTest, F16AttentionKernelsMatchScalar) {
  for (IsaLevel level : supported_levels()) {
    const KernelTable& k = kernel_table(level);
    SCOPED_TRACE(static_cast<int>(level));
    for (std::int64_t n : {1, 7, 8, 15, 16, 17, 64, 100}) {
      std::vector<float> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
      std::vector<std::uint16_t> h(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) {
        x[i] = std::sin(0.7f * static_cast<float>(i) + 0.3f);
        y[i] = std::cos(1.3f * static_cast<float>(i));
      }
      // to_f16 rounds exactly as the scalar conversion (round to nearest even).
      k.to_f16(y.data(), h.data(), n);
      for (std::int64_t i = 0; i < n; ++i)
        ASSERT_EQ(h[i], fp32_to_fp16(y[i])) << i;
      double ref = 0;
      for (std::int64_t i = 0; i < n; ++i)
        ref += double(x[i]) * fp16_to_fp32(h[i]);
      EXPECT_NEAR(k.dot_f16(x.data(), h.data(), n), ref, 1e-5 * static_cast<double>(n));
      std::vector<float> acc = x;
      k.axpy_f16(0.5f, h.data(), acc.data(), n);
      for (std::int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(acc[i], x[i] + 0.5f * fp16_to_fp32(h[i]), 1e-6) << i;
      }
    }
  }
}

// Softmax and SwiGLU against double-precision math, at every level: random inputs over exp's
// whole useful range, odd lengths, and the edges (masked -inf scores, overflow, NaN).
TEST(KernelsTest, SoftmaxAndSwigluMatchDoubleMath) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-90.0f, 90.0f);
  for (IsaLevel level : supported_levels()) {
    const KernelTable& k = kernel_table(level);
    SCOPED_TRACE(static_cast<int>(level));
    for (std::int64_t n : {1, 5, 16, 17, 31, 100, 333}) {
      std::vector<float> x(static_cast<std::size_t>(n)), g(x.size()), up(x.size()), out(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = wide(rng) / 4;  // Scores: exp(x - max) spans ~1e-20..1.
        g[i] = wide(rng);
        up[i] = wide(rng) / 30;
      }
      if (n > 3) x[2] = -INFINITY;  // A masked position.
      std::vector<float> soft = x;
      k.softmax(soft.data(), n);
      // x - max is taken in float, as every implementation does (exact only near the max).
      float max = x[0];
      for (float v : x)
        max = std::max(max, v);
      double sum = 0;
      for (float v : x)
        sum += std::exp(double(v - max));
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double want = std::exp(double(x[i] - max)) / sum;
        EXPECT_NEAR(soft[i], want, 1e-6 * want + 1e-30) << "softmax n=" << n << " i=" << i;
      }
      k.swiglu(g.data(), up.data(), n, out.data());
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * up[i];
        EXPECT_NEAR(out[i], want, 2e-6 * std::abs(want) + 1e-30) << "swiglu n=" << n << " i=" << i;
      }
      k.swiglu(g.data(), up.data(), n, g.data());  // In place (out aliases gate).
      for (std::size_t i = 0; i < x.size(); ++i)
        EXPECT_EQ(g[i], out[i]) << i;
    }
    // Past float's range: silu(-1e4) is -0 (exp overflows to +inf), silu(1e4) is 1e4; NaN
    // stays NaN.
    const std::vector<float> edge = {-1e4f, 1e4f, -200.0f, 200.0f, 0.0f, NAN, -88.0f, 88.0f};
    const std::vector<float> ones(edge.size(), 1.0f);
    std::vector<float> got(edge.size());
    k.swiglu(edge.data(), ones.data(), static_cast<std::int64_t>(edge.size()), got.data());
    EXPECT_EQ(got[0], 0.0f);
    EXPECT_EQ(got[1], 1e4f);
    EXPECT_EQ(got[2], 0.0f);
    EXPECT_EQ(got[3], 200.0f);
    EXPECT_EQ(got[4], 0.0f);
    EXPECT_TRUE(std::isnan(got[5]));
    EXPECT_NEAR(got[6], -88.0 / (1.0 + std::exp(88.0)), 1e-42);
    EXPECT_NEAR(got[7], 88.0f, 1e-5);
    std::vector<float> nan_scores = {0.0f, NAN, 1.0f};
    k.softmax(nan_scores.data(), 3);
    EXPECT_TRUE(std::isnan(nan_scores[1]));
  }
}

TEST(CpuFeaturesTest, ParsesAndCapsLevels) {
  EXPECT_EQ(parse_isa("scalar"), IsaLevel::kScalar);
  EXPECT_EQ(parse_isa("avx2"), IsaLevel::kAvx2);
  EXPECT_EQ(parse_isa("avx512"), IsaLevel::kAvx512);
  EXPECT_EQ(parse_isa("AVX2"), std::nullopt);
  EXPECT_EQ(parse_isa(""), std::nullopt);
  EXPECT_EQ(cap_isa(IsaLevel::kAvx512, IsaLevel::kAvx2), IsaLevel::kAvx2);
  EXPECT_EQ(cap_isa(IsaLevel::kAvx2, IsaLevel::kAvx512), IsaLevel::kAvx2);  // Never raises.
  EXPECT_EQ(cap_isa(IsaLevel::kAvx2, std::nullopt), IsaLevel::kAvx2);
  CpuFeatures none;
  EXPECT_EQ(max_isa(none), IsaLevel::kScalar);
  CpuFeatures avx2_no_os;
  avx2_no_os.avx2 = avx2_no_os.fma = avx2_no_os.f16c = true;
  EXPECT_EQ(max_isa(avx2_no_os), IsaLevel::kScalar);  // The OS must save YMM state.
  CpuFeatures all = avx2_no_os;
  all.os_avx = true;
  all.avx512f = all.avx512bw = all.avx512vl = all.avx512vnni = all.avx512bf16 = true;
  EXPECT_EQ(max_isa(all), IsaLevel::kAvx2);  // ZMM state not enabled.
  all.os_avx512 = true;
  EXPECT_EQ(max_isa(all), IsaLevel::kAvx512);
  const std::string line = describe_cpu(all, IsaLevel::kAvx512);
  EXPECT_NE(line.find("avx512vnni"), std::string::npos);
  EXPECT_NE(line.find("kernels: avx512"), std::string::npos);
}

// A KV row's element i as the kernels must take it: fp16 exactly widened; Q8_0 as fp16(d) * q.
float kv_element(const std::uint16_t* row, std::int64_t i) {
  return fp16_to_fp32(row[i]);
}
float kv_element(const BlockQ8_0* row, std::int64_t i) {
  return fp16_to_fp32(row[i / kQK8_0].d) * static_cast<float>(row[i / kQK8_0].qs[i % kQK8_0]);
}

// Random cache contents: fp16 values in [-1, 1]; Q8_0 blocks with scales up to 1/64 and quants
// over the whole int8 range (-128 included).
void fill_kv(std::vector<std::uint16_t>& storage, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::uint16_t& h : storage)
    h = fp32_to_fp16(u(rng));
}
void fill_kv(std::vector<BlockQ8_0>& storage, std::mt19937& rng) {
  std::uniform_real_distribution<float> scale(0.0f, 1.0f / 64);
  std::uniform_int_distribution<int> quant(-128, 127);
  for (BlockQ8_0& b : storage) {
    b.d = fp32_to_fp16(scale(rng));
    for (std::int8_t& q : b.qs)
      q = static_cast<std::int8_t>(quant(rng));
  }
}

// One case of the attention kernels of one row type against a double-precision reference:
// `units` is a row's length in Row units. Blocks out of order in memory, as a block table would
// have them, and a slot stride wider than two rows (in the cache, K and V alternate). Each head
// of the group must get the same bits as that head computed alone.
template <typename Row, typename Scores, typename WeightedSum>
void check_attention(Scores scores_kernel, WeightedSum weighted_sum_kernel, std::int64_t head_dim,
                     std::int64_t units, std::int64_t n, std::int64_t block_tokens,
                     std::int32_t heads, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::int64_t stride = 2 * units + 3;
  const std::int64_t blocks = (n + block_tokens - 1) / block_tokens;
  std::vector<Row> storage(static_cast<std::size_t>((blocks + 1) * block_tokens * stride));
  fill_kv(storage, rng);
  std::vector<const Row*> table(static_cast<std::size_t>(blocks));
  for (std::int64_t b = 0; b < blocks; ++b)
    table[static_cast<std::size_t>(b)] = storage.data() + (blocks - b) * block_tokens * stride;
  const KvRowsOf<Row> rows{table.data(), block_tokens, stride, n};
  const std::int64_t score_stride = n + 5;
  std::vector<float> q(static_cast<std::size_t>(heads * head_dim)),
      w(static_cast<std::size_t>(heads * score_stride));
  for (float& x : q)
    x = u(rng);
  for (float& x : w)
    x = u(rng);
  std::vector<float> scores(static_cast<std::size_t>(heads * score_stride), -7.0f);
  scores_kernel(q.data(), heads, head_dim, 0.125f, rows, scores.data(), score_stride);
  std::vector<float> out(static_cast<std::size_t>(heads * head_dim) + 16, -7.0f);
  weighted_sum_kernel(w.data(), score_stride, heads, rows, head_dim, out.data());
  for (std::int32_t h = 0; h < heads; ++h) {
    const float* qh = q.data() + h * head_dim;
    const float* sh = scores.data() + h * score_stride;
    const float* wh = w.data() + h * score_stride;
    const float* oh = out.data() + h * head_dim;
    for (std::int64_t p = 0; p < n; ++p) {
      double dot = 0.0, mag = 0.0;
      for (std::int64_t i = 0; i < head_dim; ++i) {
        const double term = static_cast<double>(qh[i]) * kv_element(rows.row(p), i);
        dot += term;
        mag += std::fabs(term);
      }
      EXPECT_NEAR(sh[p], 0.125 * dot, 1e-6 * mag + 1e-7) << "head " << h << " score " << p;
    }
    for (std::int64_t p = n; p < score_stride; ++p)
      EXPECT_EQ(sh[p], -7.0f) << "head " << h << " wrote past its scores";
    for (std::int64_t i = 0; i < head_dim; ++i) {
      double sum = 0.0, mag = 0.0;
      for (std::int64_t p = 0; p < n; ++p) {
        const double term = static_cast<double>(wh[p]) * kv_element(rows.row(p), i);
        sum += term;
        mag += std::fabs(term);
      }
      EXPECT_NEAR(oh[i], sum, 1e-6 * mag + 1e-7) << "head " << h << " column " << i;
    }
    // The head alone: the same bits.
    std::vector<float> alone_scores(static_cast<std::size_t>(n));
    std::vector<float> alone_out(static_cast<std::size_t>(head_dim));
    scores_kernel(qh, 1, head_dim, 0.125f, rows, alone_scores.data(), n);
    weighted_sum_kernel(wh, n, 1, rows, head_dim, alone_out.data());
    EXPECT_TRUE(std::equal(alone_scores.begin(), alone_scores.end(), sh))
        << "head " << h << "'s scores depend on the group";
    EXPECT_TRUE(std::equal(alone_out.begin(), alone_out.end(), oh))
        << "head " << h << "'s output depends on the group";
  }
  EXPECT_EQ(out[static_cast<std::size_t>(heads * head_dim)], -7.0f) << "wrote past the output";
}

// Calls fn(kernels, head_dim, n, block_tokens, heads) for every level and case: position
// counts around the 16-position groups, blocks of 16 and of 7 slots, and groups of 1, 3, 8 and
// 20 query heads per KV head (past the 16 heads one grouped pass takes). Stops at a failure.
template <typename Fn>
void for_each_attention_case(std::initializer_list<std::int64_t> head_dims, Fn&& fn) {
  for (IsaLevel level : supported_levels()) {
    const KernelTable& kernels = kernel_table(level);
    for (std::int64_t head_dim : head_dims) {
      for (std::int64_t n : {1, 5, 16, 17, 40}) {
        for (std::int64_t block_tokens : {16, 7}) {
          for (std::int32_t heads : {1, 3, 8, 20}) {
            SCOPED_TRACE(::testing::Message()
                         << isa_name(level) << " head_dim=" << head_dim << " n=" << n
                         << " block=" << block_tokens << " heads=" << heads);
            fn(kernels, head_dim, n, block_tokens, heads);
            if (::testing::Test::HasFailure()) return;
          }
        }
      }
    }
  }
}

// The F16 attention kernels, with head sizes below, at and between vector widths (and past the
// widest grouped kernel, 128).
TEST(KernelsTest, AttentionKernelsMatchTheReference) {
  std::mt19937 rng(11);
  for_each_attention_case({8, 20, 64, 100, 128, 144},
                          [&](const KernelTable& kernels, std::int64_t head_dim, std::int64_t n,
                              std::int64_t block_tokens, std::int32_t heads) {
                            check_attention<std::uint16_t>(kernels.scores_f16,
                                                           kernels.weighted_sum_f16, head_dim,
                                                           head_dim, n, block_tokens, heads, rng);
                          });
}

// The same over Q8_0 rows (head_dim a multiple of 32), up to and past the grouped kernels'
// widest head.
TEST(KernelsTest, Q8_0AttentionKernelsMatchTheReference) {
  std::mt19937 rng(12);
  for_each_attention_case(
      {32, 64, 96, 128, 160}, [&](const KernelTable& kernels, std::int64_t head_dim, std::int64_t n,
                                  std::int64_t block_tokens, std::int32_t heads) {
        check_attention<BlockQ8_0>(kernels.scores_q8_0, kernels.weighted_sum_q8_0, head_dim,
                                   head_dim / kQK8_0, n, block_tokens, heads, rng);
      });
}

// selected_isa() reads SPILLWAY_ISA once per process, so each case runs in a fresh child.
void expect_selected(const char* env, IsaLevel expected) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("SPILLWAY_ISA", env, 1);
        std::exit(static_cast<int>(selected_isa()));
      },
      ::testing::ExitedWithCode(static_cast<int>(expected)), "")
      << "SPILLWAY_ISA=" << env;
}

TEST(CpuFeaturesTest, EnvironmentForcesALowerLevel) {
  const IsaLevel top = max_isa(detect_cpu_features());
  expect_selected("scalar", IsaLevel::kScalar);
  expect_selected("avx2", cap_isa(top, IsaLevel::kAvx2));
  expect_selected("avx512", top);
  expect_selected("bogus", top);
}

}  // namespace
}  // namespace spillway::engine
