// The optimized forward pass against a deliberately naive one written here: float64 math,
// weights dequantized by the scalar reference, attention recomputed over the whole prefix with
// no cache. Covers Llama (normal RoPE) and Qwen2 (biases, NeoX RoPE).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/forward.h"
#include "engine/quant.h"

#include "model_fixture.h"

namespace spillway::engine {
namespace {

using Vec = std::vector<double>;

Vec matvec(const Matrix& w, const Vec& x) {
  std::vector<float> row(static_cast<std::size_t>(w.cols));
  Vec y(static_cast<std::size_t>(w.rows));
  for (std::int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, w.row(r), row.data(), w.cols);
    double acc = 0;
    for (std::int64_t i = 0; i < w.cols; ++i)
      acc += row[i] * x[i];
    y[r] = acc;
  }
  return y;
}

Vec rmsnorm(const Vec& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (double v : x)
    ss += v * v;
  const double s = 1.0 / std::sqrt(ss / x.size() + eps);
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    y[i] = x[i] * s * w[i];
  return y;
}

void rope_ref(Vec& x, int heads, int pos, const ModelConfig& c) {
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < c.rope_dim / 2; ++i) {
      const double angle =
          pos * std::pow(static_cast<double>(c.rope_freq_base), -2.0 * i / c.rope_dim);
      const int a = h * c.head_dim + (c.rope_mode == RopeMode::kNormal ? 2 * i : i);
      const int b =
          h * c.head_dim + (c.rope_mode == RopeMode::kNormal ? 2 * i + 1 : i + c.rope_dim / 2);
      const double x0 = x[a], x1 = x[b];
      x[a] = x0 * std::cos(angle) - x1 * std::sin(angle);
      x[b] = x0 * std::sin(angle) + x1 * std::cos(angle);
    }
  }
}

void add(Vec& x, const std::vector<float>& b) {
  for (std::size_t i = 0; i < b.size(); ++i)
    x[i] += b[i];
}

// Next-token logits after `tokens`.
Vec reference_logits(const Model& m, const std::vector<std::int32_t>& tokens) {
  const ModelConfig& c = m.config();
  const std::size_t n = tokens.size();
  std::vector<Vec> x(n);
  std::vector<float> row(static_cast<std::size_t>(c.n_embd));
  for (std::size_t t = 0; t < n; ++t) {
    dequantize_row(m.token_embd().type, m.token_embd().row(tokens[t]), row.data(), c.n_embd);
    x[t].assign(row.begin(), row.end());
  }
  for (const LayerWeights& w : m.layers()) {
    std::vector<Vec> q(n), k(n), v(n);
    for (std::size_t t = 0; t < n; ++t) {
      const Vec xn = rmsnorm(x[t], w.attn_norm, c.rms_eps);
      q[t] = matvec(w.wq, xn);
      k[t] = matvec(w.wk, xn);
      v[t] = matvec(w.wv, xn);
      add(q[t], w.bq);
      add(k[t], w.bk);
      add(v[t], w.bv);
      rope_ref(q[t], c.n_head, static_cast<int>(t), c);
      rope_ref(k[t], c.n_head_kv, static_cast<int>(t), c);
    }
    for (std::size_t t = 0; t < n; ++t) {
      Vec att(static_cast<std::size_t>(c.q_dim()), 0.0);
      for (int h = 0; h < c.n_head; ++h) {
        const int kvh = h / (c.n_head / c.n_head_kv);
        Vec s(t + 1);
        double mx = -1e300;
        for (std::size_t p = 0; p <= t; ++p) {
          double d = 0;
          for (int i = 0; i < c.head_dim; ++i)
            d += q[t][h * c.head_dim + i] * k[p][kvh * c.head_dim + i];
          s[p] = d / std::sqrt(static_cast<double>(c.head_dim));
          mx = std::max(mx, s[p]);
        }
        double z = 0;
        for (double& e : s)
          z += (e = std::exp(e - mx));
        for (std::size_t p = 0; p <= t; ++p) {
          for (int i = 0; i < c.head_dim; ++i)
            att[h * c.head_dim + i] += s[p] / z * v[p][kvh * c.head_dim + i];
        }
      }
      const Vec o = matvec(w.wo, att);
      for (std::size_t i = 0; i < o.size(); ++i)
        x[t][i] += o[i];
      const Vec xn = rmsnorm(x[t], w.ffn_norm, c.rms_eps);
      const Vec g = matvec(w.ffn_gate, xn), u = matvec(w.ffn_up, xn);
      Vec h(g.size());
      for (std::size_t i = 0; i < g.size(); ++i)
        h[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      const Vec d = matvec(w.ffn_down, h);
      for (std::size_t i = 0; i < d.size(); ++i)
        x[t][i] += d[i];
    }
  }
  const std::vector<float> norm(m.output_norm().begin(), m.output_norm().end());
  return matvec(m.output(), rmsnorm(x[n - 1], norm, c.rms_eps));
}

std::vector<float> engine_logits(const Model& m, const std::vector<std::int32_t>& tokens,
                                 KvType kv_type) {
  auto cache = KvCache::create(m.config(), {16, 4, kv_type});
  ThreadPool pool(2);
  ForwardPass fwd(m, *cache, pool, 8);
  std::vector<std::int32_t> table = {3, 0, 2, 1};
  const std::span<const std::int32_t> tables[] = {table};
  std::vector<float> logits(static_cast<std::size_t>(m.config().n_vocab));
  // Prefill in two uneven chunks, then one token: exercises cache reads across steps.
  std::vector<BatchToken> batch;
  const auto n = static_cast<std::int32_t>(tokens.size());
  for (std::int32_t start : {0, 5, n - 1}) {
    batch.clear();
    const std::int32_t end = start == 0 ? 5 : (start == 5 ? n - 1 : n);
    for (std::int32_t p = start; p < end; ++p)
      batch.push_back({0, p, tokens[p], p == n - 1});
    EXPECT_TRUE(fwd.run({batch, tables}, logits).ok());
  }
  return logits;
}

void expect_close(const Model& m, const std::vector<std::int32_t>& tokens, double rel_tol,
                  KvType kv_type = KvType::kF32) {
  const Vec ref = reference_logits(m, tokens);
  const std::vector<float> got = engine_logits(m, tokens, kv_type);
  double max_ref = 0, max_err = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_err = std::max(max_err, std::fabs(ref[i] - got[i]));
  }
  EXPECT_LT(max_err, rel_tol * max_ref) << "max |err| " << max_err << " of max |logit| " << max_ref;
  // And the same greedy choice.
  const auto ref_top = std::max_element(ref.begin(), ref.end()) - ref.begin();
  const auto got_top = std::max_element(got.begin(), got.end()) - got.begin();
  EXPECT_EQ(ref_top, got_top);
}

