// Scalar conversions between fp32 and the two 16-bit float formats that model files store:
// IEEE 754 binary16 ("fp16", ggml_fp16_t) and bfloat16 ("bf16", ggml_bf16_t). Values travel as
// raw bit patterns (std::uint16_t) because that is how they sit inside tensors and blocks.
//
// The results are bit-exact with ggml's portable conversions:
//   - fp32 -> fp16 rounds to nearest, ties to even, producing subnormals and infinities as IEEE
//     requires; any NaN becomes the quiet NaN 0x7E00 with the input's sign (ggml's portable
//     path does this; the F16C instruction would keep payload bits, which no model relies on).
//   - fp32 -> bf16 rounds to nearest, ties to even, keeps subnormals, and keeps NaN a NaN by
//     forcing the quiet bit (a plain rounding could carry a NaN's payload into infinity).
//   - fp16 -> fp32 and bf16 -> fp32 are exact.
//
// Thread-safety: pure functions.
#pragma once

#include <bit>
#include <cstdint>

namespace spillway::engine {

[[nodiscard]] constexpr float fp16_to_fp32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  std::uint32_t mantissa = h & 0x3FFu;
  std::uint32_t bits = 0;
  if (exponent == 0x1F) {  // Inf or NaN; the payload moves to the top of fp32's mantissa.
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else if (exponent != 0) {  // Normal: rebias the exponent from 15 to 127.
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // Signed zero.
    bits = sign;
  } else {
    // Subnormal fp16 (mantissa * 2^-24) is a normal fp32: shift until the leading one reaches
    // the implicit-bit position, lowering the exponent by one per shift.
    std::uint32_t shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    bits = sign | ((127 - 14 - shift) << 23) | ((mantissa & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

[[nodiscard]] constexpr std::uint16_t fp32_to_fp16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return sign | 0x7E00u;  // NaN.
  // 65520 (0x477FF000) is halfway between fp16's largest finite value 65504 and 2^16; ties go
  // to the even neighbour, which is infinity. Everything from there up, inf included, is inf.
  if (abs >= 0x477FF000u) return sign | 0x7C00u;
  if (abs >= 0x38800000u) {
    // Normal fp16 (|f| >= 2^-14): rebias, then round the 23-bit mantissa to 10 bits. Adding
    // 0xFFF plus the lowest kept bit rounds ties to even; a carry out of the mantissa correctly
    // bumps the exponent, and cannot reach infinity because of the test above.
    const std::uint32_t rebiased = abs - ((127u - 15u) << 23);
    const std::uint32_t rounded = rebiased + 0xFFFu + ((rebiased >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | (rounded >> 13));
  }
  // Subnormal fp16: the result is round(|f| * 2^24). Up to 2^-25 (a tie with zero, which is
  // even) that is zero.
  if (abs <= 0x33000000u) return sign;
  const std::uint32_t biased_exponent = abs >> 23;  // 102..112 here.
  const std::uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
  const std::uint32_t shift = 126u - biased_exponent;  // 14..24.
  const std::uint32_t half = 1u << (shift - 1);
  const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
  std::uint32_t result = mantissa >> shift;
  if (rest > half || (rest == half && (result & 1u) != 0)) ++result;  // May become 2^-14.
  return static_cast<std::uint16_t>(sign | result);
}

[[nodiscard]] constexpr float bf16_to_fp32(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

[[nodiscard]] constexpr std::uint16_t fp32_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace spillway::engine
