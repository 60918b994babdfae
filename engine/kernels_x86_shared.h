// 256-bit building blocks shared by kernels_avx2.cc and kernels_avx512.cc: the Q8 activation
// quantizers, the K-quant kernels (whose sub-block scales make maddubs + madd as cheap as
// VNNI), the row/token tiling driver and the attention kernels' dispatch on the head width.
// Everything here has internal linkage, so each including file gets its own copy compiled with its
// own ISA flags.
//
// REQUIRES: include only from files compiled with at least -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "engine/kernels.h"
#include "engine/quant_blocks.h"

namespace spillway::engine {
namespace {  // NOLINT: internal linkage on purpose, see above.

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline std::int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline float fp16(std::uint16_t h) {
  return _cvtsh_ss(h);
}

// Largest |x[i]| over n floats. REQUIRES: n a multiple of 32.
inline float amax_of(const float* x, std::int64_t n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m0 = _mm256_setzero_ps();
  __m256 m1 = _mm256_setzero_ps();
  for (std::int64_t i = 0; i < n; i += 16) {
    m0 = _mm256_max_ps(m0, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
    m1 = _mm256_max_ps(m1, _mm256_and_ps(_mm256_loadu_ps(x + i + 8), abs_mask));
  }
  __m256 m = _mm256_max_ps(m0, m1);
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Quantizes 32 floats with inverse scale id into q (round to nearest even, as the scalar
// level's nearbyint), returning the int8 values' sums over each half of 16.
inline void quantize32(const float* x, float id, std::int8_t* q, std::int32_t& sum_lo,
                       std::int32_t& sum_hi) {
  const __m256 vid = _mm256_set1_ps(id);
  const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), vid));
  const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid));
  const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid));
  const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid));
  sum_lo = hsum_i32(_mm256_add_epi32(a, b));
  sum_hi = hsum_i32(_mm256_add_epi32(c, d));
  // packs interleave 128-bit lanes: bytes come out as a0-3 b0-3 c0-3 d0-3 a4-7 b4-7 c4-7 d4-7.
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(packed, order));
}

void quantize_q8_32_x86(const float* x, std::int64_t cols, std::int8_t* q, float* d,
                        std::int32_t* sums) {
  for (std::int64_t b = 0; b < cols / 32; ++b, x += 32, q += 32) {
    const float amax = amax_of(x, 32);
    d[b] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    std::int32_t lo = 0;
    std::int32_t hi = 0;
    quantize32(x, id, q, lo, hi);
    sums[b] = lo + hi;
  }
}

void quantize_q8_256_x86(const float* x, std::int64_t cols, std::int8_t* q, float* d,
                         std::int16_t* sums) {
  for (std::int64_t b = 0; b < cols / kQK_K; ++b, x += kQK_K, q += kQK_K, sums += 16) {
    const float amax = amax_of(x, kQK_K);
    d[b] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < 8; ++j) {
      std::int32_t lo = 0;
      std::int32_t hi = 0;
      quantize32(x + 32 * j, id, q + 32 * j, lo, hi);
      sums[2 * j] = static_cast<std::int16_t>(lo);
      sums[2 * j + 1] = static_cast<std::int16_t>(hi);
    }
  }
}

// Tiling driver. K provides `template <int R, int T> static void tile(const MatmulArgs&,
// std::int64_t row, std::int64_t token)` computing rows [row, row + R) for tokens
// [token, token + T), and kRows, the tile height used for batches (single tokens use 4).
template <typename K, int R>
void tokens_of_rows(const MatmulArgs& a, std::int64_t r, std::int64_t t0, std::int64_t t1) {
  std::int64_t t = t0;
  for (; t + 4 <= t1; t += 4)
    K::template tile<R, 4>(a, r, t);
  switch (t1 - t) {
    case 3:
      K::template tile<R, 3>(a, r, t);
      break;
    case 2:
      K::template tile<R, 2>(a, r, t);
      break;
    case 1:
      K::template tile<R, 1>(a, r, t);
      break;
    default:
      break;
  }
}

