// Tensor element types as numbered by ggml (the GGUF format's reference implementation), and
// the block geometry needed to size tensors. The numbering is part of the file format: never
// renumber.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace spillway::engine {

enum class GgmlType : std::uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeInfo {
  std::string_view name;        // As ggml prints it: "f32", "q4_K", ...
  std::int64_t block_elements;  // Elements per block (1 for plain float types).
  std::size_t block_bytes;      // Bytes per block.
  bool supported;               // Spillway can compute with it (dequantize / dot).
};

// Info for a raw type number read from a file; nullopt for numbers ggml does not define (or
// that Spillway does not know about at all).
[[nodiscard]] std::optional<GgmlTypeInfo> ggml_type_info(std::uint32_t raw_type);
[[nodiscard]] GgmlTypeInfo ggml_type_info(GgmlType type);

// Bytes of one row of `elements` elements; nullopt if `elements` is not a multiple of the
// block size or the size overflows.
[[nodiscard]] std::optional<std::size_t> ggml_row_bytes(GgmlType type, std::int64_t elements);

}  // namespace spillway::engine
