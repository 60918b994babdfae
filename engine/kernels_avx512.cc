// AVX-512 kernels (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512bf16
// -mfma -mf16c; see engine/CMakeLists.txt). 16-float vectors; Q8_0 and Q4_0 take two 32-element
// blocks per 512-bit VNNI vpdpbusd (u8 x s8 -> s32), the K-quants use the shared 256-bit
// kernels (their per-sub-block integer scales cost the same with maddubs + madd).
//
// vpdpbusd wants one unsigned operand: Q4_0's nibbles already are; Q8_0's weights are flipped
// to w + 128 (xor 0x80). Either way the offset comes off through the dot's starting value:
// -offset * sum(x) per block, from the activation sums.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/kernels.h"
#include "engine/kernels_panel_driver.h"
#include "engine/kernels_x86_shared.h"
#include "engine/quant_blocks.h"
#include "engine/quant_repack.h"

namespace spillway::engine {
namespace {

// GCC 12's _mm512_reduce_add_ps and 512-to-256 casts trip -Wuninitialized inside its own
// headers (self-initialized "undefined" registers), so the final reduction of a tile goes
// through memory; it runs once per row and token.
inline float hsum512(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  const __m256 half = _mm256_add_ps(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8));
  return hsum(half);
}

// Single-token decode reads a tile's R rows side by side, R short streams that hardware
// prefetchers pick up late. The rows of a tile are contiguous, and so is the next tile: while
// this tile's block pair b is consumed, prefetch the matching share of the next tile, so the
// next tile is in cache by the time it starts (one tile, ~9 KB for Q8_0 at 2048 columns,
// ahead of the loads).
// `done` of `total` units of each row are consumed after this step, `step` units at a time.
template <int R>
inline void prefetch_next_tile(const MatmulArgs& a, const void* last_row, std::int64_t done,
                               std::int64_t step, std::int64_t total) {
  const char* next = static_cast<const char*>(last_row) + a.row_bytes;
  const std::int64_t tile_bytes = R * static_cast<std::int64_t>(a.row_bytes);
  const std::int64_t begin = tile_bytes * done / total;
  const std::int64_t end = tile_bytes * (done + step) / total;
  for (std::int64_t off = begin & ~std::int64_t{63}; off < end; off += 64) {
    _mm_prefetch(next + off, _MM_HINT_T0);
  }
}

template <typename Widen>
struct FloatKernel {
  static constexpr int kRows = 4;
  template <int R, int T>
  static void tile(const MatmulArgs& a, std::int64_t r, std::int64_t t) {
    const std::byte* w[R];
    const float* x[T];
    for (int i = 0; i < R; ++i)
      w[i] = a.w + static_cast<std::size_t>(r + i) * a.row_bytes;
    for (int j = 0; j < T; ++j)
      x[j] = a.x + (t + j) * a.cols;
    __m512 acc[R][T];
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        acc[i][j] = _mm512_setzero_ps();
    }
    const auto step = [&](std::int64_t k, __mmask16 mask) {
      __m512 wv[R];
      if constexpr (T == 1) prefetch_next_tile<R>(a, w[R - 1], k, 16, a.cols);
      for (int i = 0; i < R; ++i) {
        wv[i] = Widen::load(w[i], k, mask);
      }
      for (int j = 0; j < T; ++j) {
        const __m512 xv = _mm512_maskz_loadu_ps(mask, x[j] + k);
        for (int i = 0; i < R; ++i)
          acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
      }
    };
    std::int64_t k = 0;
    for (; k + 16 <= a.cols; k += 16)
      step(k, 0xFFFF);
    if (k < a.cols) step(k, static_cast<__mmask16>((1u << (a.cols - k)) - 1u));
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        a.y[(t + j) * a.y_stride + r + i] = hsum512(acc[i][j]);
    }
  }
};

struct WidenF32 {
  static __m512 load(const std::byte* row, std::int64_t i, __mmask16 mask) {
    return _mm512_maskz_loadu_ps(mask, reinterpret_cast<const float*>(row) + i);
  }
};