// Tokens per pass over the rows: their activations (<= 32 x cols bytes) stay in L2 while the
// rows stream past, and the rows are read once per pass (once per call for decode batches).
inline constexpr std::int64_t kTokensPerPass = 32;

template <typename K>
void drive(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  if (a.n == 1) {
    std::int64_t r = r0;
    for (; r + 4 <= r1; r += 4)
      K::template tile<4, 1>(a, r, 0);
    for (; r < r1; ++r)
      K::template tile<1, 1>(a, r, 0);
    return;
  }
  for (std::int64_t t0 = 0; t0 < a.n; t0 += kTokensPerPass) {
    const std::int64_t t1 = std::min(a.n, t0 + kTokensPerPass);
    std::int64_t r = r0;
    for (; r + K::kRows <= r1; r += K::kRows)
      tokens_of_rows<K, K::kRows>(a, r, t0, t1);
    for (; r < r1; ++r)
      tokens_of_rows<K, 1>(a, r, t0, t1);
  }
}

// Pointers to the tile's rows and tokens' quantized activations.
template <typename Block, int R, int T>
struct QuantTile {
  const Block* w[R];
  const std::int8_t* q[T];
  const float* d[T];
  const void* sums[T];
  QuantTile(const MatmulArgs& a, std::int64_t r, std::int64_t t, int sums_bytes) {
    for (int i = 0; i < R; ++i) {
      w[i] = reinterpret_cast<const Block*>(a.w + static_cast<std::size_t>(r + i) * a.row_bytes);
    }
    for (int j = 0; j < T; ++j) {
      q[j] = a.xq.q + (t + j) * a.xq.q_stride;
      d[j] = a.xq.d + (t + j) * a.xq.d_stride;
      sums[j] = static_cast<const char*>(a.xq.sums) + (t + j) * a.xq.sums_stride * sums_bytes;
    }
  }
};

// Q4_K: per 256, sum_j sc_j * dot(q_j, x_j) in int32 lanes (maddubs, then madd by the scale)
// and sum_j m_j * sum(x_j) from the activation sums.
struct Q4KKernel {
  static constexpr int kRows = 2;
  template <int R, int T>
  static void tile(const MatmulArgs& a, std::int64_t r, std::int64_t t) {
    const QuantTile<BlockQ4_K, R, T> p(a, r, t, 2);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc[R][T];
    float mins[R][T] = {};
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        acc[i][j] = _mm256_setzero_ps();
    }
    for (std::int64_t b = 0; b < a.cols / kQK_K; ++b) {
      __m256i isum[R][T];
      for (int i = 0; i < R; ++i) {
        const BlockQ4_K& w = p.w[i][b];
        alignas(32) std::int16_t sc[8];
        alignas(32) std::int16_t mn[16];
        for (int k = 0; k < 8; ++k) {
          const ScaleMin sm = q4k_scale_min(w.scales, k);
          sc[k] = sm.scale;
          mn[2 * k] = mn[2 * k + 1] = sm.min;
        }
        const __m256i mins16 = _mm256_load_si256(reinterpret_cast<const __m256i*>(mn));
        for (int j = 0; j < T; ++j) {
          const auto* s = static_cast<const std::int16_t*>(p.sums[j]) + 16 * b;
          const __m256i m =
              _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)), mins16);
          mins[i][j] += p.d[j][b] * fp16(w.dmin) * static_cast<float>(hsum_i32(m));
          isum[i][j] = _mm256_setzero_si256();
        }
        for (int pair = 0; pair < 4; ++pair) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * pair));
          const __m256i lo = _mm256_and_si256(v, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
          const __m256i sc_lo = _mm256_set1_epi16(sc[2 * pair]);
          const __m256i sc_hi = _mm256_set1_epi16(sc[2 * pair + 1]);
          for (int j = 0; j < T; ++j) {
            const std::int8_t* x = p.q[j] + kQK_K * b + 64 * pair;
            const __m256i x_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(x));
            const __m256i x_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(x + 32));
            const __m256i s_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x_lo), sc_lo);
            const __m256i s_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x_hi), sc_hi);
            isum[i][j] = _mm256_add_epi32(isum[i][j], _mm256_add_epi32(s_lo, s_hi));
          }
        }
        const float dw = fp16(w.d);
        for (int j = 0; j < T; ++j) {
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]),
                                      _mm256_set1_ps(dw * p.d[j][b]), acc[i][j]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        a.y[(t + j) * a.y_stride + r + i] = hsum(acc[i][j]) - mins[i][j];
    }
  }
};

