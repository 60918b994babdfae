#include "engine/matmul.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "engine/quant_blocks.h"

namespace spillway::engine {

namespace {
// Below this many multiply-adds, waking the other threads costs more than it saves.
constexpr std::int64_t kMinParallelWork = 1 << 16;
// Row ranges start at multiples of this, so kernels' multi-row tiles stay whole.
constexpr std::int64_t kRowGrain = 4;

std::size_t usize(std::int64_t v) {
  return static_cast<std::size_t>(v);
}
}  // namespace

MatmulScratch::MatmulScratch(int threads, std::int64_t max_cols, std::int64_t max_tokens)
    : threads_(std::max(threads, 1)),
      max_cols_(max_cols),
      max_tokens_(std::max<std::int64_t>(max_tokens, 1)),
      q_stride_((max_cols + 63) / 64 * 64),
      q_storage_(usize(max_tokens_ * q_stride_ + 64)),
      d_(usize(max_tokens_ * (max_cols / kQK8_0 + 1))),
      sums32_(usize(max_tokens_ * (max_cols / kQK8_0 + 1))),
      sums16_(usize(max_tokens_ * (max_cols / 16 + 1))) {
  const auto address = reinterpret_cast<std::uintptr_t>(q_storage_.data());
  q_ = q_storage_.data() + (64 - address % 64) % 64;
}

QuantizedActs MatmulScratch::quantize(const KernelTable& kernels, ActFormat format, const float* x,
                                      std::int64_t n, std::int64_t cols) {
  QuantizedActs a;
  a.q = q_;
  a.q_stride = q_stride_;
  a.d = d_.data();
  if (format == ActFormat::kQ8_32) {
    a.d_stride = max_cols_ / kQK8_0 + 1;
    a.sums_stride = a.d_stride;
    a.sums = sums32_.data();
    for (std::int64_t t = 0; t < n; ++t) {
      kernels.quantize_q8_32(x + t * cols, cols, q_ + t * a.q_stride, d_.data() + t * a.d_stride,
                             sums32_.data() + t * a.sums_stride);
    }
  } else {
    a.d_stride = max_cols_ / kQK_K + 1;
    a.sums_stride = max_cols_ / 16 + 1;
    a.sums = sums16_.data();
    for (std::int64_t t = 0; t < n; ++t) {
      kernels.quantize_q8_256(x + t * cols, cols, q_ + t * a.q_stride, d_.data() + t * a.d_stride,
                              sums16_.data() + t * a.sums_stride);
    }
  }
  return a;
}

void matmul(ThreadPool& pool, MatmulScratch& scratch, const Matrix& w, const float* x,
            std::int64_t n, float* y) {
  matmul(pool, scratch, kernel_table(selected_isa()), w, x, n, y);
}

void matmul(ThreadPool& pool, MatmulScratch& scratch, const KernelTable& kernels, const Matrix& w,
            const float* x, std::int64_t n, float* y) {
  if (w.cols > scratch.max_cols()) {
    std::fprintf(stderr, "spillway: matmul(%s): %lld columns; scratch planned for %lld\n",
                 w.name.c_str(), static_cast<long long>(w.cols),
                 static_cast<long long>(scratch.max_cols()));
    std::abort();
  }
  const RowsKernel kernel = rows_kernel(kernels, w.type);
  const ActFormat format = act_format(w.type);
  for (std::int64_t t0 = 0; t0 < n; t0 += scratch.max_tokens()) {
    MatmulArgs args;
    args.w = w.data;
    args.row_bytes = w.row_bytes;
    args.cols = w.cols;
    args.n = std::min(scratch.max_tokens(), n - t0);
    args.x = x + t0 * w.cols;
    args.y = y + t0 * w.rows;
    args.y_stride = w.rows;
    if (format != ActFormat::kFloat) {
      args.xq = scratch.quantize(kernels, format, args.x, args.n, w.cols);
    }
    const std::int64_t rows = w.rows;
    if (rows * w.cols * args.n < kMinParallelWork || pool.size() == 1) {
      kernel(args, 0, rows);
      continue;
    }
    pool.run([&](int thread, int threads) {
      const std::int64_t units = (rows + kRowGrain - 1) / kRowGrain;
      const std::int64_t begin = std::min(rows, units * thread / threads * kRowGrain);
      const std::int64_t end = std::min(rows, units * (thread + 1) / threads * kRowGrain);
      if (begin < end) kernel(args, begin, end);
    });
  }
}

}  // namespace spillway::engine
