#include "engine/quant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/half.h"
#include "engine/quant_blocks.h"

namespace spillway::engine {
namespace {

[[noreturn]] void precondition_failed(const char* function, GgmlType type, std::int64_t n,
                                      const char* what) {
  std::fprintf(stderr, "spillway: %s(type=%s, n=%lld): %s\n", function,
               std::string(ggml_type_info(type).name).c_str(), static_cast<long long>(n), what);
  std::abort();
}

// Number of blocks in a row of n elements, checking the REQUIRES clauses shared by every entry
// point.
std::int64_t block_count(const char* function, GgmlType type, std::int64_t n, bool supported) {
  if (!supported) precondition_failed(function, type, n, "type not supported");
  const std::int64_t per_block = ggml_type_info(type).block_elements;
  if (n < 0 || n % per_block != 0) {
    precondition_failed(function, type, n, "n is not a multiple of the block size");
  }
  return n / per_block;
}

// ---- Dequantization: the expressions and their evaluation order follow ggml's reference
// dequantize_row_* so that the floats come out bit-identical.

void dequantize_q8_0(const BlockQ8_0* blocks, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, y += kQK8_0) {
    const float d = fp16_to_fp32(blocks[i].d);
    for (int j = 0; j < kQK8_0; ++j)
      y[j] = static_cast<float>(blocks[i].qs[j]) * d;
  }
}

void dequantize_q4_0(const BlockQ4_0* blocks, float* y, std::int64_t nb) {
  constexpr int kHalf = kQK4_0 / 2;
  for (std::int64_t i = 0; i < nb; ++i, y += kQK4_0) {
    const float d = fp16_to_fp32(blocks[i].d);
    for (int j = 0; j < kHalf; ++j) {
      const int lo = (blocks[i].qs[j] & 0xF) - 8;
      const int hi = (blocks[i].qs[j] >> 4) - 8;
      y[j] = static_cast<float>(lo) * d;
      y[j + kHalf] = static_cast<float>(hi) * d;
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* blocks, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i) {
    const BlockQ4_K& b = blocks[i];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    const std::uint8_t* q = b.qs;
    // Each pass decodes two sub-blocks of 32 that share 32 bytes of qs (low, then high nibbles).
    for (int pair = 0; pair < 4; ++pair, q += 32) {
      const ScaleMin lo = q4k_scale_min(b.scales, 2 * pair);
      const ScaleMin hi = q4k_scale_min(b.scales, 2 * pair + 1);
      const float d_lo = d * static_cast<float>(lo.scale);
      const float m_lo = dmin * static_cast<float>(lo.min);
      const float d_hi = d * static_cast<float>(hi.scale);
      const float m_hi = dmin * static_cast<float>(hi.min);
      for (int l = 0; l < 32; ++l)
        *y++ = d_lo * static_cast<float>(q[l] & 0xF) - m_lo;
      for (int l = 0; l < 32; ++l)
        *y++ = d_hi * static_cast<float>(q[l] >> 4) - m_hi;
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* blocks, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i) {
    const BlockQ6_K& b = blocks[i];
    const float d = fp16_to_fp32(b.d);
    // Two halves of 128 elements. In half h, byte l of ql (l < 32) holds elements l (low
    // nibble) and l + 64 (high); byte l + 32 holds l + 32 and l + 96; qh[l] holds the top two
    // bits of elements l, l + 32, l + 64, l + 96 in bit pairs 0-1, 2-3, 4-5, 6-7.
    for (int h = 0; h < 2; ++h, y += 128) {
      const std::uint8_t* ql = b.ql + 64 * h;
      const std::uint8_t* qh = b.qh + 32 * h;
      const std::int8_t* sc = b.scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[s]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[s + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[s + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[s + 6]) * static_cast<float>(q4);
      }
    }
  }
}

// ---- Quantization.

// ggml's reference Q8_0: d = amax / 127, q = round half away from zero (roundf) of x / d.
void quantize_q8_0(const float* x, BlockQ8_0* blocks, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j)
      amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) {
      blocks[i].qs[j] = static_cast<std::int8_t>(std::round(x[j] * id));
    }
  }
}

// ggml's reference Q4_0: the element of largest magnitude, with its sign, maps to -8 exactly,
// so the asymmetric range [-8, 7] is used in full on that side; the truncating conversion of
// x * id + 8.5 is ggml's rounding, kept for bit-exactness.
void quantize_q4_0(const float* x, BlockQ4_0* blocks, std::int64_t nb) {
  constexpr int kHalf = kQK4_0 / 2;
  for (std::int64_t i = 0; i < nb; ++i, x += kQK4_0) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kHalf; ++j) {
      const auto lo = std::min<std::int8_t>(15, static_cast<std::int8_t>(x[j] * id + 8.5f));
      const auto hi = std::min<std::int8_t>(15, static_cast<std::int8_t>(x[j + kHalf] * id + 8.5f));
      blocks[i].qs[j] = static_cast<std::uint8_t>(lo | (hi << 4));
    }
  }
}