// Q6_K: unsigned 6-bit quants times int8 activations (maddubs), madd by the sub-block scales;
// the -32 offset comes off as 32 * sum_s sc_s * sum(x_s) from the activation sums.
struct Q6KKernel {
  static constexpr int kRows = 2;
  template <int R, int T>
  static void tile(const MatmulArgs& a, std::int64_t r, std::int64_t t) {
    const QuantTile<BlockQ6_K, R, T> p(a, r, t, 2);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        acc[i][j] = _mm256_setzero_ps();
    }
    for (std::int64_t b = 0; b < a.cols / kQK_K; ++b) {
      for (int i = 0; i < R; ++i) {
        const BlockQ6_K& w = p.w[i][b];
        const __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales)));
        __m256i isum[T];
        for (int j = 0; j < T; ++j) {
          const auto* s = static_cast<const std::int16_t*>(p.sums[j]) + 16 * b;
          const __m256i offset =
              _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)), sc16);
          isum[j] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
        }
        for (int h = 0; h < 2; ++h) {
          const auto* ql = reinterpret_cast<const __m256i*>(w.ql + 64 * h);
          const __m256i ql0 = _mm256_loadu_si256(ql);
          const __m256i ql1 = _mm256_loadu_si256(ql + 1);
          const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * h));
          const __m256i q[4] = {
              _mm256_or_si256(_mm256_and_si256(ql0, low4),
                              _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
              _mm256_or_si256(_mm256_and_si256(ql1, low4),
                              _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                              _mm256_and_si256(qh, bits45)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                              _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45))};
          // Scales of the half's 8 sub-blocks as int16, duplicated to both 128-bit lanes;
          // quarter k pairs sub-blocks 2k (low lane) and 2k + 1 (high lane).
          const __m128i sc8 = _mm_cvtepi8_epi16(
              _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.scales + 8 * h)));
          const __m256i sc_both = _mm256_broadcastsi128_si256(sc8);
          for (int k = 0; k < 4; ++k) {
            const char lo0 = static_cast<char>(4 * k);
            const char lo1 = static_cast<char>(4 * k + 1);
            const char hi0 = static_cast<char>(4 * k + 2);
            const char hi1 = static_cast<char>(4 * k + 3);
            const __m256i pick = _mm256_setr_epi8(
                lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, hi0,
                hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1);
            const __m256i sc = _mm256_shuffle_epi8(sc_both, pick);
            for (int j = 0; j < T; ++j) {
              const __m256i x = _mm256_load_si256(
                  reinterpret_cast<const __m256i*>(p.q[j] + kQK_K * b + 128 * h + 32 * k));
              isum[j] =
                  _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], x), sc));
            }
          }
        }
        const float dw = fp16(w.d);
        for (int j = 0; j < T; ++j) {
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(dw * p.d[j][b]),
                                      acc[i][j]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < T; ++j)
        a.y[(t + j) * a.y_stride + r + i] = hsum(acc[i][j]);
    }
  }
};

template <typename Fn, int... I>
bool with_chunk_count(std::int64_t chunks, Fn& fn, std::integer_sequence<int, I...>) {
  return ((chunks == I + 1 && (fn(std::integral_constant<int, I + 1>{}), true)) || ...);
}

// For the attention kernels: calls fn(std::integral_constant<int, C>{}) with C =
// ceil(head_dim / Lanes), the vectors a head's row takes, and returns true, when C is
// 1..MaxChunks; returns false (calling nothing) for wider heads.
template <int Lanes, int MaxChunks, typename Fn>
bool with_head_chunks(std::int64_t head_dim, Fn&& fn) {
  return with_chunk_count((head_dim + Lanes - 1) / Lanes, fn,
                          std::make_integer_sequence<int, MaxChunks>{});
}

}  // namespace
}  // namespace spillway::engine
