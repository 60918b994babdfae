// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; see engine/CMakeLists.txt).
// 8-float vectors; int8 dot products with maddubs (u8 x s8 -> s16 pairs) and madd (-> s32).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#include "engine/half.h"
#include "engine/kernels.h"
#include "engine/kernels_panel_driver.h"
#include "engine/kernels_x86_shared.h"
#include "engine/kv_rows.h"
#include "engine/quant_blocks.h"
#include "engine/quant_repack.h"

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

// Panel kernels (engine/quant_repack.h, driven by engine/kernels_panel_driver.h): lane i of a
// 16-row panel's 512-bit group is row i, so at this level each group is two 8-row halves, one
// vector each, and a tile keeps accumulators per half, panel and token: no horizontal sums, one
// scale conversion per 8 rows. The 16 ymm registers bound the tiles to one panel for batches
// (2-4 tokens) and 2-4 panels for decode (that many streams from memory at once); each kernel's
// sizes are the fastest in matmul_bench (docs/BENCHMARKS.md, "AVX2 panel kernels").

// Stores lanes of v for rows [r, min(r + 8, r_end)) as token t's outputs.
inline void store_half(const MatmulArgs& a, std::int64_t r, std::int64_t r_end, std::int64_t t,
                       __m256 v) {
  float* out = a.y + t * a.y_stride + r;
  const std::int64_t valid = r_end - r;
  if (valid >= 8) {
    _mm256_storeu_ps(out, v);
  } else if (valid > 0) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    std::copy_n(lanes, valid, out);
  }
}

// Four int8 activations broadcast to all lanes.
inline __m256i broadcast4(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

struct F16Panel {
  static constexpr int kTokens = 4;
  static constexpr int kMaxPanels = 1;  // Four tokens already give eight FMA chains.
  static constexpr int kDecodePanels = 2;
  static constexpr std::int64_t kPrefetchUnits = 0;  // The hardware prefetchers keep up.
  static constexpr bool kPrefetchNext = false;
  static std::int64_t activation_bytes(const MatmulArgs& a) {
    return a.cols * static_cast<std::int64_t>(sizeof(float));
  }
  template <int P, int T>
  static void tile(const MatmulArgs& a, const std::byte* panel, std::int64_t r, std::int64_t r_end,
                   std::int64_t t, const TilePrefetch& /*prefetch*/) {
    // One FMA chain per half, panel and token whatever the tile's shape, so that a token's
    // outputs do not depend on the tokens and panels tiled with it (batched decode gives each
    // sequence what decoding it alone gives). Four tokens give eight independent chains, enough
    // for the FMA latency; decode's two panels give four, enough for a product bound by memory.
    const std::size_t panel_bytes = a.row_bytes * static_cast<std::size_t>(kPanelRows);
    const __m128i* w[P];  // Column c of panel p: halves w[p][2c] and w[p][2c + 1].
    for (int p = 0; p < P; ++p)
      w[p] = reinterpret_cast<const __m128i*>(panel + static_cast<std::size_t>(p) * panel_bytes);
    const float* x[T];
    __m256 acc[P][2][T];
    for (int j = 0; j < T; ++j) {
      x[j] = a.x + (t + j) * a.cols;
      for (int p = 0; p < P; ++p) {
        acc[p][0][j] = _mm256_setzero_ps();
        acc[p][1][j] = _mm256_setzero_ps();
      }
    }
    for (std::int64_t k = 0; k < a.cols; ++k) {
      for (int p = 0; p < P; ++p) {
        const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(w[p] + 2 * k));
        const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(w[p] + 2 * k + 1));
        for (int j = 0; j < T; ++j) {
          const __m256 xk = _mm256_set1_ps(x[j][k]);
          acc[p][0][j] = _mm256_fmadd_ps(w0, xk, acc[p][0][j]);
          acc[p][1][j] = _mm256_fmadd_ps(w1, xk, acc[p][1][j]);
        }
      }
    }
    for (int p = 0; p < P; ++p) {
      for (int h = 0; h < 2; ++h) {
        for (int j = 0; j < T; ++j)
          store_half(a, r + p * kPanelRows + 8 * h, r_end, t + j, acc[p][h][j]);
      }
    }
  }
};

