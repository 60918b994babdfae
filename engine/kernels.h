// The matmul kernel interface: one table of function pointers per instruction-set level, each
// level's kernels in their own file compiled with that level's flags (kernels_scalar.cc,
// kernels_avx2.cc, kernels_avx512.cc). Only the table of a level that max_isa() allows may be
// called; the rest of the binary is baseline x86-64.
//
// Numerics (every level computes the same quantities, in different summation orders):
//   - F32, F16, BF16 weights: float products of the exactly widened weights with the float
//     activations, accumulated in float.
//   - Q8_0, Q4_0 weights: activations are first quantized per 32 elements (ActFormat::kQ8_32)
//     to int8 with a float scale d = amax / 127 (q = round-to-nearest-even(x * 127 / amax)), so
//     each element moves by at most d / 2. Per block the int8 x int products sum exactly in
//     int32; the block's d_w * d_x scales it into a float accumulator.
//   - Q4_K, Q6_K weights: activations are quantized per 256 elements (kQ8_256, ggml's Q8_K
//     idea: one scale per 256, int16 sums per 16), so sub-block scales combine in integers and
//     one float multiply per 256 remains.
//   The quantizers are bit-identical across levels.
// Error against the exact dot (see tests/engine/kernels_test.cc): for the quantized types at
// most sum_i |w_i| * d_x(block of i) / 2, plus float rounding of about cols * 2^-23 *
// sum_i |w_i x_i|; for the float types only the latter.
//
// Thread-safety: kernels are pure functions of their arguments; distinct row ranges of one call
// may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/cpu_features.h"
#include "engine/ggml_type.h"
#include "engine/kv_rows.h"