int round_clamped(float v, int lo, int hi) {
  return std::clamp(static_cast<int>(std::lrint(v)), lo, hi);
}

// Inverse of q4k_scale_min for sub-block j. REQUIRES: scale, min < 64; scales zeroed first.
void q4k_pack_scale_min(std::uint8_t* scales, int j, int scale, int min) {
  if (j < 4) {
    scales[j] = static_cast<std::uint8_t>(scales[j] | scale);
    scales[j + 4] = static_cast<std::uint8_t>(scales[j + 4] | min);
  } else {
    scales[j + 4] = static_cast<std::uint8_t>((scale & 0xF) | ((min & 0xF) << 4));
    scales[j - 4] = static_cast<std::uint8_t>(scales[j - 4] | ((scale >> 4) << 6));
    scales[j] = static_cast<std::uint8_t>(scales[j] | ((min >> 4) << 6));
  }
}

// One pass: each sub-block of 32 gets the affine map that spans [min(0, lo), hi] with 16
// levels; scale and min are then rounded to 6-bit multiples of the super-block's d and dmin,
// and the quants are chosen against those rounded values, so the only error beyond the
// half-step rounding is the scale rounding (at most d / 2 per step, d = max scale / 63).
void quantize_q4_k(const float* x, BlockQ4_K* blocks, std::int64_t nb) {
  constexpr int kSub = 8;
  constexpr int kSubLen = kQK_K / kSub;
  for (std::int64_t i = 0; i < nb; ++i, x += kQK_K) {
    BlockQ4_K& b = blocks[i];
    float scale[kSub];
    float min[kSub];  // Stored negated: the value subtracted, >= 0.
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int s = 0; s < kSub; ++s) {
      const float* xs = x + s * kSubLen;
      const auto [lo_it, hi_it] = std::minmax_element(xs, xs + kSubLen);
      const float lo = std::min(0.0f, *lo_it);
      scale[s] = (*hi_it - lo) / 15.0f;
      min[s] = -lo;
      max_scale = std::max(max_scale, scale[s]);
      max_min = std::max(max_min, min[s]);
    }
    b.d = fp32_to_fp16(max_scale / 63.0f);
    b.dmin = fp32_to_fp16(max_min / 63.0f);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    std::fill(std::begin(b.scales), std::end(b.scales), std::uint8_t{0});
    std::uint8_t levels[kQK_K];
    for (int s = 0; s < kSub; ++s) {
      const int ls = d > 0.0f ? round_clamped(scale[s] / d, 0, 63) : 0;
      const int lm = dmin > 0.0f ? round_clamped(min[s] / dmin, 0, 63) : 0;
      q4k_pack_scale_min(b.scales, s, ls, lm);
      const float step = d * static_cast<float>(ls);
      const float offset = dmin * static_cast<float>(lm);
      for (int l = 0; l < kSubLen; ++l) {
        const int e = s * kSubLen + l;
        levels[e] = step > 0.0f
                        ? static_cast<std::uint8_t>(round_clamped((x[e] + offset) / step, 0, 15))
                        : std::uint8_t{0};
      }
    }
    for (int pair = 0; pair < 4; ++pair) {
      for (int l = 0; l < 32; ++l) {
        b.qs[32 * pair + l] =
            static_cast<std::uint8_t>(levels[64 * pair + l] | (levels[64 * pair + 32 + l] << 4));
      }
    }
  }
}

