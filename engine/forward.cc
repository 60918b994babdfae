#include "engine/forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "engine/ops.h"
#include "engine/quant.h"

namespace spillway::engine {
namespace {

std::size_t sz(std::int64_t a, std::int64_t b) {
  return static_cast<std::size_t>(a) * static_cast<std::size_t>(b);
}

}  // namespace

ForwardPass::ForwardPass(const Model& model, KvCache& cache, ThreadPool& pool,
                         std::int32_t max_batch_tokens)
    : model_(model),
      cache_(cache),
      kernels_(kernel_table(selected_isa())),
      pool_(pool),
      max_tokens_(max_batch_tokens),
      scratch_(pool.size(),
               std::max({model.config().n_embd, model.config().n_ff, model.config().q_dim()}),
               max_batch_tokens) {
  const ModelConfig& c = model.config();
  const std::int64_t t = max_batch_tokens;
  x_.resize(sz(t, c.n_embd));
  xn_.resize(sz(t, std::max(c.n_embd, c.q_dim())));
  q_.resize(sz(t, c.q_dim()));
  k_.resize(sz(t, c.kv_dim()));
  v_.resize(sz(t, c.kv_dim()));
  att_.resize(sz(t, c.q_dim()));
  gate_.resize(sz(t, c.n_ff));
  up_.resize(sz(t, c.n_ff));
  scores_stride_ = static_cast<std::int64_t>(cache.num_blocks()) * cache.block_tokens();
  scores_.resize(sz(pool.size(), c.n_head / c.n_head_kv * scores_stride_));
  kv_blocks_stride_ = 2 * static_cast<std::int64_t>(cache.num_blocks());
  if (cache.type() == KvType::kQ8_0) {
    kv_blocks_q8_0_.resize(sz(pool.size(), kv_blocks_stride_));
  } else {
    kv_blocks_.resize(sz(pool.size(), kv_blocks_stride_));
  }
  last_hidden_.resize(sz(t, c.n_embd));
}

Status ForwardPass::validate(const ForwardBatch& batch, std::size_t logits_size) const {
  const ModelConfig& c = model_.config();
  const auto n = static_cast<std::int64_t>(batch.tokens.size());
  if (n == 0 || n > max_tokens_) {
    return make_error(ErrorCode::kInvalidArgument, "batch has {} tokens; the limit is {}", n,
                      max_tokens_);
  }
  // Every block table once, not once per token that uses it.
  for (const auto& table : batch.block_tables) {
    for (std::int32_t block : table) {
      if (block < 0 || block >= cache_.num_blocks()) {
        return make_error(ErrorCode::kInvalidArgument, "cache block {} does not exist", block);
      }
    }
  }
  std::size_t wanted = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const BatchToken& b = batch.tokens[static_cast<std::size_t>(i)];
    if (b.token < 0 || b.token >= c.n_vocab) {
      return make_error(ErrorCode::kInvalidArgument,
                        "token id {} is outside the vocabulary [0, {})", b.token, c.n_vocab);
    }
    if (b.seq < 0 || static_cast<std::size_t>(b.seq) >= batch.block_tables.size()) {
      return make_error(ErrorCode::kInvalidArgument, "batch entry {} names sequence {} of {}", i,
                        b.seq, batch.block_tables.size());
    }
    const auto& table = batch.block_tables[static_cast<std::size_t>(b.seq)];
    if (b.pos < 0 || b.pos / cache_.block_tokens() >= static_cast<std::int64_t>(table.size())) {
      return make_error(ErrorCode::kInvalidArgument,
                        "position {} of sequence {} is not covered by its {} cache blocks", b.pos,
                        b.seq, table.size());
    }
    // Positions of one sequence must be consecutive within the batch.
    for (std::int64_t j = i - 1; j >= 0; --j) {
      const BatchToken& prev = batch.tokens[static_cast<std::size_t>(j)];
      if (prev.seq != b.seq) continue;
      if (prev.pos + 1 != b.pos) {
        return make_error(ErrorCode::kInvalidArgument,
                          "sequence {} has position {} after {} in one batch", b.seq, b.pos,
                          prev.pos);
      }
      break;
    }
    if (b.want_logits) ++wanted;
  }
  if (logits_size < wanted * static_cast<std::size_t>(c.n_vocab)) {
    return make_error(ErrorCode::kInvalidArgument, "logits buffer holds {} floats; {} needed",
                      logits_size, wanted * static_cast<std::size_t>(c.n_vocab));
  }
  return Status();
}

