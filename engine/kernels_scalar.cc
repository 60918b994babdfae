// Portable kernels: the int8 / float algorithms of kernels.h in plain C++. They define the
// activation quantization every level reproduces bit for bit, and are the fallback on CPUs
// without AVX2.
#include <algorithm>
#include <cmath>

#include "engine/half.h"
#include "engine/kernels.h"
#include "engine/ops.h"
#include "engine/quant_blocks.h"
#include "engine/quant_repack.h"

namespace spillway::engine {
namespace {

// Scale and inverse scale of a block whose largest magnitude is amax.
void q8_scale(float amax, float& d, float& id) {
  d = amax / 127.0f;
  id = amax > 0.0f ? 127.0f / amax : 0.0f;
}

void quantize_q8_32(const float* x, std::int64_t cols, std::int8_t* q, float* d,
                    std::int32_t* sums) {
  for (std::int64_t b = 0; b < cols / 32; ++b, x += 32, q += 32) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i)
      amax = std::max(amax, std::fabs(x[i]));
    float id = 0.0f;
    q8_scale(amax, d[b], id);
    std::int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      q[i] = static_cast<std::int8_t>(std::nearbyint(x[i] * id));
      sum += q[i];
    }
    sums[b] = sum;
  }
}

void quantize_q8_256(const float* x, std::int64_t cols, std::int8_t* q, float* d,
                     std::int16_t* sums) {
  for (std::int64_t b = 0; b < cols / kQK_K; ++b, x += kQK_K, q += kQK_K) {
    float amax = 0.0f;
    for (int i = 0; i < kQK_K; ++i)
      amax = std::max(amax, std::fabs(x[i]));
    float id = 0.0f;
    q8_scale(amax, d[b], id);
    for (int s = 0; s < kQK_K / 16; ++s) {
      int sum = 0;
      for (int i = 16 * s; i < 16 * s + 16; ++i) {
        q[i] = static_cast<std::int8_t>(std::nearbyint(x[i] * id));
        sum += q[i];
      }
      sums[b * 16 + s] = static_cast<std::int16_t>(sum);
    }
  }
}

template <typename WidenFn>
void float_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1, WidenFn widen) {
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = a.w + static_cast<std::size_t>(r) * a.row_bytes;
    for (std::int64_t t = 0; t < a.n; ++t) {
      const float* x = a.x + t * a.cols;
      float acc[8] = {};
      for (std::int64_t i = 0; i < a.cols; i += 8) {
        for (int l = 0; l < 8 && i + l < a.cols; ++l)
          acc[l] += widen(row, i + l) * x[i + l];
      }
      a.y[t * a.y_stride + r] =
          ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
  }
}

void f32_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  float_rows(a, r0, r1, [](const std::byte* row, std::int64_t i) {
    return reinterpret_cast<const float*>(row)[i];
  });
}
void f16_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  float_rows(a, r0, r1, [](const std::byte* row, std::int64_t i) {
    return fp16_to_fp32(reinterpret_cast<const std::uint16_t*>(row)[i]);
  });
}
void bf16_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  float_rows(a, r0, r1, [](const std::byte* row, std::int64_t i) {
    return bf16_to_fp32(reinterpret_cast<const std::uint16_t*>(row)[i]);
  });
}

// Calls block_dot(row, t) -> float for every row and token and stores the results.
template <typename RowDot>
void quant_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1, RowDot row_dot) {
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = a.w + static_cast<std::size_t>(r) * a.row_bytes;
    for (std::int64_t t = 0; t < a.n; ++t)
      a.y[t * a.y_stride + r] = row_dot(row, t);
  }
}

void q8_0_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  quant_rows(a, r0, r1, [&](const std::byte* row, std::int64_t t) {
    const auto* w = reinterpret_cast<const BlockQ8_0*>(row);
    const std::int8_t* q = a.xq.q + t * a.xq.q_stride;
    const float* d = a.xq.d + t * a.xq.d_stride;
    float acc = 0.0f;
    for (std::int64_t b = 0; b < a.cols / kQK8_0; ++b, q += kQK8_0) {
      std::int32_t dot = 0;
      for (int i = 0; i < kQK8_0; ++i)
        dot += w[b].qs[i] * q[i];
      acc += fp16_to_fp32(w[b].d) * d[b] * static_cast<float>(dot);
    }
    return acc;
  });
}

void q4_0_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  quant_rows(a, r0, r1, [&](const std::byte* row, std::int64_t t) {
    const auto* w = reinterpret_cast<const BlockQ4_0*>(row);
    const std::int8_t* q = a.xq.q + t * a.xq.q_stride;
    const float* d = a.xq.d + t * a.xq.d_stride;
    const auto* sums = static_cast<const std::int32_t*>(a.xq.sums) + t * a.xq.sums_stride;
    float acc = 0.0f;
    for (std::int64_t b = 0; b < a.cols / kQK4_0; ++b, q += kQK4_0) {
      std::int32_t dot = 0;
      for (int i = 0; i < 16; ++i)
        dot += (w[b].qs[i] & 0xF) * q[i] + (w[b].qs[i] >> 4) * q[i + 16];
      acc += fp16_to_fp32(w[b].d) * d[b] * static_cast<float>(dot - 8 * sums[b]);
    }
    return acc;
  });
}

