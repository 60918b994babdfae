// y = W x for a batch of input vectors, split over a thread pool by rows of W. Each weight row
// is read (and dequantized) once per call and used for every vector in the batch, so batching
// tokens costs little extra memory traffic.
//
// Thread-safety: uses the pool; call from the pool's owning thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model.h"
#include "engine/thread_pool.h"

namespace spillway::engine {

// Per-thread scratch for dequantized rows, planned once for the widest matrix.
class MatmulScratch {
 public:
  MatmulScratch(int threads, std::int64_t max_cols)
      : stride_(max_cols), buf_(static_cast<std::size_t>(threads * max_cols)) {}
  [[nodiscard]] float* row_buffer(int thread) { return buf_.data() + thread * stride_; }
  [[nodiscard]] std::int64_t max_cols() const { return stride_; }

 private:
  std::int64_t stride_;
  std::vector<float> buf_;
};

// y[t * w.rows + r] = dot(row r of w, x[t * w.cols ...]) for t in [0, n).
// REQUIRES: scratch sized for pool.size() threads and at least w.cols columns.
void matmul(ThreadPool& pool, MatmulScratch& scratch, const Matrix& w, const float* x,
            std::int64_t n, float* y);

}  // namespace spillway::engine