const std::vector<std::int32_t> kTokens = {1,   450, 4996, 17354, 1701,  29916,
                                           432, 975, 278,  17366, 11203, 29889};

TEST(ReferenceForward, Stories260K) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::stories_gguf());
  auto m = spillway::testing::load_model_or_die({spillway::testing::stories_gguf(), ""});
  expect_close(*m, {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315}, 1e-4);
}

TEST(ReferenceForward, TinyLlamaF32) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  auto m = spillway::testing::load_model_or_die(
      {spillway::testing::tiny_model_path(GgmlType::kF32), ""});
  expect_close(*m, kTokens, 1e-4);
}

TEST(ReferenceForward, TinyQwen2F32) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  auto m = spillway::testing::load_model_or_die(
      {spillway::testing::tiny_model_path(GgmlType::kF32, 7, "qwen2"), ""});
  ASSERT_EQ(m->config().arch, Architecture::kQwen2);
  ASSERT_EQ(m->config().rope_mode, RopeMode::kNeox);
  ASSERT_FALSE(m->layers()[0].bq.empty());
  expect_close(*m, kTokens, 1e-4);
}

// Both tiny architectures (Llama, Qwen2) with their cache in `kv_type`.
void expect_tiny_models_close(double rel_tol, KvType kv_type) {
  for (const char* arch : {"llama", "qwen2"}) {
    SCOPED_TRACE(arch);
    auto m = spillway::testing::load_model_or_die(
        {spillway::testing::tiny_model_path(GgmlType::kF32, 7, arch), ""});
    expect_close(*m, kTokens, rel_tol, kv_type);
  }
}

// An F16 KV cache rounds keys and values to 11 significant bits.
TEST(ReferenceForward, F16KvCache) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  expect_tiny_models_close(2e-3, KvType::kF16);
}

// A Q8_0 KV cache moves each key and value element by up to half a step (amax / 254 of its
// 32-element block): ~2e-4 of the largest logit here against F16's ~8e-6, within the same
// bound.
TEST(ReferenceForward, Q8_0KvCache) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  expect_tiny_models_close(2e-3, KvType::kQ8_0);
}

// Quantized weights: the kernels quantize activations to int8, so the tolerance is wider.
TEST(ReferenceForward, TinyLlamaQuantized) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  for (GgmlType t :
       {GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    SCOPED_TRACE(std::string(ggml_type_info(t).name));
    auto m = spillway::testing::load_model_or_die({spillway::testing::tiny_model_path(t), ""});
    expect_close(*m, kTokens, t == GgmlType::kF16 ? 1e-3 : 3e-2);
  }
}

}  // namespace
}  // namespace spillway::engine