// What the Q8_0 and Q4_0 panel tiles share: pointers to the P panels' quants and scales and
// the T tokens' activations, and the float accumulators per panel, half and token.
template <int P, int T>
struct QuantPanelTile {
  const std::byte* quants[P];
  const std::byte* scales[P];
  const std::int8_t* q[T];
  const float* d[T];
  const std::int32_t* sums[T];
  __m256 acc[P][2][T];

  QuantPanelTile(const MatmulArgs& a, const std::byte* panel, std::int64_t t,
                 std::int64_t block_bytes) {
    const std::size_t panel_bytes = a.row_bytes * static_cast<std::size_t>(kPanelRows);
    for (int p = 0; p < P; ++p) {
      quants[p] = panel + static_cast<std::size_t>(p) * panel_bytes;
      scales[p] = quants[p] + a.cols / 32 * block_bytes;
    }
    for (int j = 0; j < T; ++j) {
      q[j] = a.xq.q + (t + j) * a.xq.q_stride;
      d[j] = a.xq.d + (t + j) * a.xq.d_stride;
      sums[j] = static_cast<const std::int32_t*>(a.xq.sums) + (t + j) * a.xq.sums_stride;
      for (int p = 0; p < P; ++p) {
        acc[p][0][j] = _mm256_setzero_ps();
        acc[p][1][j] = _mm256_setzero_ps();
      }
    }
  }

  // acc += dot * (d_w of the 8 rows) * d_x, for block b's int32 dots.
  void scale_block(std::int64_t b, const __m256i (&dot)[P][2][T]) {
    for (int p = 0; p < P; ++p) {
      for (int h = 0; h < 2; ++h) {
        const __m256 dw = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales[p] + 32 * b + 16 * h)));
        for (int j = 0; j < T; ++j) {
          acc[p][h][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[p][h][j]),
                                         _mm256_mul_ps(dw, _mm256_set1_ps(d[j][b])), acc[p][h][j]);
        }
      }
    }
  }

  void store(const MatmulArgs& a, std::int64_t r, std::int64_t r_end, std::int64_t t) const {
    for (int p = 0; p < P; ++p) {
      for (int h = 0; h < 2; ++h) {
        for (int j = 0; j < T; ++j)
          store_half(a, r + p * kPanelRows + 8 * h, r_end, t + j, acc[p][h][j]);
      }
    }
  }
};

// Q8_0 and Q4_0 panels: per block, Dots::block computes the int32 dots of every panel, half and
// token (Dots also gives kTokens, kDecodePanels and kBlockBytes, a block's bytes in a panel),
// then the tile scales them into its float accumulators.
template <typename Dots>
struct QuantPanel {
  static constexpr int kTokens = Dots::kTokens;
  static constexpr int kMaxPanels = 1;
  static constexpr int kDecodePanels = Dots::kDecodePanels;
  static constexpr std::int64_t kBlockBytes = Dots::kBlockBytes;
  // Prefetch ~4 KiB ahead in the thread's contiguous run of panels (past a panel's end are its
  // scales and then the next panel; a prefetch never faults).
  static constexpr std::int64_t kPrefetchUnits = std::int64_t{4096} / kBlockBytes;
  static constexpr bool kPrefetchNext = true;
  static std::int64_t activation_bytes(const MatmulArgs& a) { return a.xq.q_stride; }
  template <int P, int T>
  static void tile(const MatmulArgs& a, const std::byte* panel, std::int64_t r, std::int64_t r_end,
                   std::int64_t t, const TilePrefetch& prefetch) {
    const std::int64_t nb = a.cols / 32;
    QuantPanelTile<P, T> tile(a, panel, t, kBlockBytes);
    BlockPrefetcher prefetcher(prefetch, nb);
    for (std::int64_t b = 0; b < nb; ++b) {
      prefetcher.at_block(tile.quants, kBlockBytes, b);
      __m256i dot[P][2][T];
      Dots::template block<P, T>(tile, b, dot);
      tile.scale_block(b, dot);
    }
    tile.store(a, r, r_end, t);
  }
};

// Group g (of four columns), half h (of eight rows) of a panel's block.
inline __m256i load_group(const std::byte* block, int g, int h) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 64 * g + 32 * h));
}

