#include "engine/ops.h"

#include <cmath>

namespace spillway::engine {

void rms_norm(const float* x, const float* weight, float eps, std::int64_t n, float* out) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i)
    sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = x[i] * scale * weight[i];
}

void rope(float* x, std::int32_t heads, std::int32_t pos, const ModelConfig& config,
          std::span<const float> freq_factors) {
  const std::int32_t dims = config.rope_dim;
  // Angles as ggml computes them: theta_i = pos * base^(-2i/dims), the power taken by repeated
  // multiplication in float, then divided by the optional frequency factor.
  const float theta_scale = std::pow(config.rope_freq_base, -2.0f / static_cast<float>(dims));
  float theta = static_cast<float>(pos);
  for (std::int32_t i = 0; i < dims / 2; ++i) {
    const float ff = freq_factors.empty() ? 1.0f : freq_factors[static_cast<std::size_t>(i)];
    const float angle = theta / ff;
    const float c = std::cos(angle);
    const float s = std::sin(angle);
    for (std::int32_t h = 0; h < heads; ++h) {
      float* head = x + static_cast<std::int64_t>(h) * config.head_dim;
      const std::int32_t a = config.rope_mode == RopeMode::kNormal ? 2 * i : i;
      const std::int32_t b = config.rope_mode == RopeMode::kNormal ? 2 * i + 1 : i + dims / 2;
      const float x0 = head[a];
      const float x1 = head[b];
      head[a] = x0 * c - x1 * s;
      head[b] = x0 * s + x1 * c;
    }
    theta *= theta_scale;
  }
}

void softmax(float* x, std::int64_t n) {
  float max = x[0];
  for (std::int64_t i = 1; i < n; ++i)
    max = std::fmax(max, x[i]);
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (std::int64_t i = 0; i < n; ++i)
    x[i] *= inv;
}

void swiglu(const float* gate, const float* up, std::int64_t n, float* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float dot_f32(const float* x, const float* y, std::int64_t n) {
  float acc[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j)
      acc[j] += x[i + j] * y[i + j];
  }
  float tail = 0;
  for (; i < n; ++i)
    tail += x[i] * y[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

}  // namespace spillway::engine
