// y = W x for a batch of input vectors, split over a thread pool by contiguous ranges of rows
// (a few per thread, taken from a shared counter, so a slower core takes fewer).
// The kernels (engine/kernels.h) read each weight row once per call and use it for every
// vector of the batch, so batching tokens costs little extra memory traffic. For quantized
// weights the activations are quantized to int8 once per call, on the calling thread, into
// the scratch.
//
// Thread-safety: uses the pool; call from the pool's owning thread only. A MatmulScratch
// belongs to one caller at a time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/kernels.h"
#include "engine/model.h"
#include "engine/thread_pool.h"

namespace spillway::engine {

// Buffers for the quantized activations, planned once for the widest matrix input and the
// largest batch. Calls with more than max_tokens vectors still work, in chunks of max_tokens
// (each chunk reads the weights again), so size max_tokens to the forward pass's batch.
class MatmulScratch {
 public:
  // REQUIRES: threads >= 1, max_cols >= 0, max_tokens >= 1.
  MatmulScratch(int threads, std::int64_t max_cols, std::int64_t max_tokens = 1);

  [[nodiscard]] std::int64_t max_cols() const { return max_cols_; }
  [[nodiscard]] std::int64_t max_tokens() const { return max_tokens_; }
  [[nodiscard]] int threads() const { return threads_; }

  // Quantizes x[0..n)[cols] as `format` with `kernels`, and returns the view the kernels read.
  // REQUIRES: n <= max_tokens(), cols <= max_cols(), format != ActFormat::kFloat.
  QuantizedActs quantize(const KernelTable& kernels, ActFormat format, const float* x,
                         std::int64_t n, std::int64_t cols);

 private:
  int threads_;
  std::int64_t max_cols_;
  std::int64_t max_tokens_;
  std::int64_t q_stride_;  // Bytes per token, a multiple of 64.
  std::vector<std::int8_t> q_storage_;
  std::int8_t* q_ = nullptr;  // 64-byte aligned, inside q_storage_.
  std::vector<float> d_;
  std::vector<std::int32_t> sums32_;
  std::vector<std::int16_t> sums16_;
};

// y[t * w.rows + r] = dot(row r of w, x[t * w.cols ...]) for t in [0, n), with the kernels of
// selected_isa(); from w.panels when set and the level has a panel kernel for w.type, else from
// w.data. REQUIRES: has_kernel(w.type); scratch sized for at least w.cols columns; x and y do
// not overlap.
void matmul(ThreadPool& pool, MatmulScratch& scratch, const Matrix& w, const float* x,
            std::int64_t n, float* y);

// Several products of one input: y_i = W_i x (Q, K and V of a layer; gate and up). The input is
// quantized once and the products run as one job on the pool, which halves the per-product
// overhead of a decode step.
inline constexpr std::size_t kMaxSharedTargets = 4;
struct MatmulTarget {
  const Matrix* w;
  float* y;  // y[t * w->rows + r].
};
// True when `targets` (1 to kMaxSharedTargets) share column count, weight type and layout
// (all repacked into panels or none).
[[nodiscard]] bool can_share_input(std::span<const MatmulTarget> targets);
// REQUIRES: can_share_input(targets); the other requirements of matmul for each target.
void matmul_shared_input(ThreadPool& pool, MatmulScratch& scratch,
                         std::span<const MatmulTarget> targets, const float* x, std::int64_t n);
void matmul_shared_input(ThreadPool& pool, MatmulScratch& scratch, const KernelTable& kernels,
                         std::span<const MatmulTarget> targets, const float* x, std::int64_t n);

// The same with an explicit kernel table (tests, benchmarks).
// REQUIRES: kernels is the table of a level the machine supports.
void matmul(ThreadPool& pool, MatmulScratch& scratch, const KernelTable& kernels, const Matrix& w,
            const float* x, std::int64_t n, float* y);

}  // namespace spillway::engine