// Q8_0 (stored as w + 128): flipped back to signed, then the sign trick: |w| as the unsigned
// operand of maddubs and x with w's sign as the signed one. |w| <= 128 and |x| <= 127, so a
// pair's sum (<= 32512) never saturates; madd widens each row's four products to int32.
struct Q80Dots {
  static constexpr int kTokens = 3;
  static constexpr int kDecodePanels = 2;
  static constexpr std::int64_t kBlockBytes = 32 * kPanelRows;
  template <int P, int T>
  static void block(const QuantPanelTile<P, T>& tile, std::int64_t b, __m256i (&dot)[P][2][T]) {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i ones = _mm256_set1_epi16(1);
    for (int p = 0; p < P; ++p) {
      for (int h = 0; h < 2; ++h) {
        for (int j = 0; j < T; ++j)
          dot[p][h][j] = _mm256_setzero_si256();
      }
    }
    for (int g = 0; g < 8; ++g) {
      __m256i x[T];
      for (int j = 0; j < T; ++j)
        x[j] = broadcast4(tile.q[j] + 32 * b + 4 * g);
      for (int p = 0; p < P; ++p) {
        for (int h = 0; h < 2; ++h) {
          const __m256i w =
              _mm256_xor_si256(load_group(tile.quants[p] + b * kBlockBytes, g, h), flip);
          const __m256i w_abs = _mm256_abs_epi8(w);  // -128 becomes 128 (as unsigned).
          for (int j = 0; j < T; ++j) {
            const __m256i pairs = _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(x[j], w));
            dot[p][h][j] = _mm256_add_epi32(dot[p][h][j], _mm256_madd_epi16(pairs, ones));
          }
        }
      }
    }
  }
};

// Q4_0 (nibbles 0..15): maddubs of the nibbles with x; a block's eight products per lane sum in
// int16 (<= 8 x 2 x 15 x 127 = 30480), then madd widens them and 8 * sum(x) comes off in int32.
struct Q40Dots {
  static constexpr int kTokens = 2;
  static constexpr int kDecodePanels = 4;
  static constexpr std::int64_t kBlockBytes = 16 * kPanelRows;
  template <int P, int T>
  static void block(const QuantPanelTile<P, T>& tile, std::int64_t b, __m256i (&dot)[P][2][T]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i sum16[P][2][T];
    for (int p = 0; p < P; ++p) {
      for (int h = 0; h < 2; ++h) {
        for (int j = 0; j < T; ++j)
          sum16[p][h][j] = _mm256_setzero_si256();
      }
    }
    // Stored group g: columns 4g.. in the low nibbles, 16 + 4g.. in the high ones.
    for (int g = 0; g < 4; ++g) {
      __m256i x_lo[T], x_hi[T];
      for (int j = 0; j < T; ++j) {
        x_lo[j] = broadcast4(tile.q[j] + 32 * b + 4 * g);
        x_hi[j] = broadcast4(tile.q[j] + 32 * b + 16 + 4 * g);
      }
      for (int p = 0; p < P; ++p) {
        for (int h = 0; h < 2; ++h) {
          const __m256i v = load_group(tile.quants[p] + b * kBlockBytes, g, h);
          const __m256i lo = _mm256_and_si256(v, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
          for (int j = 0; j < T; ++j) {
            sum16[p][h][j] = _mm256_add_epi16(sum16[p][h][j],
                                              _mm256_add_epi16(_mm256_maddubs_epi16(lo, x_lo[j]),
                                                               _mm256_maddubs_epi16(hi, x_hi[j])));
          }
        }
      }
    }
    for (int j = 0; j < T; ++j) {
      const __m256i offset = _mm256_set1_epi32(8 * tile.sums[j][b]);
      for (int p = 0; p < P; ++p) {
        for (int h = 0; h < 2; ++h)
          dot[p][h][j] = _mm256_sub_epi32(_mm256_madd_epi16(sum16[p][h][j], ones), offset);
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

// Attention over K and V rows (fp16, or Q8_0 blocks) for the query heads sharing one KV head.
// Each block of 8 rows is converted to float once, into a buffer padded with zeros to 8 * C
// lanes, and used by every head of the group. A head's arithmetic is the same whatever the
// group (a head alone runs this code, or scores_one / weighted_sum_one, which do the same
// operations in the same order), so its results are the same bits alone or grouped. Heads wider
// than 8 * kMaxAttnChunks lanes go one row at a time through the row type's dot and axpy.
inline constexpr int kMaxAttnChunks = 16;           // head_dim <= 128.
inline constexpr int kAttnSpan = 8;                 // Vectors of a row in registers at once.
inline constexpr std::int32_t kMaxGroupHeads = 16;  // Heads per pass over the rows.

template <typename Fn, int... S>
void for_each_span_of(Fn& fn, std::integer_sequence<int, S...>) {
  (fn(std::integral_constant<int, S * kAttnSpan>{}), ...);
}

// Calls fn(std::integral_constant<int, C0>{}) for C0 = 0, kAttnSpan, ... below C, in order: the
// spans of a row's C vectors that are in registers at once.
template <int C, typename Fn>
void for_each_span(Fn&& fn) {
  for_each_span_of(fn, std::make_integer_sequence<int, (C + kAttnSpan - 1) / kAttnSpan>{});
}

// A KV row's vector c (lanes 8c .. 8c + 7) as floats, converted where it is: fp16 rows, and
// Q8_0 rows as their exact values fp16(d) * q; and an fp16 row's element j. REQUIRES: the row
// has the lanes.
inline __m256 row_vector(const std::uint16_t* row, std::int64_t c) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 8 * c)));
}
inline float row_element(const std::uint16_t* row, std::int64_t j) {
  return fp16(row[j]);
}
inline __m256 row_vector(const BlockQ8_0* row, std::int64_t c) {
  const BlockQ8_0& b = row[c / 4];
  const __m256i q =
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qs + 8 * (c % 4))));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(fp16(b.d)));
}