struct WidenF16 {
  static __m512 load(const std::byte* row, std::int64_t i, __mmask16 mask) {
    return _mm512_cvtph_ps(
        _mm256_maskz_loadu_epi16(mask, reinterpret_cast<const std::uint16_t*>(row) + i));
  }
};

struct WidenBF16 {
  static __m512 load(const std::byte* row, std::int64_t i, __mmask16 mask) {
    const __m256i h =
        _mm256_maskz_loadu_epi16(mask, reinterpret_cast<const std::uint16_t*>(row) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};

// Lanes 0-7 from element 0 of v, lanes 8-15 from element 1.
inline __m512i two_block_index() {
  return _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
}

// Scales [d(b0) x 8, d(b1) x 8] from two fp16 bit patterns.
inline __m512 two_fp16(std::uint16_t d0, std::uint16_t d1) {
  return _mm512_cvtph_ps(_mm256_mask_set1_epi16(_mm256_set1_epi16(static_cast<short>(d0)), 0xFF00,
                                                static_cast<short>(d1)));
}

// Blocks b and b + 1 of a Q8_0 row as w + 128.
struct Q80Weights {
  using Block = BlockQ8_0;
  static constexpr int kOffsetShift = 7;  // The offset is 128.
  static __m512i load(const Block* w) {
    const __m512i v = _mm512_inserti64x4(
        _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[0].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[1].qs)), 1);
    return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  static __m256i load_one(const Block& w) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  }
};

// Blocks b and b + 1 of a Q4_0 row as unsigned nibbles, in element order.
struct Q40Weights {
  using Block = BlockQ4_0;
  static constexpr int kOffsetShift = 3;  // The offset is 8.
  static __m512i load(const Block* w) {
    const __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[0].qs))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[1].qs)), 1);
    // 128-bit lanes: low nibbles of b, b + 1, then high nibbles of b, b + 1; reorder to
    // b low, b high, b + 1 low, b + 1 high.
    const __m512i z =
        _mm512_and_si512(_mm512_inserti64x4(_mm512_zextsi256_si512(v), _mm256_srli_epi16(v, 4), 1),
                         _mm512_set1_epi8(0x0F));
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
  }
  static __m256i load_one(const Block& w) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.qs));
    const __m128i low4 = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), low4), _mm_and_si128(v, low4));
  }
};

template <typename Weights>
struct Q32Kernel {
  static constexpr int kRows = 4;
  template <int R, int T>
  static void tile(const MatmulArgs& a, std::int64_t r, std::int64_t t) {
    const QuantTile<typename Weights::Block, R, T> p(a, r, t, 4);
    const __m512i pick = two_block_index();
    __m512 acc[R][T];
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        acc[i][j] = _mm512_setzero_ps();
    }
    const std::int64_t nb = a.cols / 32;
    std::int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      __m512i wv[R];
      __m512 dw[R];
      if constexpr (T == 1) prefetch_next_tile<R>(a, p.w[R - 1], b, 2, nb);
      for (int i = 0; i < R; ++i) {
        wv[i] = Weights::load(p.w[i] + b);
        dw[i] = two_fp16(p.w[i][b].d, p.w[i][b + 1].d);
      }
      for (int j = 0; j < T; ++j) {
        const __m512i xv = _mm512_load_si512(p.q[j] + 32 * b);
        const __m512 dx = _mm512_permutexvar_ps(
            pick, _mm512_zextps128_ps512(_mm_castsi128_ps(
                      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p.d[j] + b)))));
        const __m128i sums = _mm_loadl_epi64(
            reinterpret_cast<const __m128i*>(static_cast<const std::int32_t*>(p.sums[j]) + b));
        const __m128i neg =
            _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(sums, Weights::kOffsetShift));
        const __m512i start =
            _mm512_maskz_permutexvar_epi32(0x0101, pick, _mm512_zextsi128_si512(neg));
        for (int i = 0; i < R; ++i) {
          const __m512i dot = _mm512_dpbusd_epi32(start, wv[i], xv);
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[i], dx), acc[i][j]);
        }
      }
    }
    float tail[R][T] = {};
    if (b < nb) {  // An odd last block, with 256-bit VNNI.
      for (int i = 0; i < R; ++i) {
        const __m256i wv = Weights::load_one(p.w[i][b]);
        const float dw = fp16(p.w[i][b].d);
        for (int j = 0; j < T; ++j) {
          const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[j] + 32 * b));
          const std::int32_t sx = static_cast<const std::int32_t*>(p.sums[j])[b];
          const std::int32_t dot = hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv)) -
                                   (sx << Weights::kOffsetShift);
          tail[i][j] = dw * p.d[j][b] * static_cast<float>(dot);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j) {
        a.y[(t + j) * a.y_stride + r + i] = hsum512(acc[i][j]) + tail[i][j];
      }
    }
  }
};

