#include "engine/quant_repack.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/quant_blocks.h"

namespace spillway::engine {
namespace {

constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

[[noreturn]] void fail(const char* what, GgmlType type) {
  std::fprintf(stderr, "spillway: %s: no panel layout for type %u\n", what,
               static_cast<unsigned>(type));
  std::abort();
}

std::size_t usize(std::int64_t v) {
  return static_cast<std::size_t>(v);
}

// Panel of Q8_0 or Q4_0 rows: `group_bytes` (4) quant bytes of each row side by side.
template <typename Block>
void repack_quant_panel(const std::byte* src, std::size_t row_bytes, std::int64_t nb,
                        std::int64_t valid_rows, std::uint8_t flip, std::byte* dst) {
  constexpr std::int64_t kQuantBytes = sizeof(Block{}.qs);
  constexpr std::int64_t kGroups = kQuantBytes / 4;
  auto* out = reinterpret_cast<std::uint8_t*>(dst);
  std::uint8_t* scales = out + usize(nb * kPanelRows * kQuantBytes);
  for (std::int64_t i = 0; i < valid_rows; ++i) {
    const std::byte* row = src + usize(i) * row_bytes;
    for (std::int64_t b = 0; b < nb; ++b) {
      Block blk;
      std::memcpy(&blk, row + usize(b) * sizeof(Block), sizeof(Block));
      std::memcpy(scales + usize(b * 2 * kPanelRows + 2 * i), &blk.d, 2);
      std::uint8_t* q = out + usize(b * kPanelRows * kQuantBytes + 4 * i);
      for (std::int64_t g = 0; g < kGroups; ++g) {
        for (int e = 0; e < 4; ++e) {
          q[64 * g + e] =
              static_cast<std::uint8_t>(static_cast<std::uint8_t>(blk.qs[4 * g + e]) ^ flip);
        }
      }
    }
  }
}

}  // namespace

bool has_panel_layout(GgmlType type) {
  return type == GgmlType::kF16 || type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0;
}

std::size_t panel_layout_bytes(GgmlType type, std::int64_t cols, std::int64_t rows) {
  if (!has_panel_layout(type)) fail("panel_layout_bytes", type);
  const std::int64_t panels = (rows + kPanelRows - 1) / kPanelRows;
  return *ggml_row_bytes(type, cols) * usize(panels * kPanelRows);
}

void repack_to_panels(GgmlType type, const std::byte* src, std::int64_t cols, std::int64_t rows,
                      std::byte* dst) {
  if (!has_panel_layout(type)) fail("repack_to_panels", type);
  const std::size_t row_bytes = *ggml_row_bytes(type, cols);
  const std::size_t panel_bytes = row_bytes * usize(kPanelRows);
  const std::int64_t panels = (rows + kPanelRows - 1) / kPanelRows;
  std::memset(dst, 0, panel_bytes * usize(panels));
  for (std::int64_t p = 0; p < panels; ++p) {
    const std::byte* in = src + usize(p) * panel_bytes;
    std::byte* out = dst + usize(p) * panel_bytes;
    const std::int64_t valid = std::min(kPanelRows, rows - p * kPanelRows);
    switch (type) {
      case GgmlType::kF16:
        for (std::int64_t i = 0; i < valid; ++i) {
          const std::byte* row = in + usize(i) * row_bytes;
          for (std::int64_t c = 0; c < cols; ++c)
            std::memcpy(out + usize(c * 2 * kPanelRows + 2 * i), row + usize(2 * c), 2);
        }
        break;
      case GgmlType::kQ8_0:
        repack_quant_panel<BlockQ8_0>(in, row_bytes, cols / kQK8_0, valid, 0x80, out);
        break;
      case GgmlType::kQ4_0:
        repack_quant_panel<BlockQ4_0>(in, row_bytes, cols / kQK4_0, valid, 0x00, out);
        break;
      default:
        fail("repack_to_panels", type);
    }
  }
}

PanelBuffer PanelBuffer::allocate(std::size_t bytes) {
  // Buffers of at least one huge page are aligned to it and ask for transparent huge pages:
  // the kernels stream them, and 2 MiB pages cut the TLB misses of that stream 512-fold.
  const bool huge = bytes >= kHugePageBytes;
  const std::size_t align = huge ? kHugePageBytes : 64;
  const std::size_t rounded = std::max<std::size_t>((bytes + align - 1) / align * align, align);
  PanelBuffer b;
  b.data_.reset(static_cast<std::byte*>(std::aligned_alloc(align, rounded)));
  if (!b.data_) return b;
  if (huge) (void)::madvise(b.data_.get(), rounded, MADV_HUGEPAGE);  // Advisory only.
  b.size_ = bytes;
  return b;
}

void PanelBuffer::Free::operator()(std::byte* p) const {
  std::free(p);
}

}  // namespace spillway::engine