// Converts the next m (<= 8) rows of `walk` to float, each padded with zeros to 8 * C lanes.
template <int C>
void load_rows(KvRowWalk<std::uint16_t>& walk, std::int64_t m, std::int64_t head_dim,
               float (*rows)[8 * C]) {
  const std::int64_t full = head_dim / 8;
  for (std::int64_t i = 0; i < m; ++i) {
    const std::uint16_t* row = walk.next();
    float* r = rows[i];
    for (std::int64_t c = 0; c < full; ++c)
      _mm256_store_ps(r + 8 * c, row_vector(row, c));
    for (std::int64_t j = 8 * full; j < 8 * C; ++j)
      r[j] = j < head_dim ? row_element(row, j) : 0.0f;
  }
}

// The same for Q8_0 rows (head_dim a multiple of 32): each block's scale converted once; the
// values are row_vector's.
template <int C>
void load_rows(KvRowWalk<BlockQ8_0>& walk, std::int64_t m, std::int64_t head_dim,
               float (*rows)[8 * C]) {
  const std::int64_t blocks = head_dim / kQK8_0;
  for (std::int64_t i = 0; i < m; ++i) {
    const BlockQ8_0* row = walk.next();
    float* r = rows[i];
    for (std::int64_t b = 0; b < blocks; ++b) {
      const __m256 d = _mm256_set1_ps(fp16(row[b].d));
      for (int j = 0; j < 4; ++j) {
        const __m256i q = _mm256_cvtepi8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row[b].qs + 8 * j)));
        _mm256_store_ps(r + kQK8_0 * b + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
      }
    }
    std::fill(r + head_dim, r + 8 * C, 0.0f);
  }
}

// The lane sums of four vectors: {sum a0, sum a1, sum a2, sum a3}.
inline __m128 sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// Stores the first min(n, 4) lanes of v to out.
inline void store_scores(float* out, __m128 v, std::int64_t n) {
  if (n >= 4) {
    _mm_storeu_ps(out, v);
    return;
  }
  alignas(16) float t[4];
  _mm_store_ps(t, v);
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = t[i];
}

// One head alone (no group to share the conversion with) of head_dim == 8 * C: scores_group's
// arithmetic for a head, the rows converted as they are read instead of through the buffer.
template <int C, typename Row>
void scores_one(const float* q, float scale, const KvRowsOf<Row>& k, float* scores) {
  KvRowWalk walk(k);
  const __m128 s = _mm_set1_ps(scale);
  for (std::int64_t p0 = 0; p0 < k.n; p0 += 4) {
    const std::int64_t m = std::min<std::int64_t>(4, k.n - p0);
    const Row* r[4];
    for (std::int64_t i = 0; i < 4; ++i)
      r[i] = i < m ? walk.next() : r[0];  // Rows past m: any, unused.
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int c = 0; c < C; ++c) {
      const __m256 qv = _mm256_loadu_ps(q + 8 * c);
      for (int i = 0; i < 4; ++i)
        acc[i] = _mm256_fmadd_ps(qv, row_vector(r[i], c), acc[i]);
    }
    store_scores(scores + p0, _mm_mul_ps(sum4(acc[0], acc[1], acc[2], acc[3]), s), m);
  }
}