inline __mmask16 tail_mask(std::int64_t left) {
  return left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1u);
}

// Panel kernels (engine/quant_repack.h): lane i of every vector is row i of the panel, so a
// tile of one panel and T tokens keeps T accumulators of 16 rows and never reduces across lanes;
// each thread streams its panels as one contiguous region. Tiles of up to kTokens tokens over P
// panels at a time (engine/kernels_panel_driver.h).

// The int8 kernels take two panels per tile when a pass has several tokens, so that each
// broadcast activation group feeds two vpdpbusd and the loads no longer outnumber them (~20%
// less CPU time per batched product, matmul_bench).
inline constexpr int kMaxTilePanels = 2;

// Single-token passes (decode) take four panels per tile: four streams from memory at once
// instead of one, and each broadcast activation shared by four panels. Decode is a streaming
// read, and one stream per core left it short of the memory's speed: one thread's Q4_0 product
// took ~20% longer with one panel per tile, and decode reached 0.82 of the bandwidth limit in
// Q8_0 (docs/BENCHMARKS.md).
inline constexpr int kDecodeTilePanels = 4;

// Stores the 16 rows of v that lie below r_end as token t's outputs.
inline void store_panel(const MatmulArgs& a, std::int64_t r, std::int64_t r_end, std::int64_t t,
                        __m512 v) {
  const std::int64_t valid = std::min(kPanelRows, r_end - r);
  const auto mask = static_cast<__mmask16>(valid >= 16 ? 0xFFFFu : (1u << valid) - 1u);
  _mm512_mask_storeu_ps(a.y + t * a.y_stride + r, mask, v);
}

// Four int8 activations broadcast to all lanes (a broadcast load, no shuffle).
inline __m512i broadcast4(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

struct F16Panel {
  static constexpr int kTokens = 8;
  static constexpr int kMaxPanels = 1;  // FMA-bound: a second panel would not help.
  static constexpr int kDecodePanels = kDecodeTilePanels;
  static constexpr std::int64_t kPrefetchUnits = 0;  // The hardware prefetchers keep up.
  static constexpr bool kPrefetchNext = false;
  static std::int64_t activation_bytes(const MatmulArgs& a) {
    return a.cols * static_cast<std::int64_t>(sizeof(float));
  }
  template <int P, int T>
  static void tile(const MatmulArgs& a, const std::byte* panel, std::int64_t r, std::int64_t r_end,
                   std::int64_t t, const TilePrefetch& /*prefetch*/) {
    // Two FMA chains per row and token, alternating columns, whatever the tile's shape: a
    // token's outputs then do not depend on the tokens and panels tiled with it (batched decode
    // gives each sequence what decoding it alone gives). With the tiles' P x T accumulators
    // that covers the FMA latency (decode is bound by memory anyway).
    constexpr int kChains = 2;
    const std::size_t panel_bytes = a.row_bytes * static_cast<std::size_t>(kPanelRows);
    const __m256i* w[P];
    for (int p = 0; p < P; ++p)
      w[p] = reinterpret_cast<const __m256i*>(panel + static_cast<std::size_t>(p) * panel_bytes);
    const float* x[T];
    __m512 acc[P][T][kChains];
    for (int j = 0; j < T; ++j) {
      x[j] = a.x + (t + j) * a.cols;
      for (int p = 0; p < P; ++p) {
        for (int c = 0; c < kChains; ++c)
          acc[p][j][c] = _mm512_setzero_ps();
      }
    }
    std::int64_t k = 0;
    for (; k + kChains <= a.cols; k += kChains) {
      for (int p = 0; p < P; ++p) {
        __m512 wv[kChains];
        for (int c = 0; c < kChains; ++c)
          wv[c] = _mm512_cvtph_ps(_mm256_loadu_si256(w[p] + k + c));
        for (int j = 0; j < T; ++j) {
          for (int c = 0; c < kChains; ++c)
            acc[p][j][c] = _mm512_fmadd_ps(wv[c], _mm512_set1_ps(x[j][k + c]), acc[p][j][c]);
        }
      }
    }
    for (; k < a.cols; ++k) {
      for (int p = 0; p < P; ++p) {
        const __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256(w[p] + k));
        for (int j = 0; j < T; ++j)
          acc[p][j][0] = _mm512_fmadd_ps(wv, _mm512_set1_ps(x[j][k]), acc[p][j][0]);
      }
    }
    for (int p = 0; p < P; ++p) {
      for (int j = 0; j < T; ++j) {
        __m512 sum = acc[p][j][0];
        for (int c = 1; c < kChains; ++c)
          sum = _mm512_add_ps(sum, acc[p][j][c]);
        store_panel(a, r + p * kPanelRows, r_end, t + j, sum);
      }
    }
  }
};