void ForwardPass::attention(const ForwardBatch& batch, std::int32_t layer) {
  const ModelConfig& c = model_.config();
  const auto n = static_cast<std::int64_t>(batch.tokens.size());
  const std::int32_t group = c.n_head / c.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const std::int32_t bt = cache_.block_tokens();
  const KvType type = cache_.type();
  // One unit of work per token and KV head: the query heads of its group share the resolved
  // block table (and, in the kernels, the rows they read).
  // The threads take units in order from a shared counter, so sequences of different lengths
  // (and a thread that runs slower) do not leave one thread waiting on the other.
  const std::int64_t work = n * c.n_head_kv;
  std::atomic<std::int64_t> next{0};
  pool_.run([&](int thread, int /*threads*/) {
    float* scores = scores_.data() + thread * group * scores_stride_;
    // The group's query heads together, so each K and V row is read and converted once. `Row`
    // is the cache's unit (fp16 value or Q8_0 block), `units` a head's offset in them.
    const auto attend_group = [&]<typename Row>(const Row** k_blocks, std::int64_t t,
                                                std::int32_t kvh, std::int64_t units,
                                                auto scores_kernel, auto weighted_sum_kernel) {
      const BatchToken& b = batch.tokens[static_cast<std::size_t>(t)];
      const auto& table = batch.block_tables[static_cast<std::size_t>(b.seq)];
      const Row** v_blocks = k_blocks + cache_.num_blocks();
      const std::int64_t positions = b.pos + 1;
      const std::int64_t blocks = (positions + bt - 1) / bt;
      for (std::int64_t i = 0; i < blocks; ++i) {
        const std::int32_t block = table[static_cast<std::size_t>(i)];
        k_blocks[i] = static_cast<const Row*>(cache_.key(layer, block, 0)) + units;
        v_blocks[i] = static_cast<const Row*>(cache_.value(layer, block, 0)) + units;
      }
      const auto row_stride = static_cast<std::int64_t>(cache_.slot_stride_bytes() / sizeof(Row));
      const KvRowsOf<Row> k_rows{k_blocks, bt, row_stride, positions};
      const KvRowsOf<Row> v_rows{v_blocks, bt, row_stride, positions};
      const std::int64_t first = static_cast<std::int64_t>(kvh) * group * c.head_dim;
      scores_kernel(q_.data() + t * c.q_dim() + first, group, c.head_dim, scale, k_rows, scores,
                    scores_stride_);
      for (std::int32_t h = 0; h < group; ++h)
        kernels_.softmax(scores + h * scores_stride_, positions);
      weighted_sum_kernel(scores, scores_stride_, group, v_rows, c.head_dim,
                          att_.data() + t * c.q_dim() + first);
    };
    for (std::int64_t w = next.fetch_add(1, std::memory_order_relaxed); w < work;
         w = next.fetch_add(1, std::memory_order_relaxed)) {
      const std::int64_t t = w / c.n_head_kv;
      const std::int32_t kvh = static_cast<std::int32_t>(w % c.n_head_kv);
      const std::int64_t head = static_cast<std::int64_t>(kvh) * c.head_dim;
      if (type == KvType::kF16) {
        attend_group(kv_blocks_.data() + thread * kv_blocks_stride_, t, kvh, head,
                     kernels_.scores_f16, kernels_.weighted_sum_f16);
        continue;
      }
      if (type == KvType::kQ8_0) {
        attend_group(kv_blocks_q8_0_.data() + thread * kv_blocks_stride_, t, kvh, head / kQK8_0,
                     kernels_.scores_q8_0, kernels_.weighted_sum_q8_0);
        continue;
      }
      const BatchToken& b = batch.tokens[static_cast<std::size_t>(t)];
      const auto& table = batch.block_tables[static_cast<std::size_t>(b.seq)];
      const std::int64_t positions = b.pos + 1;
      for (std::int32_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* q = q_.data() + t * c.q_dim() + static_cast<std::int64_t>(h) * c.head_dim;
        float* out = att_.data() + t * c.q_dim() + static_cast<std::int64_t>(h) * c.head_dim;
        for (std::int32_t p = 0; p <= b.pos; ++p) {
          const auto* k = static_cast<const float*>(
              cache_.key(layer, table[static_cast<std::size_t>(p / bt)], p % bt));
          scores[p] = dot_f32(q, k + head, c.head_dim) * scale;
        }
        kernels_.softmax(scores, positions);
        std::fill(out, out + c.head_dim, 0.0f);
        for (std::int32_t p = 0; p <= b.pos; ++p) {
          const auto* v = static_cast<const float*>(
              cache_.value(layer, table[static_cast<std::size_t>(p / bt)], p % bt));
          const float a = scores[p];
          for (std::int32_t i = 0; i < c.head_dim; ++i)
            out[i] += a * v[head + i];
        }
      }
    }
  });
}