void q4_k_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  quant_rows(a, r0, r1, [&](const std::byte* row, std::int64_t t) {
    const auto* w = reinterpret_cast<const BlockQ4_K*>(row);
    const std::int8_t* q = a.xq.q + t * a.xq.q_stride;
    const float* d = a.xq.d + t * a.xq.d_stride;
    const auto* sums = static_cast<const std::int16_t*>(a.xq.sums) + t * a.xq.sums_stride;
    float acc = 0.0f;
    for (std::int64_t b = 0; b < a.cols / kQK_K; ++b, q += kQK_K, sums += 16) {
      std::int32_t scaled = 0;  // sum_j sc_j * dot_j
      std::int32_t mins = 0;    // sum_j m_j * sum of x over sub-block j
      for (int j = 0; j < 8; ++j) {
        const ScaleMin sm = q4k_scale_min(w[b].scales, j);
        const std::uint8_t* qs = w[b].qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        std::int32_t dot = 0;
        for (int i = 0; i < 32; ++i)
          dot += ((qs[i] >> shift) & 0xF) * q[32 * j + i];
        scaled += sm.scale * dot;
        mins += sm.min * (sums[2 * j] + sums[2 * j + 1]);
      }
      acc += d[b] * (fp16_to_fp32(w[b].d) * static_cast<float>(scaled) -
                     fp16_to_fp32(w[b].dmin) * static_cast<float>(mins));
    }
    return acc;
  });
}

void q6_k_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  quant_rows(a, r0, r1, [&](const std::byte* row, std::int64_t t) {
    const auto* w = reinterpret_cast<const BlockQ6_K*>(row);
    const std::int8_t* q = a.xq.q + t * a.xq.q_stride;
    const float* d = a.xq.d + t * a.xq.d_stride;
    const auto* sums = static_cast<const std::int16_t*>(a.xq.sums) + t * a.xq.sums_stride;
    float acc = 0.0f;
    for (std::int64_t b = 0; b < a.cols / kQK_K; ++b, q += kQK_K, sums += 16) {
      std::int32_t dots[16] = {};
      for (int h = 0; h < 2; ++h) {
        const std::uint8_t* ql = w[b].ql + 64 * h;
        const std::uint8_t* qh = w[b].qh + 32 * h;
        const std::int8_t* x = q + 128 * h;
        for (int l = 0; l < 32; ++l) {
          const int s = 8 * h + l / 16;
          dots[s] += ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) * x[l];
          dots[s + 2] += ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) * x[l + 32];
          dots[s + 4] += ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) * x[l + 64];
          dots[s + 6] += ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) * x[l + 96];
        }
      }
      std::int32_t total = 0;
      for (int s = 0; s < 16; ++s)
        total += w[b].scales[s] * (dots[s] - 32 * sums[s]);
      acc += d[b] * fp16_to_fp32(w[b].d) * static_cast<float>(total);
    }
    return acc;
  });
}

// The panel layouts (engine/quant_repack.h), computed exactly as the row kernels above compute
// the same rows: these give bit-identical results, which the tests use to check the repacking.
// Calls row_dot(panel, lane, t) for every valid row and token.
template <typename RowDot>
void panel_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1, RowDot row_dot) {
  const std::size_t panel_bytes = a.row_bytes * static_cast<std::size_t>(kPanelRows);
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* panel = a.w + static_cast<std::size_t>(r / kPanelRows) * panel_bytes;
    for (std::int64_t t = 0; t < a.n; ++t)
      a.y[t * a.y_stride + r] = row_dot(panel, r % kPanelRows, t);
  }
}

void f16_x16_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  panel_rows(a, r0, r1, [&](const std::byte* panel, std::int64_t lane, std::int64_t t) {
    const auto* w = reinterpret_cast<const std::uint16_t*>(panel) + lane;
    const float* x = a.x + t * a.cols;
    float acc[8] = {};
    for (std::int64_t i = 0; i < a.cols; i += 8) {
      for (int l = 0; l < 8 && i + l < a.cols; ++l)
        acc[l] += fp16_to_fp32(w[(i + l) * kPanelRows]) * x[i + l];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  });
}