// One pass: each sub-block of 16 gets the symmetric step amax / 31 (so quants span [-31, 31] of
// the available [-32, 31]); steps are rounded to 8-bit multiples of d = max step / 127, and the
// quants are chosen against the rounded steps.
void quantize_q6_k(const float* x, BlockQ6_K* blocks, std::int64_t nb) {
  constexpr int kSub = 16;
  constexpr int kSubLen = kQK_K / kSub;
  for (std::int64_t i = 0; i < nb; ++i, x += kQK_K) {
    BlockQ6_K& b = blocks[i];
    float step[kSub];
    float max_step = 0.0f;
    for (int s = 0; s < kSub; ++s) {
      float amax = 0.0f;
      for (int l = 0; l < kSubLen; ++l)
        amax = std::max(amax, std::fabs(x[s * kSubLen + l]));
      step[s] = amax / 31.0f;
      max_step = std::max(max_step, step[s]);
    }
    b.d = fp32_to_fp16(max_step / 127.0f);
    const float d = fp16_to_fp32(b.d);
    std::uint8_t levels[kQK_K];  // q + 32, in 0..63.
    for (int s = 0; s < kSub; ++s) {
      const int sc = d > 0.0f ? round_clamped(step[s] / d, 0, 127) : 0;
      b.scales[s] = static_cast<std::int8_t>(sc);
      const float rounded_step = d * static_cast<float>(sc);
      for (int l = 0; l < kSubLen; ++l) {
        const int e = s * kSubLen + l;
        const int q = rounded_step > 0.0f ? round_clamped(x[e] / rounded_step, -32, 31) : 0;
        levels[e] = static_cast<std::uint8_t>(q + 32);
      }
    }
    // The inverse of the layout dequantize_q6_k reads.
    for (int h = 0; h < 2; ++h) {
      const std::uint8_t* v = levels + 128 * h;
      std::uint8_t* ql = b.ql + 64 * h;
      std::uint8_t* qh = b.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<std::uint8_t>((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<std::uint8_t>((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
        qh[l] = static_cast<std::uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) |
                                          ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace

bool can_dequantize(GgmlType type) {
  // The one list of computable types is ggml_type.cc's table.
  return ggml_type_info(type).supported;
}

bool can_quantize(GgmlType type) {
  return can_dequantize(type);
}

void dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n) {
  const std::int64_t nb = block_count("dequantize_row", type, n, can_dequantize(type));
  switch (type) {
    case GgmlType::kF32:
      std::copy_n(static_cast<const float*>(src), n, dst);
      return;
    case GgmlType::kF16: {
      const auto* h = static_cast<const std::uint16_t*>(src);
      for (std::int64_t i = 0; i < n; ++i)
        dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case GgmlType::kBF16: {
      const auto* h = static_cast<const std::uint16_t*>(src);
      for (std::int64_t i = 0; i < n; ++i)
        dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case GgmlType::kQ8_0:
      return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case GgmlType::kQ4_0:
      return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case GgmlType::kQ4_K:
      return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
    case GgmlType::kQ6_K:
      return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
    default:
      precondition_failed("dequantize_row", type, n, "type not supported");
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, std::int64_t n) {
  const std::int64_t nb = block_count("quantize_row", type, n, can_quantize(type));
  switch (type) {
    case GgmlType::kF32:
      std::copy_n(src, n, static_cast<float*>(dst));
      return;
    case GgmlType::kF16: {
      auto* h = static_cast<std::uint16_t*>(dst);
      for (std::int64_t i = 0; i < n; ++i)
        h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case GgmlType::kBF16: {
      auto* h = static_cast<std::uint16_t*>(dst);
      for (std::int64_t i = 0; i < n; ++i)
        h[i] = fp32_to_bf16(src[i]);
      return;
    }
    case GgmlType::kQ8_0:
      return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case GgmlType::kQ4_0:
      return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case GgmlType::kQ4_K:
      return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
    case GgmlType::kQ6_K:
      return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
    default:
      precondition_failed("quantize_row", type, n, "type not supported");
  }
}

float dot_row(GgmlType type, const void* row, const float* x, std::int64_t n) {
  const std::int64_t nb = block_count("dot_row", type, n, can_dequantize(type));
  const GgmlTypeInfo info = ggml_type_info(type);
  // Dequantize a chunk of whole blocks at a time into a stack buffer. kChunk is a multiple of
  // every supported block size (1, 32, 256).
  constexpr std::int64_t kChunk = kQK_K;
  static_assert(kChunk % kQK8_0 == 0 && kChunk % kQK4_0 == 0);
  const std::int64_t blocks_per_chunk = kChunk / info.block_elements;
  const auto* bytes = static_cast<const unsigned char*>(row);
  float buffer[kChunk];
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  for (std::int64_t b = 0; b < nb; b += blocks_per_chunk) {
    const std::int64_t blocks = std::min(blocks_per_chunk, nb - b);
    const std::int64_t elements = blocks * info.block_elements;
    dequantize_row(type, bytes + b * static_cast<std::int64_t>(info.block_bytes), buffer, elements);
    const float* xs = x + b * info.block_elements;
    // Four independent partial sums, so the loop is not one long chain of dependent adds.
    std::int64_t i = 0;
    for (; i + 4 <= elements; i += 4) {
      for (int lane = 0; lane < 4; ++lane) {
        sums[lane] += static_cast<double>(buffer[i + lane]) * static_cast<double>(xs[i + lane]);
      }
    }
    for (; i < elements; ++i) {
      sums[0] += static_cast<double>(buffer[i]) * static_cast<double>(xs[i]);
    }
  }
  return static_cast<float>((sums[0] + sums[1]) + (sums[2] + sums[3]));
}

}  // namespace spillway::engine
