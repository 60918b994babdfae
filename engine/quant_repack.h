// Panel layouts: weight matrices repacked at load time so that the kernels' panel entries
// (KernelTable::f16_x16, q8_0_x16, q4_0_x16) read one contiguous stream per thread and hold
// one value per row in each 16-lane vector (no horizontal sums, one scale conversion per 16
// rows; the AVX2 kernels read each 16-lane group as two 8-lane halves). The layout does not
// depend on the kernel level. A panel is kPanelRows consecutive rows; it occupies exactly the
// bytes those rows take in the file's row layout (panel p starts at p * kPanelRows *
// row_bytes), and a last partial panel is padded with zero rows. Within panel p, with lane
// i = row 16p + i:
//   F16:  column c at byte 32c: 16 fp16 values, lane i = W[i][c].
//   Q8_0: nb = cols / 32 blocks. Quants first: block b at byte 512b, eight groups g of 64 bytes;
//         byte 64g + 4i + e = qs[4g + e] of row i's block b, stored as qs + 128 (an unsigned
//         byte, for VNNI's u8 x s8 product). Then the scales: at byte 512 nb + 32b, 16 fp16
//         values, lane i = d of row i's block b.
//   Q4_0: quants: block b at byte 256b, four groups g of 64 bytes; byte 64g + 4i + e =
//         qs[4g + e] of row i's block b (low nibble element 4g + e, high nibble 16 + 4g + e).
//         Then the scales: at byte 256 nb + 32b, as for Q8_0.
// Scales trail the quants so that, for even nb, every quant group is 64-byte aligned when the
// panel is. The kernels need panels 2-byte aligned (as row data); PanelBuffer gives 64.
//
// Thread-safety: pure functions; PanelBuffer is a plain owning value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/ggml_type.h"

namespace spillway::engine {

inline constexpr std::int64_t kPanelRows = 16;

// Types with a panel layout: F16, Q8_0, Q4_0.
[[nodiscard]] bool has_panel_layout(GgmlType type);

// Bytes of the panel layout of a rows x cols matrix (rows rounded up to kPanelRows).
// REQUIRES: has_panel_layout(type); cols a multiple of the type's block size.
[[nodiscard]] std::size_t panel_layout_bytes(GgmlType type, std::int64_t cols, std::int64_t rows);

// Writes rows [0, rows) of the row-layout matrix at `src` (row_bytes per row, as in the file)
// into `dst` in the panel layout, zero rows for the padding.
// REQUIRES: has_panel_layout(type); dst holds panel_layout_bytes(type, cols, rows) bytes and
// does not overlap src.
void repack_to_panels(GgmlType type, const std::byte* src, std::int64_t cols, std::int64_t rows,
                      std::byte* dst);

// A 64-byte aligned byte buffer (panel data); empty when default-constructed.
class PanelBuffer {
 public:
  PanelBuffer() = default;
  // Returns an empty buffer when the allocation fails.
  [[nodiscard]] static PanelBuffer allocate(std::size_t bytes);

  [[nodiscard]] std::byte* data() const { return data_.get(); }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return data_ == nullptr; }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, Free> data_;
  std::size_t size_ = 0;
};

}  // namespace spillway::engine
