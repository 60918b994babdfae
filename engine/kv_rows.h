// One KV head's cached rows for the positions [0, n) of one sequence, as the attention kernels
// (KernelTable::scores_f16 / weighted_sum_f16 and their Q8_0 twins) read them: the row of
// position p starts at blocks[p / block_tokens] + (p % block_tokens) * stride, in units of
// `Row`: fp16 values (KvRows, head_dim of them per row) or Q8_0 blocks (KvRowsQ8_0,
// head_dim / 32 of them). `blocks` is the sequence's block table resolved to pointers (each at
// the head's row of the block's first slot), so a kernel walks a block's slots at a fixed
// stride.
//
// Thread-safety: a plain view; the rows must not change while a kernel reads them.
#pragma once

#include <cstdint>

#include "engine/quant_blocks.h"

namespace spillway::engine {

template <typename Row>
struct KvRowsOf {
  const Row* const* blocks = nullptr;
  std::int64_t block_tokens = 1;
  std::int64_t stride = 0;  // Units of Row from one slot's row to the next slot's.
  std::int64_t n = 0;       // Positions.

  [[nodiscard]] const Row* row(std::int64_t p) const {
    return blocks[p / block_tokens] + (p % block_tokens) * stride;
  }
};

using KvRows = KvRowsOf<std::uint16_t>;  // fp16 rows.
using KvRowsQ8_0 = KvRowsOf<BlockQ8_0>;  // Q8_0 rows: head_dim / 32 blocks each.

// Visits the rows of positions [0, n) in order, without a division per row.
template <typename Row>
class KvRowWalk {
 public:
  explicit KvRowWalk(const KvRowsOf<Row>& rows) : rows_(rows) {}
  [[nodiscard]] const Row* next() {
    const Row* r = rows_.blocks[block_] + slot_ * rows_.stride;
    if (++slot_ == rows_.block_tokens) {
      slot_ = 0;
      ++block_;
    }
    return r;
  }

 private:
  const KvRowsOf<Row>& rows_;
  std::int64_t block_ = 0;
  std::int64_t slot_ = 0;
};

// The attention kernels of a level without dedicated ones, over its dot and axpy of one row,
// one query head at a time (KernelTable::scores_f16 and weighted_sum_f16's contracts).
template <typename Row, float (*Dot)(const float*, const Row*, std::int64_t)>
void scores_by_rows(const float* q, std::int32_t heads, std::int64_t head_dim, float scale,
                    const KvRowsOf<Row>& k, float* scores, std::int64_t stride) {
  for (std::int32_t h = 0; h < heads; ++h) {
    KvRowWalk walk(k);
    for (std::int64_t p = 0; p < k.n; ++p)
      scores[h * stride + p] = Dot(q + h * head_dim, walk.next(), head_dim) * scale;
  }
}

template <typename Row, void (*Axpy)(float, const Row*, float*, std::int64_t)>
void weighted_sum_by_rows(const float* w, std::int64_t stride, std::int32_t heads,
                          const KvRowsOf<Row>& v, std::int64_t head_dim, float* out) {
  for (std::int32_t h = 0; h < heads; ++h) {
    float* o = out + h * head_dim;
    for (std::int64_t i = 0; i < head_dim; ++i)
      o[i] = 0.0f;
    KvRowWalk walk(v);
    for (std::int64_t p = 0; p < v.n; ++p)
      Axpy(w[h * stride + p], walk.next(), o, head_dim);
  }
}

}  // namespace spillway::engine