void ForwardPass::project(const float* x, std::int64_t n,
                          std::initializer_list<MatmulTarget> targets) {
  const std::span<const MatmulTarget> all(targets.begin(), targets.size());
  if (can_share_input(all)) {
    matmul_shared_input(pool_, scratch_, all, x, n);
    return;
  }
  // Mixed weight types (e.g. a Q4_K_M file's Q6_K attn_v beside Q4_K attn_q): one at a time.
  for (const MatmulTarget& t : all)
    matmul(pool_, scratch_, *t.w, x, n, t.y);
}

void ForwardPass::for_each_token(std::int64_t n,
                                 const std::function<void(std::int64_t)>& per_token) {
  // Below this, waking the other threads costs more than the elementwise work it would split.
  constexpr std::int64_t kMinParallelTokens = 4;
  if (n < kMinParallelTokens || pool_.size() == 1) {
    for (std::int64_t t = 0; t < n; ++t)
      per_token(t);
    return;
  }
  pool_.run([&](int thread, int threads) {
    for (std::int64_t t = n * thread / threads; t < n * (thread + 1) / threads; ++t)
      per_token(t);
  });
}

Status ForwardPass::run(const ForwardBatch& batch, std::span<float> logits) {
  SPW_TRY(validate(batch, logits.size()));
  const ModelConfig& c = model_.config();
  const auto n = static_cast<std::int64_t>(batch.tokens.size());
  const std::int64_t d = c.n_embd;
  const std::int32_t bt = cache_.block_tokens();

  for (std::int64_t t = 0; t < n; ++t) {
    const BatchToken& b = batch.tokens[static_cast<std::size_t>(t)];
    const Matrix& e = model_.token_embd();
    dequantize_row(e.type, e.row(b.token), x_.data() + t * d, d);
  }

  // Each layer's attention input norm; after the first layer it runs in the previous layer's
  // last pass over the tokens, beside the residual.
  const auto attn_norm = [&](std::int32_t l, std::int64_t t) {
    rms_norm(x_.data() + t * d, model_.layers()[static_cast<std::size_t>(l)].attn_norm.data(),
             c.rms_eps, d, xn_.data() + t * d);
  };
  if (c.n_layer > 0) for_each_token(n, [&](std::int64_t t) { attn_norm(0, t); });
  for (std::int32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = model_.layers()[static_cast<std::size_t>(l)];
    project(xn_.data(), n, {{&w.wq, q_.data()}, {&w.wk, k_.data()}, {&w.wv, v_.data()}});
    for_each_token(n, [&](std::int64_t t) {
      float* q = q_.data() + t * c.q_dim();
      float* k = k_.data() + t * c.kv_dim();
      float* v = v_.data() + t * c.kv_dim();
      if (c.attention_bias) {
        for (std::int32_t i = 0; i < c.q_dim(); ++i)
          q[i] += w.bq[static_cast<std::size_t>(i)];
        for (std::int32_t i = 0; i < c.kv_dim(); ++i) {
          k[i] += w.bk[static_cast<std::size_t>(i)];
          v[i] += w.bv[static_cast<std::size_t>(i)];
        }
      }
      const BatchToken& b = batch.tokens[static_cast<std::size_t>(t)];
      rope(q, c.n_head, b.pos, c, model_.rope_freq_factors());
      rope(k, c.n_head_kv, b.pos, c, model_.rope_freq_factors());
      const std::int32_t block =
          batch.block_tables[static_cast<std::size_t>(b.seq)][static_cast<std::size_t>(b.pos / bt)];
      void* kdst = cache_.key(l, block, b.pos % bt);
      void* vdst = cache_.value(l, block, b.pos % bt);
      if (cache_.type() == KvType::kF16) {
        kernels_.to_f16(k, static_cast<std::uint16_t*>(kdst), c.kv_dim());
        kernels_.to_f16(v, static_cast<std::uint16_t*>(vdst), c.kv_dim());
      } else if (cache_.type() == KvType::kQ8_0) {
        // Per 32 elements, within one head (check_kv_type).
        quantize_kv_q8_0(k, kdst, c.kv_dim());
        quantize_kv_q8_0(v, vdst, c.kv_dim());
      } else {
        std::memcpy(kdst, k, sizeof(float) * c.kv_dim());
        std::memcpy(vdst, v, sizeof(float) * c.kv_dim());
      }
    });
    attention(batch, l);
    matmul(pool_, scratch_, w.wo, att_.data(), n, xn_.data());
    // The residual, then the FFN's input norm, token by token.
    for_each_token(n, [&](std::int64_t t) {
      float* x = x_.data() + t * d;
      float* xn = xn_.data() + t * d;
      for (std::int64_t i = 0; i < d; ++i)
        x[i] += xn[i];
      rms_norm(x, w.ffn_norm.data(), c.rms_eps, d, xn);
    });
    project(xn_.data(), n, {{&w.ffn_gate, gate_.data()}, {&w.ffn_up, up_.data()}});
    const std::int64_t ff = c.n_ff;
    for_each_token(n, [&](std::int64_t t) {
      kernels_.swiglu(gate_.data() + t * ff, up_.data() + t * ff, ff, gate_.data() + t * ff);
    });
    matmul(pool_, scratch_, w.ffn_down, gate_.data(), n, xn_.data());
    for_each_token(n, [&](std::int64_t t) {
      float* x = x_.data() + t * d;
      const float* xn = xn_.data() + t * d;
      for (std::int64_t i = 0; i < d; ++i)
        x[i] += xn[i];
      if (l + 1 < c.n_layer) attn_norm(l + 1, t);
    });
  }

  std::int64_t wanted = 0;
  for (std::int64_t t = 0; t < n; ++t) {
    if (!batch.tokens[static_cast<std::size_t>(t)].want_logits) continue;
    rms_norm(x_.data() + t * d, model_.output_norm().data(), c.rms_eps, d,
             last_hidden_.data() + wanted * d);
    ++wanted;
  }
  if (wanted > 0)
    matmul(pool_, scratch_, model_.output(), last_hidden_.data(), wanted, logits.data());
  return Status();
}

}  // namespace spillway::engine