// Q8_0 (weights stored as w + 128) and Q4_0 (nibbles) panels. Per block, panel and token:
// eight vpdpbusd of the block's 16 x 32 weights with broadcast groups of four activations,
// started at -offset * sum(x), then one convert and one FMA with the 16 rows' scales times the
// token's. A tile of P panels shares each broadcast between the P panels.
template <typename Weights>
struct QuantPanel {
  static constexpr int kTokens = 4;
  static constexpr int kMaxPanels = kMaxTilePanels;
  static constexpr int kDecodePanels = kDecodeTilePanels;
  static constexpr std::int64_t kBlockBytes = Weights::kQuantBytes * kPanelRows;
  // Prefetch ~4 KiB ahead in the thread's contiguous run of panels (past a panel's end are its
  // scales and then the next panel; a prefetch never faults): the hardware prefetchers alone
  // leave single-token decode 20-25% short of streaming speed (matmul_bench, one thread).
  static constexpr std::int64_t kPrefetchUnits = std::int64_t{4096} / kBlockBytes;
  static constexpr bool kPrefetchNext = true;
  static std::int64_t activation_bytes(const MatmulArgs& a) { return a.xq.q_stride; }
  template <int P, int T>
  static void tile(const MatmulArgs& a, const std::byte* panel, std::int64_t r, std::int64_t r_end,
                   std::int64_t t, const TilePrefetch& prefetch) {
    // Fewer than four products per activation group leave too few dependency chains.
    constexpr int kChains = P * T < 4 ? 2 : 1;
    const std::int64_t nb = a.cols / 32;
    const std::size_t panel_bytes = a.row_bytes * static_cast<std::size_t>(kPanelRows);
    const std::byte* quants[P];
    const std::byte* scales[P];
    for (int p = 0; p < P; ++p) {
      quants[p] = panel + static_cast<std::size_t>(p) * panel_bytes;
      scales[p] = quants[p] + nb * kBlockBytes;
    }
    const std::int8_t* q[T];
    const float* d[T];
    const std::int32_t* sums[T];
    __m512 acc[P][T];
    for (int j = 0; j < T; ++j) {
      q[j] = a.xq.q + (t + j) * a.xq.q_stride;
      d[j] = a.xq.d + (t + j) * a.xq.d_stride;
      sums[j] = static_cast<const std::int32_t*>(a.xq.sums) + (t + j) * a.xq.sums_stride;
      for (int p = 0; p < P; ++p)
        acc[p][j] = _mm512_setzero_ps();
    }
    BlockPrefetcher prefetcher(prefetch, nb);
    for (std::int64_t b = 0; b < nb; ++b) {
      prefetcher.at_block(quants, kBlockBytes, b);
      // Tokens and panels interleaved, so their dependency chains overlap.
      __m512i dot[P][T][kChains];
      for (int j = 0; j < T; ++j) {
        const __m512i start = _mm512_set1_epi32(-Weights::kOffset * sums[j][b]);
        for (int p = 0; p < P; ++p) {
          dot[p][j][0] = start;
          for (int c = 1; c < kChains; ++c)
            dot[p][j][c] = _mm512_setzero_si512();
        }
      }
      // Groups g and g + 4 come from one load for Q4_0 (low and high nibbles).
      for (int g = 0; g < 4; ++g) {
        __m512i x_lo[T], x_hi[T];
        for (int j = 0; j < T; ++j) {
          x_lo[j] = broadcast4(q[j] + 32 * b + Weights::x_offset(g));
          x_hi[j] = broadcast4(q[j] + 32 * b + Weights::x_offset(g + 4));
        }
        for (int p = 0; p < P; ++p) {
          __m512i w_lo, w_hi;
          Weights::load_pair(quants[p] + b * kBlockBytes, g, w_lo, w_hi);
          for (int j = 0; j < T; ++j) {
            const int c_lo = g % kChains, c_hi = (g + 1) % kChains;
            dot[p][j][c_lo] = _mm512_dpbusd_epi32(dot[p][j][c_lo], w_lo, x_lo[j]);
            dot[p][j][c_hi] = _mm512_dpbusd_epi32(dot[p][j][c_hi], w_hi, x_hi[j]);
          }
        }
      }
      for (int p = 0; p < P; ++p) {
        const __m512 dw = _mm512_cvtph_ps(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales[p] + 32 * b)));
        for (int j = 0; j < T; ++j) {
          for (int c = 1; c < kChains; ++c)
            dot[p][j][0] = _mm512_add_epi32(dot[p][j][0], dot[p][j][c]);
          acc[p][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[p][j][0]),
                                      _mm512_mul_ps(dw, _mm512_set1_ps(d[j][b])), acc[p][j]);
        }
      }
    }
    for (int p = 0; p < P; ++p) {
      for (int j = 0; j < T; ++j)
        store_panel(a, r + p * kPanelRows, r_end, t + j, acc[p][j]);
    }
  }
};

