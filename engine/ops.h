// Reference implementations of the transformer's element-wise and reduction operations, in
// plain scalar C++. The forward pass uses them directly; faster kernels are tested against them.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>

#include "engine/model_config.h"

namespace spillway::engine {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]. The sum of squares is accumulated in
// double, as ggml does. `out` may alias `x`.
void rms_norm(const float* x, const float* weight, float eps, std::int64_t n, float* out);

// Rotates the first config.rope_dim elements of each of `heads` heads (stride head_dim) at
// `pos`, in place, pairing elements as config.rope_mode says. `freq_factors` (rope_dim / 2
// divisors, Llama 3) may be empty.
void rope(float* x, std::int32_t heads, std::int32_t pos, const ModelConfig& config,
          std::span<const float> freq_factors);

// In-place softmax over x[0..n); returns nothing, sums in double.
void softmax(float* x, std::int64_t n);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). `out` may alias `gate`.
void swiglu(const float* gate, const float* up, std::int64_t n, float* out);

// sum x[i] * y[i] with eight float accumulators (a fixed order, so results are deterministic).
[[nodiscard]] float dot_f32(const float* x, const float* y, std::int64_t n);

}  // namespace spillway::engine
