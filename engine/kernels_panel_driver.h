// The tiling driver of the panel kernels (KernelTable::f16_x16, q8_0_x16, q4_0_x16 over the
// layout of engine/quant_repack.h), shared by kernels_avx2.cc and kernels_avx512.cc: which
// panels and tokens each tile takes, in which order, and what it prefetches. The arithmetic of a
// tile is the including level's.
// Everything here has internal linkage, so each including file gets its own copy compiled with
// its own ISA flags.
//
// A kernel K provides:
//   kTokens, kMaxPanels: tokens and panels per tile when a pass has several tokens;
//   kDecodePanels: panels per tile for a single-token pass (decode);
//   kPrefetchUnits, kPrefetchNext: see TilePrefetch (0 / false: none);
//   activation_bytes(args): bytes of one token's activations;
//   template <int P, int T> tile(args, panel, row, row_end, token, prefetch): rows
//   [row, min(row + 16 P, row_end)) for tokens [token, token + T) from the P panels at `panel`.
//
// REQUIRES: include only from files compiled with at least -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "engine/kernels.h"
#include "engine/quant_repack.h"

namespace spillway::engine {
namespace {  // NOLINT: internal linkage on purpose, see above.

// A pass takes as many tokens as keep their activations within kPassActivationBytes (in L2
// beside the panels, which stay in L1/L2 for all of the pass's token tiles), so the weights
// stream from memory once per pass: once per call for decode batches and most prompts. The first
// tile over a panel prefetches ahead (the others find the panel in cache).
inline constexpr std::int64_t kPassActivationBytes = std::int64_t{512} << 10;

// What a tile prefetches: `ahead` units past its own position in its panels (the first tile
// over a group of panels, which streams them from memory), and/or `next_bytes` bytes of the
// next group of panels from `next`, spread evenly over its blocks (the later tiles, which find
// their panels in cache: without this, memory idles while they compute and the first tile of
// the next group waits on memory while the arithmetic pipes idle).
struct TilePrefetch {
  std::int64_t ahead = 0;
  const std::byte* next = nullptr;
  std::int64_t next_bytes = 0;
};

// Issues a quantized tile's prefetches block by block: at block b of nb, the lines `ahead`
// blocks past b in each of the tile's P panels (into L1), and the share of the next group's
// bytes that falls before block b + 1 (into L2: this group's tiles use L1).
class BlockPrefetcher {
 public:
  BlockPrefetcher(const TilePrefetch& prefetch, std::int64_t nb)
      : prefetch_(prefetch), nb_(nb), next_lines_((prefetch.next_bytes + 63) / 64) {}

  template <int P>
  void at_block(const std::byte* const (&quants)[P], std::int64_t block_bytes, std::int64_t b) {
    if (prefetch_.ahead != 0) {
      for (int p = 0; p < P; ++p) {
        const std::byte* ahead = quants[p] + (b + prefetch_.ahead) * block_bytes;
        for (std::int64_t off = 0; off < block_bytes; off += 64)
          _mm_prefetch(reinterpret_cast<const char*>(ahead + off), _MM_HINT_T0);
      }
    }
    for (const std::int64_t until = next_lines_ * (b + 1) / nb_; next_line_ < until; ++next_line_) {
      _mm_prefetch(reinterpret_cast<const char*>(prefetch_.next + 64 * next_line_), _MM_HINT_T1);
    }
  }

 private:
  const TilePrefetch& prefetch_;
  std::int64_t nb_;
  std::int64_t next_lines_;
  std::int64_t next_line_ = 0;  // Lines of the next group prefetched so far.
};

template <typename K, int P, int T>
void panel_tail(const MatmulArgs& a, const std::byte* panel, std::int64_t r, std::int64_t r_end,
                std::int64_t t, std::int64_t left, const TilePrefetch& prefetch) {
  if constexpr (T >= 1) {
    if (left == T) {
      K::template tile<P, T>(a, panel, r, r_end, t, prefetch);
      return;
    }
    panel_tail<K, P, T - 1>(a, panel, r, r_end, t, left, prefetch);
  }
}

// Tokens [t0, t1) over the panels of rows [r0, r1), P panels and up to T tokens per tile.
template <typename K, int P, int T>
void drive_pass(const MatmulArgs& a, std::int64_t r0, std::int64_t r1, std::int64_t t0,
                std::int64_t t1) {
  const std::size_t panel_bytes = a.row_bytes * static_cast<std::size_t>(kPanelRows);
  for (std::int64_t r = r0; r < r1; r += P * kPanelRows) {
    if constexpr (P > 1) {
      if (r + (P - 1) * kPanelRows >= r1) {  // Fewer than P panels left.
        drive_pass<K, P / 2, T>(a, r, r1, t0, t1);
        return;
      }
    }
    const std::byte* panel = a.w + static_cast<std::size_t>(r / kPanelRows) * panel_bytes;
    // The tiles after the first share out the next group's bytes (when it is this range's).
    const std::int64_t tiles = (t1 - t0 + T - 1) / T;
    const std::byte* next = panel + P * panel_bytes;
    const std::int64_t next_rows =
        std::min<std::int64_t>(P * kPanelRows, r1 - (r + P * kPanelRows));
    const std::int64_t next_bytes =
        K::kPrefetchNext && tiles > 1 && next_rows > 0
            ? (next_rows + kPanelRows - 1) / kPanelRows * static_cast<std::int64_t>(panel_bytes)
            : 0;
    const auto prefetch_of = [&](std::int64_t t) {
      const std::int64_t i = (t - t0) / T;
      const std::int64_t lo = next_bytes * i / tiles;
      const std::int64_t hi = next_bytes * (i + 1) / tiles;
      return TilePrefetch{i == 0 && (r == r0 || next_bytes == 0) ? K::kPrefetchUnits : 0, next + lo,
                          hi - lo};
    };
    std::int64_t t = t0;
    for (; t + T <= t1; t += T)
      K::template tile<P, T>(a, panel, r, r1, t, prefetch_of(t));
    panel_tail<K, P, T - 1>(a, panel, r, r1, t, t1 - t, prefetch_of(t));
  }
}

// The panel kernel entry (a RowsKernel): row_begin a multiple of kPanelRows.
template <typename K>
void drive_panels(const MatmulArgs& a, std::int64_t r0, std::int64_t r1) {
  const std::int64_t per_pass =
      std::max<std::int64_t>(K::kTokens, kPassActivationBytes / K::activation_bytes(a));
  for (std::int64_t t0 = 0; t0 < a.n; t0 += per_pass) {
    const std::int64_t t1 = std::min(a.n, t0 + per_pass);
    if (t1 - t0 == 1) {
      drive_pass<K, K::kDecodePanels, 1>(a, r0, r1, t0, t1);
    } else {
      drive_pass<K, K::kMaxPanels, K::kTokens>(a, r0, r1, t0, t1);
    }
  }
}

}  // namespace
}  // namespace spillway::engine
