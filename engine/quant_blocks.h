// The quantized block formats Spillway reads from GGUF files, laid out byte for byte as ggml
// stores them (ggml-common.h), so a tensor's bytes can be viewed as an array of these structs.
// fp16 fields hold raw IEEE binary16 bits (see engine/half.h). Every struct has alignment 2 (its
// fp16 fields) and no padding, which the static_asserts below pin down.
//
// Decoding rules (element i of a block, d and dmin converted to fp32):
//   Q8_0: x[i] = qs[i] * d.
//   Q4_0: byte j (0..15) holds element j in its low nibble and element j + 16 in its high
//         nibble; x = (nibble - 8) * d.
//   Q4_K: 256 elements in 8 sub-blocks of 32, each with a 6-bit scale sc and 6-bit min m packed
//         into `scales` (see q4k_scale_min). x = d * sc * q - dmin * m with q a 4-bit value.
//         Sub-blocks pair up over 32 bytes of qs: for pair p (0..3), byte qs[32p + l] holds
//         element 64p + l (low nibble, sub-block 2p) and 64p + 32 + l (high, sub-block 2p + 1).
//   Q6_K: 256 elements in 16 sub-blocks of 16 with signed 8-bit scales; x = d * sc * (q - 32)
//         with q a 6-bit value: 4 low bits in ql, 2 high bits in qh. See dequantize_row in
//         engine/quant.cc for the exact interleaving.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spillway::engine {

inline constexpr int kQK8_0 = 32;        // Elements per Q8_0 block.
inline constexpr int kQK4_0 = 32;        // Elements per Q4_0 block.
inline constexpr int kQK_K = 256;        // Elements per K-quant super-block.
inline constexpr int kKScaleBytes = 12;  // Packed scale bytes of a Q4_K block.

struct BlockQ8_0 {
  std::uint16_t d;  // fp16 scale.
  std::int8_t qs[kQK8_0];
};

struct BlockQ4_0 {
  std::uint16_t d;  // fp16 scale.
  std::uint8_t qs[kQK4_0 / 2];
};

struct BlockQ4_K {
  std::uint16_t d;     // fp16 scale of the sub-block scales.
  std::uint16_t dmin;  // fp16 scale of the sub-block mins.
  std::uint8_t scales[kKScaleBytes];
  std::uint8_t qs[kQK_K / 2];
};

struct BlockQ6_K {
  std::uint8_t ql[kQK_K / 2];      // Low 4 bits of each quant.
  std::uint8_t qh[kQK_K / 4];      // High 2 bits of each quant.
  std::int8_t scales[kQK_K / 16];  // Per 16-element sub-block.
  std::uint16_t d;                 // fp16 super-block scale.
};

static_assert(sizeof(BlockQ8_0) == 34 && offsetof(BlockQ8_0, qs) == 2);
static_assert(sizeof(BlockQ4_0) == 18 && offsetof(BlockQ4_0, qs) == 2);
static_assert(sizeof(BlockQ4_K) == 144 && offsetof(BlockQ4_K, dmin) == 2 &&
              offsetof(BlockQ4_K, scales) == 4 && offsetof(BlockQ4_K, qs) == 16);
static_assert(sizeof(BlockQ6_K) == 210 && offsetof(BlockQ6_K, qh) == 128 &&
              offsetof(BlockQ6_K, scales) == 192 && offsetof(BlockQ6_K, d) == 208);

// 6-bit scale and min of Q4_K sub-block j (0..7). Sub-blocks 0..3 keep theirs in the low six
// bits of scales[j] and scales[j + 4]; sub-blocks 4..7 keep their low four bits as the two
// nibbles of scales[j + 4] and their top two bits in the spare top bits of scales[j - 4]
// (scale) and scales[j] (min).
struct ScaleMin {
  std::uint8_t scale;
  std::uint8_t min;
};
[[nodiscard]] constexpr ScaleMin q4k_scale_min(const std::uint8_t* scales, int j) {
  if (j < 4) {
    return {static_cast<std::uint8_t>(scales[j] & 63),
            static_cast<std::uint8_t>(scales[j + 4] & 63)};
  }
  return {static_cast<std::uint8_t>((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4)),
          static_cast<std::uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))};
}

}  // namespace spillway::engine
