// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; see engine/CMakeLists.txt).
// 8-float vectors; int8 dot products with maddubs (u8 x s8 -> s16 pairs) and madd (-> s32).
#include <immintrin.h>

#include "engine/half.h"
#include "engine/kernels.h"
#include "engine/kernels_x86_shared.h"
#include "engine/ops.h"
#include "engine/quant_blocks.h"

namespace spillway::engine {
namespace {

// Float weights: Widen::load(row, i) returns elements [i, i + 8) of the row as floats and
// Widen::at(row, i) element i.
template <typename Widen>
struct FloatKernel {
  static constexpr int kRows = 2;
  template <int R, int T>
  static void tile(const MatmulArgs& a, std::int64_t r, std::int64_t t) {
    const std::byte* w[R];
    const float* x[T];
    for (int i = 0; i < R; ++i)
      w[i] = a.w + static_cast<std::size_t>(r + i) * a.row_bytes;
    for (int j = 0; j < T; ++j)
      x[j] = a.x + (t + j) * a.cols;
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        acc[i][j] = _mm256_setzero_ps();
    }
    std::int64_t k = 0;
    for (; k + 8 <= a.cols; k += 8) {
      __m256 wv[R];
      for (int i = 0; i < R; ++i)
        wv[i] = Widen::load(w[i], k);
      for (int j = 0; j < T; ++j) {
        const __m256 xv = _mm256_loadu_ps(x[j] + k);
        for (int i = 0; i < R; ++i)
          acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) {
        float sum = hsum(acc[i][j]);
        for (std::int64_t e = k; e < a.cols; ++e)
          sum += Widen::at(w[i], e) * x[j][e];
        a.y[(t + j) * a.y_stride + r + i] = sum;
      }
    }
  }
};

struct WidenF32 {
  static __m256 load(const std::byte* row, std::int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static float at(const std::byte* row, std::int64_t i) {
    return reinterpret_cast<const float*>(row)[i];
  }
};

struct WidenF16 {
  static __m256 load(const std::byte* row, std::int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(
        reinterpret_cast<const __m128i*>(reinterpret_cast<const std::uint16_t*>(row) + i)));
  }
  static float at(const std::byte* row, std::int64_t i) {
    return fp16(reinterpret_cast<const std::uint16_t*>(row)[i]);
  }
};

struct WidenBF16 {
  static __m256 load(const std::byte* row, std::int64_t i) {
    const __m128i h = _mm_loadu_si128(
        reinterpret_cast<const __m128i*>(reinterpret_cast<const std::uint16_t*>(row) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float at(const std::byte* row, std::int64_t i) {
    const std::uint32_t bits =
        static_cast<std::uint32_t>(reinterpret_cast<const std::uint16_t*>(row)[i]) << 16;
    float f;
    __builtin_memcpy(&f, &bits, sizeof f);
    return f;
  }
};

// Q8_0: signed x signed via the sign trick: |w| (unsigned) times x with w's sign applied.
struct Q80Kernel {
  static constexpr int kRows = 2;
  template <int R, int T>
  static void tile(const MatmulArgs& a, std::int64_t r, std::int64_t t) {
    const QuantTile<BlockQ8_0, R, T> p(a, r, t, 4);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        acc[i][j] = _mm256_setzero_ps();
    }
    for (std::int64_t b = 0; b < a.cols / kQK8_0; ++b) {
      __m256i wv[R];
      __m256i wabs[R];
      float dw[R];
      for (int i = 0; i < R; ++i) {
        wv[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.w[i][b].qs));
        wabs[i] = _mm256_sign_epi8(wv[i], wv[i]);
        dw[i] = fp16(p.w[i][b].d);
      }
      for (int j = 0; j < T; ++j) {
        const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[j] + 32 * b));
        const float dx = p.d[j][b];
        for (int i = 0; i < R; ++i) {
          const __m256i prod =
              _mm256_madd_epi16(_mm256_maddubs_epi16(wabs[i], _mm256_sign_epi8(xv, wv[i])), ones);
          acc[i][j] =
              _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), _mm256_set1_ps(dw[i] * dx), acc[i][j]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        a.y[(t + j) * a.y_stride + r + i] = hsum(acc[i][j]);
    }
  }
};

// Q4_0: the unsigned nibbles times x, minus 8 * sum(x) per block (in float, per block scale).
struct Q40Kernel {
  static constexpr int kRows = 2;
  template <int R, int T>
  static void tile(const MatmulArgs& a, std::int64_t r, std::int64_t t) {
    const QuantTile<BlockQ4_0, R, T> p(a, r, t, 4);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m256 acc[R][T];
    float offset[R][T] = {};
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        acc[i][j] = _mm256_setzero_ps();
    }
    for (std::int64_t b = 0; b < a.cols / kQK4_0; ++b) {
      __m256i wv[R];
      float dw[R];
      for (int i = 0; i < R; ++i) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.w[i][b].qs));
        wv[i] = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), low4), _mm_and_si128(v, low4));
        dw[i] = fp16(p.w[i][b].d);
      }
      for (int j = 0; j < T; ++j) {
        const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[j] + 32 * b));
        const float dx = p.d[j][b];
        const auto sx = static_cast<float>(static_cast<const std::int32_t*>(p.sums[j])[b]);
        for (int i = 0; i < R; ++i) {
          const __m256i prod = _mm256_madd_epi16(_mm256_maddubs_epi16(wv[i], xv), ones);
          const float scale = dw[i] * dx;
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), _mm256_set1_ps(scale), acc[i][j]);
          offset[i][j] += scale * sx;
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) {
        a.y[(t + j) * a.y_stride + r + i] = hsum(acc[i][j]) - 8.0f * offset[i][j];
      }
    }
  }
};

float dot_f16(const float* x, const std::uint16_t* y, std::int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 yv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), yv, acc);
  }
  float sum = hsum(acc);
  for (; i < n; ++i)
    sum += x[i] * fp16_to_fp32(y[i]);
  return sum;
}

void axpy_f16(float a, const std::uint16_t* x, float* y, std::int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i)
    y[i] += a * fp16_to_fp32(x[i]);
}

void to_f16(const float* x, std::uint16_t* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i)
    y[i] = fp32_to_fp16(x[i]);
}

constexpr KernelTable kTable{IsaLevel::kAvx2,
                             quantize_q8_32_x86,
                             quantize_q8_256_x86,
                             drive<FloatKernel<WidenF32>>,
                             drive<FloatKernel<WidenF16>>,
                             drive<FloatKernel<WidenBF16>>,
                             drive<Q80Kernel>,
                             drive<Q40Kernel>,
                             drive<Q4KKernel>,
                             drive<Q6KKernel>,
                             nullptr,  // No panel kernels at this level: the row layout.
                             nullptr,
                             nullptr,
                             dot_f16,
                             axpy_f16,
                             to_f16,
                             scores_f16_by_rows<dot_f16>,
                             weighted_sum_f16_by_rows<axpy_f16>,
                             softmax,  // engine/ops.h's scalar reference.
                             swiglu};

}  // namespace

const KernelTable& avx2_kernels() {
  return kTable;
}

}  // namespace spillway::engine
