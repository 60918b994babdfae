// The CPU forward pass of a Llama-family transformer over a batch of tokens from any number of
// sequences, reading and writing their keys and values in the block-organized KV cache.
//
// All buffers are planned at construction for `max_batch_tokens`; `run` allocates nothing.
//
// Thread-safety: one ForwardPass is driven by one thread at a time (the engine's step thread);
// it uses the thread pool for the heavy loops.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <vector>

#include "core/status.h"

#include "engine/batch.h"
#include "engine/kernels.h"
#include "engine/kv_cache.h"
#include "engine/matmul.h"
#include "engine/model.h"
#include "engine/quant_blocks.h"
#include "engine/thread_pool.h"

namespace spillway::engine {

class ForwardPass {
 public:
  // REQUIRES: model, cache and pool outlive this object.
  ForwardPass(const Model& model, KvCache& cache, ThreadPool& pool, std::int32_t max_batch_tokens);

  [[nodiscard]] std::int32_t max_batch_tokens() const { return max_tokens_; }

  // Runs the batch; for each entry with want_logits, in batch order, writes n_vocab logits
  // to `logits` (which must hold that many). Errors (kInvalidArgument) for a batch that breaks
  // ForwardBatch's requirements: too many tokens, bad token id, bad sequence index, positions
  // not covered by the block table, too small a logits buffer.
  [[nodiscard]] Status run(const ForwardBatch& batch, std::span<float> logits);

 private:
  [[nodiscard]] Status validate(const ForwardBatch& batch, std::size_t logits_size) const;
  void attention(const ForwardBatch& batch, std::int32_t layer);
  // y_i = W_i x for products that share their input x ([n][cols]).
  void project(const float* x, std::int64_t n, std::initializer_list<MatmulTarget> targets);
  // Runs per_token(t) for t in [0, n): split over the pool for batches of at least
  // kMinParallelTokens tokens (each token's work is independent), on this thread otherwise.
  void for_each_token(std::int64_t n, const std::function<void(std::int64_t)>& per_token);

  const Model& model_;
  KvCache& cache_;
  const KernelTable& kernels_;
  ThreadPool& pool_;
  std::int32_t max_tokens_;
  MatmulScratch scratch_;
  // Activations, [max_tokens][width].
  std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_;
  std::vector<float> scores_;  // Per thread and query head of a group: scores over a sequence.
  std::int64_t scores_stride_ = 0;
  // Per thread: a sequence's block table resolved to one KV head's key and value rows, in the
  // cache's unit (only the vector of the cache's type is used).
  std::vector<const std::uint16_t*> kv_blocks_;
  std::vector<const BlockQ8_0*> kv_blocks_q8_0_;
  std::int64_t kv_blocks_stride_ = 0;
  std::vector<float> last_hidden_;  // Normalized final states of tokens that want logits.
};

}  // namespace spillway::engine