// scores[h * stride + p] = scale * <q_h, K[p]>, four rows at a time, kAttnSpan vectors of the
// head's query in registers at once.
template <int C, typename Row>
void scores_group(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                  const KvRowsOf<Row>& k, float* scores, std::int64_t stride) {
  KvRowWalk walk(k);
  alignas(32) float rows[8][8 * C];
  alignas(32) float queries[kMaxGroupHeads][8 * C];  // Zero-padded like the rows.
  for (std::int32_t h = 0; h < heads; ++h) {
    std::copy_n(q + h * head_dim, head_dim, queries[h]);
    std::fill(queries[h] + head_dim, queries[h] + 8 * C, 0.0f);
  }
  const __m128 s = _mm_set1_ps(scale);
  for (std::int64_t p0 = 0; p0 < k.n; p0 += 8) {
    const std::int64_t m = std::min<std::int64_t>(8, k.n - p0);
    load_rows<C>(walk, m, head_dim, rows);
    for (std::int32_t h = 0; h < heads; ++h) {
      const float* qp = queries[h];
      float* out = scores + h * stride + p0;
      for (std::int64_t i0 = 0; i0 < m; i0 += 4) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                         _mm256_setzero_ps()};
        for_each_span<C>([&](auto span) {
          constexpr int kC0 = decltype(span)::value;
          constexpr int kN = std::min(kAttnSpan, C - kC0);
          __m256 qv[kN];
          for (int c = 0; c < kN; ++c)
            qv[c] = _mm256_load_ps(qp + 8 * (kC0 + c));
          for (std::int64_t i = 0; i < 4; ++i) {
            const float* r = rows[i0 + i < m ? i0 + i : 0];  // Rows past m: any, unused.
            for (int c = 0; c < kN; ++c)
              acc[i] = _mm256_fmadd_ps(qv[c], _mm256_load_ps(r + 8 * (kC0 + c)), acc[i]);
          }
        });
        store_scores(out + i0, _mm_mul_ps(sum4(acc[0], acc[1], acc[2], acc[3]), s), m - i0);
      }
    }
  }
}

template <typename Row, float (*Dot)(const float*, const Row*, std::int64_t)>
void scores_rows(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                 const KvRowsOf<Row>& k, float* scores, std::int64_t stride) {
  // Groups of up to kMaxGroupHeads heads (each group reads K once).
  for (std::int32_t h0 = 0; h0 < heads; h0 += kMaxGroupHeads) {
    const std::int32_t g = std::min(kMaxGroupHeads, heads - h0);
    const float* qg = q + h0 * head_dim;
    float* sg = scores + h0 * stride;
    if (!with_head_chunks<8, kMaxAttnChunks>(head_dim, [&](auto c) {
          if (g == 1 && head_dim % 8 == 0) {
            scores_one<decltype(c)::value>(qg, scale, k, sg);
          } else {
            scores_group<decltype(c)::value>(qg, g, head_dim, scale, k, sg, stride);
          }
        })) {
      scores_by_rows<Row, Dot>(qg, g, head_dim, scale, k, sg, stride);
    }
  }
}

// One head alone of head_dim == 8 * C: weighted_sum_group's arithmetic for a head (per lane,
// one fused multiply-add per position, in order), the accumulators in registers throughout.
template <int C, typename Row>
void weighted_sum_one(const float* w, const KvRowsOf<Row>& v, float* out) {
  for_each_span<C>([&](auto span) {
    constexpr int kC0 = decltype(span)::value;
    constexpr int kN = std::min(kAttnSpan, C - kC0);
    __m256 acc[kN];
    for (__m256& a : acc)
      a = _mm256_setzero_ps();
    KvRowWalk walk(v);
    for (std::int64_t p = 0; p < v.n; ++p) {
      const Row* row = walk.next();
      const __m256 wp = _mm256_set1_ps(w[p]);
      for (int c = 0; c < kN; ++c)
        acc[c] = _mm256_fmadd_ps(wp, row_vector(row, kC0 + c), acc[c]);
    }
    for (int c = 0; c < kN; ++c)
      _mm256_storeu_ps(out + 8 * (kC0 + c), acc[c]);
  });
}