// Q8_0: group g holds columns 4g..4g+3 of every row.
struct Q80PanelWeights {
  static constexpr std::int64_t kQuantBytes = 32;
  static constexpr std::int32_t kOffset = 128;
  // Groups g and g + 4 (g < 4).
  static void load_pair(const std::byte* p, int g, __m512i& lo, __m512i& hi) {
    lo = _mm512_loadu_si512(p + 64 * g);
    hi = _mm512_loadu_si512(p + 64 * (g + 4));
  }
  static constexpr int x_offset(int g) { return 4 * g; }
};

// Q4_0: stored group g holds columns 4g..4g+3 (low nibbles) and 16+4g.. (high nibbles);
// unpacked group g < 4 is the low nibbles of stored group g, g >= 4 the high nibbles of g - 4.
struct Q40PanelWeights {
  static constexpr std::int64_t kQuantBytes = 16;
  static constexpr std::int32_t kOffset = 8;
  static void load_pair(const std::byte* p, int g, __m512i& lo, __m512i& hi) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i v = _mm512_loadu_si512(p + 64 * g);
    lo = _mm512_and_si512(v, low4);
    hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
  }
  static constexpr int x_offset(int g) { return g < 4 ? 4 * g : 16 + 4 * (g - 4); }
};

float dot_f16(const float* x, const std::uint16_t* y, std::int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 yv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, y + i));
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), yv, acc);
  }
  return hsum512(acc);
}