namespace spillway::engine {

// How a weight type wants its activations.
enum class ActFormat {
  kFloat,   // The float activations as given.
  kQ8_32,   // int8 per element; float scale and int32 sum of the int8s per 32 elements.
  kQ8_256,  // int8 per element; float scale per 256; int16 sum of the int8s per 16 elements.
};

// Quantized activations of n tokens; token t's arrays start at t * (its stride) elements.
// REQUIRES (for the kernels): q rows 64-byte aligned (q_stride a multiple of 64).
struct QuantizedActs {
  const std::int8_t* q = nullptr;
  const float* d = nullptr;
  const void* sums = nullptr;  // int32 per 32 (kQ8_32) or int16 per 16 (kQ8_256).
  std::int64_t q_stride = 0;
  std::int64_t d_stride = 0;
  std::int64_t sums_stride = 0;
};

struct MatmulArgs {
  const std::byte* w = nullptr;  // Row r at w + r * row_bytes.
  std::size_t row_bytes = 0;
  std::int64_t cols = 0;     // A multiple of the weight type's block size.
  std::int64_t n = 0;        // Tokens.
  const float* x = nullptr;  // [n][cols], for ActFormat::kFloat.
  QuantizedActs xq;          // For the other formats.
  float* y = nullptr;        // y[t * y_stride + r].
  std::int64_t y_stride = 0;
};

// Computes y for rows [row_begin, row_end) and all n tokens.
using RowsKernel = void (*)(const MatmulArgs& args, std::int64_t row_begin, std::int64_t row_end);

// Quantizes one token's `cols` floats. REQUIRES: cols a multiple of 32 (kQ8_32) or 256
// (kQ8_256); finite inputs; q 64-byte aligned.
using QuantizeQ8_32 = void (*)(const float* x, std::int64_t cols, std::int8_t* q, float* d,
                               std::int32_t* sums);
using QuantizeQ8_256 = void (*)(const float* x, std::int64_t cols, std::int8_t* q, float* d,
                                std::int16_t* sums);

// Attention over an F16 KV cache: sum x[i] * y[i] with y in fp16 (float accumulation);
// y[i] += a * x[i] with x in fp16; fp32 -> fp16 rows (round to nearest even) for cache writes.
using DotF16 = float (*)(const float* x, const std::uint16_t* y, std::int64_t n);
using AxpyF16 = void (*)(float a, const std::uint16_t* x, float* y, std::int64_t n);
using ToF16 = void (*)(const float* x, std::uint16_t* y, std::int64_t n);
// Attention over one KV head's F16 rows (engine/kv_rows.h) for the `heads` >= 1 query heads
// that share it (grouped-query attention). Head h's query is q + h * head_dim, its output
// out + h * head_dim, its scores and weights scores/w + h * stride (stride >= k.n):
// scores_h[p] = scale * (q_h . K[p]) for p < k.n; out_h = sum_p w_h[p] * V[p] (overwritten).
// head_dim is any positive count; float accumulation. Each head's results do not depend on
// `heads` (a head computed alone gives the same bits).
using ScoresF16 = void (*)(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                           const KvRows& k, float* scores, std::int64_t stride);
using WeightedSumF16 = void (*)(const float* w, std::int64_t stride, std::int32_t heads,
                                const KvRows& v, std::int64_t head_dim, float* out);
// The same over a Q8_0 KV cache (rows of head_dim / 32 BlockQ8_0): the products are taken with
// each element's exact float value, fp16(d) * q, so the results are those of float attention
// over the dequantized rows, in float accumulation. REQUIRES: head_dim a positive multiple of
// 32. Each head's results do not depend on `heads`.
using ScoresQ8_0 = void (*)(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                            const KvRowsQ8_0& k, float* scores, std::int64_t stride);
using WeightedSumQ8_0 = void (*)(const float* w, std::int64_t stride, std::int32_t heads,
                                 const KvRowsQ8_0& v, std::int64_t head_dim, float* out);
// engine/ops.h's softmax (in place, n >= 1) and swiglu (out may alias gate), with exp evaluated
// to within a few ulp of std::exp (vectorized where the level has it): results agree with the
// reference within ~1e-6 relative, NaN in gives NaN out, +-inf and overflow behave as exp does.
using Softmax = void (*)(float* x, std::int64_t n);
using Swiglu = void (*)(const float* gate, const float* up, std::int64_t n, float* out);

struct KernelTable {
  IsaLevel level;
  QuantizeQ8_32 quantize_q8_32;
  QuantizeQ8_256 quantize_q8_256;
  RowsKernel f32, f16, bf16, q8_0, q4_0, q4_k, q6_k;
  // Kernels over the panel layout of engine/quant_repack.h (nullptr where a level has none):
  // MatmulArgs::w points at the panels, row_bytes is the type's row size (as for the row
  // layout); row_begin is a multiple of kPanelRows; only rows [row_begin, row_end) of y are
  // written. Same numerics as the row-layout kernels.
  RowsKernel f16_x16, q8_0_x16, q4_0_x16;
  DotF16 dot_f16;
  AxpyF16 axpy_f16;
  ToF16 to_f16;
  ScoresF16 scores_f16;
  WeightedSumF16 weighted_sum_f16;
  ScoresQ8_0 scores_q8_0;
  WeightedSumQ8_0 weighted_sum_q8_0;
  Softmax softmax;
  Swiglu swiglu;
};

// The table of `level`. REQUIRES: level <= max_isa(detect_cpu_features()).
[[nodiscard]] const KernelTable& kernel_table(IsaLevel level);

// True for the weight types the kernels handle (those quant.h's can_dequantize accepts).
[[nodiscard]] bool has_kernel(GgmlType type);
// REQUIRES: has_kernel(type).
[[nodiscard]] ActFormat act_format(GgmlType type);
[[nodiscard]] RowsKernel rows_kernel(const KernelTable& table, GgmlType type);
// The panel-layout kernel of `type`, or nullptr when the table has none.
[[nodiscard]] RowsKernel panel_kernel(const KernelTable& table, GgmlType type);

// The per-level tables, defined in the per-level files.
[[nodiscard]] const KernelTable& scalar_kernels();
[[nodiscard]] const KernelTable& avx2_kernels();
[[nodiscard]] const KernelTable& avx512_kernels();

// The AVX2 Q8_0 attention kernels, which the AVX-512 table uses too (kernels_avx2.cc).
void scores_q8_0_avx2(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                      const KvRowsQ8_0& k, float* scores, std::int64_t stride);
void weighted_sum_q8_0_avx2(const float* w, std::int64_t stride, std::int32_t heads,
                            const KvRowsQ8_0& v, std::int64_t head_dim, float* out);

}  // namespace spillway::engine