// out_h = sum_p w[h * stride + p] V[p]: per block of 8 rows, each head's accumulators are
// loaded from `sums`, take the rows in order, and are stored back, kAttnSpan vectors at a time.
template <int C, typename Row>
void weighted_sum_group(const float* w, std::int64_t stride, std::int32_t heads,
                        const KvRowsOf<Row>& v, std::int64_t head_dim, float* out) {
  KvRowWalk walk(v);
  alignas(32) float rows[8][8 * C];
  alignas(32) float sums[kMaxGroupHeads][8 * C];
  for (std::int32_t h = 0; h < heads; ++h)
    std::fill_n(sums[h], 8 * C, 0.0f);
  for (std::int64_t p0 = 0; p0 < v.n; p0 += 8) {
    const std::int64_t m = std::min<std::int64_t>(8, v.n - p0);
    load_rows<C>(walk, m, head_dim, rows);
    for (std::int32_t h = 0; h < heads; ++h) {
      const float* wh = w + h * stride + p0;
      for_each_span<C>([&](auto span) {
        constexpr int kC0 = decltype(span)::value;
        constexpr int kN = std::min(kAttnSpan, C - kC0);
        __m256 acc[kN];
        for (int c = 0; c < kN; ++c)
          acc[c] = _mm256_load_ps(sums[h] + 8 * (kC0 + c));
        for (std::int64_t i = 0; i < m; ++i) {
          const __m256 wp = _mm256_set1_ps(wh[i]);
          for (int c = 0; c < kN; ++c)
            acc[c] = _mm256_fmadd_ps(wp, _mm256_load_ps(rows[i] + 8 * (kC0 + c)), acc[c]);
        }
        for (int c = 0; c < kN; ++c)
          _mm256_store_ps(sums[h] + 8 * (kC0 + c), acc[c]);
      });
    }
  }
  for (std::int32_t h = 0; h < heads; ++h)
    std::copy_n(sums[h], head_dim, out + h * head_dim);
}

template <typename Row, void (*Axpy)(float, const Row*, float*, std::int64_t)>
void weighted_sum_rows(const float* w, std::int64_t stride, std::int32_t heads,
                       const KvRowsOf<Row>& v, std::int64_t head_dim, float* out) {
  // Groups of up to kMaxGroupHeads heads (each group reads V once).
  for (std::int32_t h0 = 0; h0 < heads; h0 += kMaxGroupHeads) {
    const std::int32_t g = std::min(kMaxGroupHeads, heads - h0);
    const float* wg = w + h0 * stride;
    float* og = out + h0 * head_dim;
    if (!with_head_chunks<8, kMaxAttnChunks>(head_dim, [&](auto c) {
          if (g == 1 && head_dim % 8 == 0) {
            weighted_sum_one<decltype(c)::value>(wg, v, og);
          } else {
            weighted_sum_group<decltype(c)::value>(wg, stride, g, v, head_dim, og);
          }
        })) {
      weighted_sum_by_rows<Row, Axpy>(wg, stride, g, v, head_dim, og);
    }
  }
}

// Rows of Q8_0 blocks: n is a multiple of 32, so whole vectors only.
float dot_q8_0(const float* x, const BlockQ8_0* y, std::int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t c = 0; c < n / 8; ++c)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8 * c), row_vector(y, c), acc);
  return hsum(acc);
}

void axpy_q8_0(float a, const BlockQ8_0* x, float* y, std::int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  for (std::int64_t c = 0; c < n / 8; ++c)
    _mm256_storeu_ps(y + 8 * c, _mm256_fmadd_ps(av, row_vector(x, c), _mm256_loadu_ps(y + 8 * c)));
}