void axpy_f16(float a, const std::uint16_t* x, float* y, std::int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 xv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, xv, _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void to_f16(const float* x, std::uint16_t* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(y + i, m,
                             _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// Lane i of the result is the sum of the 16 lanes of v[i] (a transposing reduction: 45
// shuffles and adds for 16 sums instead of 16 horizontal sums).
inline __m512 sum16(const __m512* v) {
  __m512 t[8];
  for (int k = 0; k < 8; ++k) {
    // Per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] for a = v[2k], b = v[2k+1].
    t[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]),
                         _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
  }
  __m512 u[4];
  for (int m = 0; m < 4; ++m) {
    // Per 128-bit lane L: the lane's partial sums of v[4m .. 4m+3].
    const __m512d lo = _mm512_castps_pd(t[2 * m]), hi = _mm512_castps_pd(t[2 * m + 1]);
    u[m] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi)));
  }
  // Add the four 128-bit lanes of each u[m], leaving u[m]'s totals in lane m.
  const __m512 x01 =
      _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
  const __m512 x23 =
      _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, 0x88), _mm512_shuffle_f32x4(x01, x23, 0xDD));
}

// Scores of one query head, 16 positions at a time: one vector of products per position, then
// sum16.
void scores_one(const float* q, std::int64_t head_dim, float scale, const KvRows& k,
                float* scores) {
  KvRowWalk walk(k);
  const __m512 s = _mm512_set1_ps(scale);
  __m512 v[16];
  for (std::int64_t p0 = 0; p0 < k.n; p0 += 16) {
    const std::int64_t m = std::min<std::int64_t>(16, k.n - p0);
    for (std::int64_t i = 0; i < 16; ++i) {
      __m512 acc = _mm512_setzero_ps();
      if (i < m) {
        const std::uint16_t* row = walk.next();
        for (std::int64_t c = 0; c < head_dim; c += 16) {
          const __mmask16 mask = tail_mask(head_dim - c);
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, q + c),
                                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + c)), acc);
        }
      }
      v[i] = acc;
    }
    _mm512_mask_storeu_ps(scores + p0, tail_mask(m), _mm512_mul_ps(sum16(v), s));
  }
}

// Converts the next m (<= 16) rows of `walk` to float, the lanes past the head's zero (`mask`).
template <int C>
void load_rows(KvRowWalk<std::uint16_t>& walk, std::int64_t m, const __mmask16 (&mask)[C],
               float (*rows)[16 * C]) {
  for (std::int64_t i = 0; i < m; ++i) {
    const std::uint16_t* row = walk.next();
    for (int c = 0; c < C; ++c) {
      _mm512_store_ps(rows[i] + 16 * c,
                      _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask[c], row + 16 * c)));
    }
  }
}

// The same products for a group of query heads sharing the KV head, with head_dim <= 16 * C
// (C chunks of 16): each block of 16 K rows is converted to float once, for all the heads, and
// each head keeps its query in registers. Per head the arithmetic is scores_one's, in the same
// order, so the results are the same bits.
template <int C>
void scores_group(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                  const KvRows& k, float* scores, std::int64_t stride) {
  KvRowWalk walk(k);
  const __m512 s = _mm512_set1_ps(scale);
  __mmask16 mask[C];
  for (int c = 0; c < C; ++c)
    mask[c] = tail_mask(head_dim - 16 * c);
  alignas(64) float rows[16][16 * C];
  for (std::int64_t p0 = 0; p0 < k.n; p0 += 16) {
    const std::int64_t m = std::min<std::int64_t>(16, k.n - p0);
    load_rows<C>(walk, m, mask, rows);
    for (std::int32_t h = 0; h < heads; ++h) {
      __m512 qv[C];
      for (int c = 0; c < C; ++c)
        qv[c] = _mm512_maskz_loadu_ps(mask[c], q + h * head_dim + 16 * c);
      __m512 v[16];
      for (std::int64_t i = 0; i < 16; ++i) {
        __m512 acc = _mm512_setzero_ps();
        if (i < m) {
          for (int c = 0; c < C; ++c)
            acc = _mm512_fmadd_ps(qv[c], _mm512_load_ps(rows[i] + 16 * c), acc);
        }
        v[i] = acc;
      }
      _mm512_mask_storeu_ps(scores + h * stride + p0, tail_mask(m), _mm512_mul_ps(sum16(v), s));
    }
  }
}

