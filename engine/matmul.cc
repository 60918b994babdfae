#include "engine/matmul.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "engine/quant_blocks.h"
#include "engine/quant_repack.h"

namespace spillway::engine {

namespace {
// Below this many multiply-adds, waking the other threads costs more than it saves.
constexpr std::int64_t kMinParallelWork = 1 << 16;
// Row ranges start at multiples of this, so kernels' multi-row tiles stay whole.
constexpr std::int64_t kRowGrain = 4;
// Row ranges per thread and matrix in a parallel product (see matmul_shared_input).
constexpr std::int64_t kChunksPerThread = 4;

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
  const MatmulTarget target{&w, y};
  matmul_shared_input(pool, scratch, kernels, std::span(&target, 1), x, n);
}

bool can_share_input(std::span<const MatmulTarget> targets) {
  if (targets.empty() || targets.size() > kMaxSharedTargets) return false;
  for (const MatmulTarget& t : targets) {
    if (t.w->cols != targets[0].w->cols || t.w->type != targets[0].w->type ||
        (t.w->panels == nullptr) != (targets[0].w->panels == nullptr)) {
      return false;
    }
  }
  return true;
}

void matmul_shared_input(ThreadPool& pool, MatmulScratch& scratch,
                         std::span<const MatmulTarget> targets, const float* x, std::int64_t n) {
  matmul_shared_input(pool, scratch, kernel_table(selected_isa()), targets, x, n);
}

void matmul_shared_input(ThreadPool& pool, MatmulScratch& scratch, const KernelTable& kernels,
                         std::span<const MatmulTarget> targets, const float* x, std::int64_t n) {
  if (!can_share_input(targets)) {
    std::fprintf(stderr, "spillway: matmul_shared_input: %zu targets of unequal shape or type\n",
                 targets.size());
    std::abort();
  }
  const Matrix& first = *targets[0].w;
  if (first.cols > scratch.max_cols()) {
    std::fprintf(stderr, "spillway: matmul(%s): %lld columns; scratch planned for %lld\n",
                 first.name.c_str(), static_cast<long long>(first.cols),
                 static_cast<long long>(scratch.max_cols()));
    std::abort();
  }
  // Repacked weights go to the level's panel kernel when it has one, else the row layout.
  const RowsKernel panel = first.panels != nullptr ? panel_kernel(kernels, first.type) : nullptr;
  const RowsKernel kernel = panel != nullptr ? panel : rows_kernel(kernels, first.type);
  // Panel kernels take panels in pairs when a pass has several tokens: ranges of whole pairs.
  const std::int64_t unit = panel != nullptr ? 2 * kPanelRows : kRowGrain;
  const ActFormat format = act_format(first.type);
  std::int64_t total_rows = 0;
  for (const MatmulTarget& t : targets)
    total_rows += t.w->rows;
  for (std::int64_t t0 = 0; t0 < n; t0 += scratch.max_tokens()) {
    const std::int64_t chunk = std::min(scratch.max_tokens(), n - t0);
    const float* xc = x + t0 * first.cols;
    // The activations are quantized once for every target.
    QuantizedActs xq;
    if (format != ActFormat::kFloat) xq = scratch.quantize(kernels, format, xc, chunk, first.cols);
    std::array<MatmulArgs, kMaxSharedTargets> args;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const Matrix& w = *targets[i].w;
      args[i].w = panel != nullptr ? w.panels : w.data;
      args[i].row_bytes = w.row_bytes;
      args[i].cols = w.cols;
      args[i].n = chunk;
      args[i].x = xc;
      args[i].xq = xq;
      args[i].y = targets[i].y + t0 * w.rows;
      args[i].y_stride = w.rows;
    }
    if (total_rows * first.cols * chunk < kMinParallelWork || pool.size() == 1) {
      for (std::size_t i = 0; i < targets.size(); ++i)
        kernel(args[i], 0, targets[i].w->rows);
      continue;
    }
    // One job for all targets, cut into kChunksPerThread contiguous row ranges per thread and
    // matrix, which the threads take in order from a shared counter: a thread that runs slower
    // (a busy core, a cache-unlucky share) takes fewer, instead of the others waiting for it.
    // Each range still streams as one contiguous region; results do not depend on who computes
    // which rows. A single token (decode) is bound by memory streaming, which restarts at every
    // range: one range per thread there.
    std::array<std::int64_t, kMaxSharedTargets + 1> first_chunk{};
    const std::int64_t chunks_per_target = (chunk == 1 ? 1 : kChunksPerThread) * pool.size();
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const std::int64_t units = (targets[i].w->rows + unit - 1) / unit;
      first_chunk[i + 1] = first_chunk[i] + std::min(units, chunks_per_target);
    }
    const std::int64_t total_chunks = first_chunk[targets.size()];
    std::atomic<std::int64_t> next_chunk{0};
    pool.run([&](int /*thread*/, int /*threads*/) {
      std::size_t i = 0;
      for (std::int64_t c = next_chunk.fetch_add(1, std::memory_order_relaxed); c < total_chunks;
           c = next_chunk.fetch_add(1, std::memory_order_relaxed)) {
        while (c >= first_chunk[i + 1])
          ++i;
        const std::int64_t rows = targets[i].w->rows;
        const std::int64_t units = (rows + unit - 1) / unit;
        const std::int64_t chunks = first_chunk[i + 1] - first_chunk[i];
        const std::int64_t k = c - first_chunk[i];
        const std::int64_t begin = std::min(rows, units * k / chunks * unit);
        const std::int64_t end = std::min(rows, units * (k + 1) / chunks * unit);
        if (begin < end) kernel(args[i], begin, end);
      }
    });
  }
}

}  // namespace spillway::engine