// exp(x) for 8 lanes: kernels_avx512.cc's exp16 (the same clamps, reduction and polynomial),
// with 2^k applied as two exact power-of-two factors, as AVX2 has no vscalefps: 0 and +inf past
// float's range, NaN in gives NaN out.
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(150.0f), _mm256_max_ps(_mm256_set1_ps(-150.0f), x));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // |k| <= 217, so each half is a normal float's exponent.
  const __m256i ki = _mm256_cvtps_epi32(k);
  const __m256i k1 = _mm256_srai_epi32(ki, 1);
  const __m256i k2 = _mm256_sub_epi32(ki, k1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// The lanes of a float vector added in double: lo and hi halves widened, then summed.
inline __m256d add_widened(__m256d sum, __m256 v) {
  sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

// Softmax as engine/ops.h's (max ignoring NaN as fmax does, sum in double), 8 lanes at a time;
// the last n % 8 values go through a buffer padded with -inf (exp gives 0 there).
void softmax_x8(float* x, std::int64_t n) {
  const std::int64_t full = n / 8 * 8;
  const std::int64_t rest = n - full;
  alignas(32) float tail[8];
  for (std::int64_t j = 0; j < 8; ++j)
    tail[j] = j < rest ? x[full + j] : -INFINITY;
  __m256 maxv = _mm256_set1_ps(x[0]);
  for (std::int64_t i = 0; i < full; i += 8)
    maxv = _mm256_max_ps(_mm256_loadu_ps(x + i), maxv);  // A NaN lane keeps maxv.
  maxv = _mm256_max_ps(_mm256_load_ps(tail), maxv);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, maxv);
  float max = lanes[0];
  for (int l = 1; l < 8; ++l)
    max = std::fmax(max, lanes[l]);
  const __m256 mv = _mm256_set1_ps(max);
  __m256d sum = _mm256_setzero_pd();
  for (std::int64_t i = 0; i < full; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    sum = add_widened(sum, e);
  }
  if (rest > 0) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(tail), mv));
    _mm256_store_ps(tail, e);
    sum = add_widened(sum, e);
  }
  alignas(32) double d[4];
  _mm256_store_pd(d, sum);
  const float inv = static_cast<float>(1.0 / ((d[0] + d[2]) + (d[1] + d[3])));
  const __m256 iv = _mm256_set1_ps(inv);
  for (std::int64_t i = 0; i < full; i += 8)
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
  for (std::int64_t j = 0; j < rest; ++j)
    x[full + j] = tail[j] * inv;
}

// silu(gate) * up, 8 lanes at a time (out may alias gate); the tail through padded buffers.
void swiglu_x8(const float* gate, const float* up, std::int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const auto lanes = [&](__m256 g, __m256 u) {
    return _mm256_mul_ps(
        _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g)))), u);
  };
  const std::int64_t full = n / 8 * 8;
  for (std::int64_t i = 0; i < full; i += 8)
    _mm256_storeu_ps(out + i, lanes(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  const std::int64_t rest = n - full;
  if (rest == 0) return;
  alignas(32) float g[8] = {}, u[8] = {};
  std::copy_n(gate + full, rest, g);
  std::copy_n(up + full, rest, u);
  _mm256_store_ps(g, lanes(_mm256_load_ps(g), _mm256_load_ps(u)));
  std::copy_n(g, rest, out + full);
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
                             drive_panels<F16Panel>,
                             drive_panels<QuantPanel<Q80Dots>>,
                             drive_panels<QuantPanel<Q40Dots>>,
                             dot_f16,
                             axpy_f16,
                             to_f16,
                             scores_rows<std::uint16_t, dot_f16>,
                             weighted_sum_rows<std::uint16_t, axpy_f16>,
                             scores_q8_0_avx2,
                             weighted_sum_q8_0_avx2,
                             softmax_x8,
                             swiglu_x8};

}  // namespace

const KernelTable& avx2_kernels() {
  return kTable;
}

void scores_q8_0_avx2(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                      const KvRowsQ8_0& k, float* scores, std::int64_t stride) {
  scores_rows<BlockQ8_0, dot_q8_0>(q, heads, head_dim, scale, k, scores, stride);
}

void weighted_sum_q8_0_avx2(const float* w, std::int64_t stride, std::int32_t heads,
                            const KvRowsQ8_0& v, std::int64_t head_dim, float* out) {
  weighted_sum_rows<BlockQ8_0, axpy_q8_0>(w, stride, heads, v, head_dim, out);
}

}  // namespace spillway::engine