void scores_f16(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                const KvRows& k, float* scores, std::int64_t stride) {
  if (heads > 1 && with_head_chunks<16, 8>(head_dim, [&](auto c) {
        scores_group<decltype(c)::value>(q, heads, head_dim, scale, k, scores, stride);
      })) {
    return;
  }
  for (std::int32_t h = 0; h < heads; ++h)  // One head, or wider heads: one at a time.
    scores_one(q + h * head_dim, head_dim, scale, k, scores + h * stride);
}

// out = sum_p w[p] V[p], 64 columns per pass over the positions, with two sets of
// accumulators (even and odd positions) so that the FMA chains overlap.
void weighted_sum_one(const float* w, const KvRows& v, std::int64_t head_dim, float* out) {
  for (std::int64_t c0 = 0; c0 < head_dim; c0 += 64) {
    __m512 acc[2][4];
    for (auto& set : acc) {
      for (__m512& a : set)
        a = _mm512_setzero_ps();
    }
    __mmask16 mask[4];
    for (int j = 0; j < 4; ++j)
      mask[j] = c0 + 16 * j < head_dim ? tail_mask(head_dim - c0 - 16 * j) : __mmask16{0};
    KvRowWalk walk(v);
    const auto add_row = [&](__m512* a, float weight) {
      const std::uint16_t* row = walk.next() + c0;
      const __m512 wp = _mm512_set1_ps(weight);
      for (int j = 0; j < 4; ++j) {
        a[j] = _mm512_fmadd_ps(wp, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask[j], row + 16 * j)),
                               a[j]);
      }
    };
    std::int64_t p = 0;
    for (; p + 2 <= v.n; p += 2) {
      add_row(acc[0], w[p]);
      add_row(acc[1], w[p + 1]);
    }
    if (p < v.n) add_row(acc[0], w[p]);
    for (int j = 0; j < 4; ++j) {
      _mm512_mask_storeu_ps(out + c0 + 16 * j, mask[j], _mm512_add_ps(acc[0][j], acc[1][j]));
    }
  }
}

// The same sums for up to kMaxGroupHeads query heads sharing the KV head, with head_dim <=
// 16 * C: each block of 16 V rows is converted to float once, for all the heads; each head's
// accumulators (even and odd positions, as in weighted_sum_one) are kept in memory between
// blocks. Per lane the additions are weighted_sum_one's, in the same order: the same bits.
inline constexpr std::int32_t kMaxGroupHeads = 16;

template <int C>
void weighted_sum_group(const float* w, std::int64_t stride, std::int32_t heads, const KvRows& v,
                        std::int64_t head_dim, float* out) {
  KvRowWalk walk(v);
  __mmask16 mask[C];
  for (int c = 0; c < C; ++c)
    mask[c] = tail_mask(head_dim - 16 * c);
  alignas(64) float rows[16][16 * C];
  alignas(64) float sums[kMaxGroupHeads][2][16 * C];  // Written by the first block.
  for (std::int64_t p0 = 0; p0 < v.n; p0 += 16) {     // p0 is even: parities are the block's.
    const std::int64_t m = std::min<std::int64_t>(16, v.n - p0);
    load_rows<C>(walk, m, mask, rows);
    for (std::int32_t h = 0; h < heads; ++h) {
      const float* wh = w + h * stride + p0;
      __m512 acc[2][C];
      for (int e = 0; e < 2; ++e) {
        for (int c = 0; c < C; ++c)
          acc[e][c] = p0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(sums[h][e] + 16 * c);
      }
      const auto add_row = [&](__m512* a, std::int64_t i) {
        const __m512 wp = _mm512_set1_ps(wh[i]);
        for (int c = 0; c < C; ++c)
          a[c] = _mm512_fmadd_ps(wp, _mm512_load_ps(rows[i] + 16 * c), a[c]);
      };
      std::int64_t i = 0;
      for (; i + 2 <= m; i += 2) {
        add_row(acc[0], i);
        add_row(acc[1], i + 1);
      }
      if (i < m) add_row(acc[0], i);
      for (int e = 0; e < 2; ++e) {
        for (int c = 0; c < C; ++c)
          _mm512_store_ps(sums[h][e] + 16 * c, acc[e][c]);
      }
    }
  }
  for (std::int32_t h = 0; h < heads; ++h) {
    for (int c = 0; c < C; ++c) {
      _mm512_mask_storeu_ps(
          out + h * head_dim + 16 * c, mask[c],
          _mm512_add_ps(_mm512_load_ps(sums[h][0] + 16 * c), _mm512_load_ps(sums[h][1] + 16 * c)));
    }
  }
}