// Q8_0 and Q4_0 panels: quant group g of block b for `lane` starts at byte
// b * 16 * kQuantBytes + 64 g + 4 lane; the scales follow all quants.
template <int kQuantBytes>
struct QuantPanel {
  const std::uint8_t* quants;
  const std::uint16_t* scales;
  QuantPanel(const std::byte* panel, std::int64_t nb)
      : quants(reinterpret_cast<const std::uint8_t*>(panel)),
        scales(reinterpret_cast<const std::uint16_t*>(panel + nb * kPanelRows * kQuantBytes)) {}
  [[nodiscard]] std::uint8_t byte(std::int64_t b, std::int64_t lane, int k) const {
    return quants[b * kPanelRows * kQuantBytes + 64 * (k / 4) + 4 * lane + k % 4];
  }
  [[nodiscard]] float scale(std::int64_t b, std::int64_t lane) const {
    return fp16_to_fp32(scales[b * kPanelRows + lane]);
  }
};

void q8_0_x16_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  const std::int64_t nb = a.cols / kQK8_0;
  panel_rows(a, r0, r1, [&](const std::byte* panel, std::int64_t lane, std::int64_t t) {
    const QuantPanel<kQK8_0> p(panel, nb);
    const std::int8_t* q = a.xq.q + t * a.xq.q_stride;
    const float* d = a.xq.d + t * a.xq.d_stride;
    float acc = 0.0f;
    for (std::int64_t b = 0; b < nb; ++b, q += kQK8_0) {
      std::int32_t dot = 0;
      for (int i = 0; i < kQK8_0; ++i)
        dot += static_cast<std::int8_t>(p.byte(b, lane, i) ^ 0x80) * q[i];
      acc += p.scale(b, lane) * d[b] * static_cast<float>(dot);
    }
    return acc;
  });
}

void q4_0_x16_rows(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  const std::int64_t nb = a.cols / kQK4_0;
  panel_rows(a, r0, r1, [&](const std::byte* panel, std::int64_t lane, std::int64_t t) {
    const QuantPanel<kQK4_0 / 2> p(panel, nb);
    const std::int8_t* q = a.xq.q + t * a.xq.q_stride;
    const float* d = a.xq.d + t * a.xq.d_stride;
    const auto* sums = static_cast<const std::int32_t*>(a.xq.sums) + t * a.xq.sums_stride;
    float acc = 0.0f;
    for (std::int64_t b = 0; b < nb; ++b, q += kQK4_0) {
      std::int32_t dot = 0;
      for (int i = 0; i < 16; ++i) {
        const std::uint8_t v = p.byte(b, lane, i);
        dot += (v & 0xF) * q[i] + (v >> 4) * q[i + 16];
      }
      acc += p.scale(b, lane) * d[b] * static_cast<float>(dot - 8 * sums[b]);
    }
    return acc;
  });
}

float dot_f16(const float* x, const std::uint16_t* y, std::int64_t n) {
  float acc = 0.0f;
  for (std::int64_t i = 0; i < n; ++i)
    acc += x[i] * fp16_to_fp32(y[i]);
  return acc;
}

void axpy_f16(float a, const std::uint16_t* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    y[i] += a * fp16_to_fp32(x[i]);
}

void to_f16(const float* x, std::uint16_t* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    y[i] = fp32_to_fp16(x[i]);
}

// One Q8_0 row of n (a multiple of 32) elements, each taken as its exact float fp16(d) * q.
float dot_q8_0(const float* x, const BlockQ8_0* y, std::int64_t n) {
  float acc = 0.0f;
  for (std::int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = fp16_to_fp32(y[b].d);
    for (int i = 0; i < kQK8_0; ++i)
      acc += x[b * kQK8_0 + i] * (d * static_cast<float>(y[b].qs[i]));
  }
  return acc;
}

void axpy_q8_0(float a, const BlockQ8_0* x, float* y, std::int64_t n) {
  for (std::int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = fp16_to_fp32(x[b].d);
    for (int i = 0; i < kQK8_0; ++i)
      y[b * kQK8_0 + i] += a * (d * static_cast<float>(x[b].qs[i]));
  }
}

constexpr KernelTable kTable{IsaLevel::kScalar,
                             quantize_q8_32,
                             quantize_q8_256,
                             f32_rows,
                             f16_rows,
                             bf16_rows,
                             q8_0_rows,
                             q4_0_rows,
                             q4_k_rows,
                             q6_k_rows,
                             f16_x16_rows,
                             q8_0_x16_rows,
                             q4_0_x16_rows,
                             dot_f16,
                             axpy_f16,
                             to_f16,
                             scores_by_rows<std::uint16_t, dot_f16>,
                             weighted_sum_by_rows<std::uint16_t, axpy_f16>,
                             scores_by_rows<BlockQ8_0, dot_q8_0>,
                             weighted_sum_by_rows<BlockQ8_0, axpy_q8_0>,
                             softmax,  // engine/ops.h's scalar reference.
                             swiglu};

}  // namespace

const KernelTable& scalar_kernels() {
  return kTable;
}

}  // namespace spillway::engine
