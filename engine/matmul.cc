#include "engine/matmul.h"

#include "engine/ops.h"
#include "engine/quant.h"

namespace spillway::engine {

namespace {
// Below this many multiply-adds, waking the other threads costs more than it saves.
constexpr std::int64_t kMinParallelWork = 1 << 16;
}  // namespace

void matmul(ThreadPool& pool, MatmulScratch& scratch, const Matrix& w, const float* x,
            std::int64_t n, float* y) {
  auto job = [&](int thread, int threads) {
    const std::int64_t begin = w.rows * thread / threads;
    const std::int64_t end = w.rows * (thread + 1) / threads;
    float* row = scratch.row_buffer(thread);
    for (std::int64_t r = begin; r < end; ++r) {
      const float* wr = row;
      if (w.type == GgmlType::kF32) {
        wr = reinterpret_cast<const float*>(w.row(r));
      } else {
        dequantize_row(w.type, w.row(r), row, w.cols);
      }
      for (std::int64_t t = 0; t < n; ++t) y[t * w.rows + r] = dot_f32(wr, x + t * w.cols, w.cols);
    }
  };
  if (w.rows * w.cols * n < kMinParallelWork) {
    job(0, 1);
  } else {
    pool.run(job);
  }
}

}  // namespace spillway::engine