void weighted_sum_f16(const float* w, std::int64_t stride, std::int32_t heads, const KvRows& v,
                      std::int64_t head_dim, float* out) {
  if (heads > 1 && heads <= kMaxGroupHeads && v.n > 0 &&
      with_head_chunks<16, 8>(head_dim, [&](auto c) {
        weighted_sum_group<decltype(c)::value>(w, stride, heads, v, head_dim, out);
      })) {
    return;
  }
  for (std::int32_t h = 0; h < heads; ++h)  // One head, or wider heads: one at a time.
    weighted_sum_one(w + h * stride, v, head_dim, out + h * head_dim);
}

// exp(x) for 16 lanes: x = k ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts so that
// k ln2 is exact), exp(r) by its Taylor series to r^7 (truncation error < 6e-9 relative, well
// under float's ulp), scaled by 2^k with vscalefps, which gives 0 and +inf past float's range.
// Inputs are clamped to +-150 first (exp is 0 or +inf there anyway) so that r stays finite;
// a NaN passes through the clamps (max/min return their second operand on NaN) and out.
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(150.0f), _mm512_max_ps(_mm512_set1_ps(-150.0f), x));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

// As engine/ops.h's softmax: the max, exp(x - max) summed in double, then a multiply by the
// inverse of the sum.
void softmax_x16(float* x, std::int64_t n) {
  __m512 maxv = _mm512_set1_ps(x[0]);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    maxv = _mm512_mask_max_ps(maxv, m, maxv, _mm512_maskz_loadu_ps(m, x + i));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, maxv);
  float max = lanes[0];
  for (int l = 1; l < 16; ++l)
    max = std::fmax(max, lanes[l]);
  const __m512 mv = _mm512_set1_ps(max);
  __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e =
        _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv)));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    sum_hi = _mm512_add_pd(
        sum_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  alignas(64) double dl[8];
  _mm512_store_pd(dl, _mm512_add_pd(sum_lo, sum_hi));
  const double sum = ((dl[0] + dl[4]) + (dl[1] + dl[5])) + ((dl[2] + dl[6]) + (dl[3] + dl[7]));
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

void swiglu_x16(const float* gate, const float* up, std::int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 silu =
        _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// Q8_0 KV rows go through the AVX2 kernels (scores_q8_0_avx2, weighted_sum_q8_0_avx2): no
// AVX-512 twins yet.
constexpr KernelTable kTable{IsaLevel::kAvx512,
                             quantize_q8_32_x86,
                             quantize_q8_256_x86,
                             drive<FloatKernel<WidenF32>>,
                             drive<FloatKernel<WidenF16>>,
                             drive<FloatKernel<WidenBF16>>,
                             drive<Q32Kernel<Q80Weights>>,
                             drive<Q32Kernel<Q40Weights>>,
                             drive<Q4KKernel>,
                             drive<Q6KKernel>,
                             drive_panels<F16Panel>,
                             drive_panels<QuantPanel<Q80PanelWeights>>,
                             drive_panels<QuantPanel<Q40PanelWeights>>,
                             dot_f16,
                             axpy_f16,
                             to_f16,
                             scores_f16,
                             weighted_sum_f16,
                             scores_q8_0_avx2,
                             weighted_sum_q8_0_avx2,
                             softmax_x16,
                             swiglu_x16};

}  // namespace

const KernelTable& avx512_kernels() {
  return kTable;
}

}  // namespace spillway::engine
