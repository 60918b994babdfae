// Tests for engine/half.h, engine/quant_blocks.h and engine/quant.h. The expected values come
// from references written here from the format descriptions (element by element, in double),
// independently of the implementation's loops.
#include "engine/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/ggml_type.h"
#include "engine/half.h"
#include "engine/quant_blocks.h"

namespace spillway::engine {
namespace {

// ---- Independent references.

// Value of an IEEE binary16 bit pattern, straight from the definition.
double ref_fp16(std::uint16_t h) {
  const double sign = (h & 0x8000) != 0 ? -1.0 : 1.0;
  const int e = (h >> 10) & 0x1F;
  const int m = h & 0x3FF;
  if (e == 31) {
    return m == 0 ? sign * std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::quiet_NaN();
  }
  if (e == 0) return sign * std::ldexp(m, -24);
  return sign * std::ldexp(1024 + m, e - 25);
}

// Value of a bf16 bit pattern; exponent 255 is treated as an ordinary binade so that "the next
// value up" from the largest finite bf16 is 2^128, which is how IEEE rounding decides overflow.
double ref_bf16_extended(std::uint16_t h) {
  const double sign = (h & 0x8000) != 0 ? -1.0 : 1.0;
  const int e = (h >> 7) & 0xFF;
  const int m = h & 0x7F;
  if (e == 0) return sign * std::ldexp(m, -133);
  return sign * std::ldexp(128 + m, e - 134);
}

bool is_fp16_nan(std::uint16_t h) {
  return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
}

// A random fp16 scale with exponent in [-10, 5], either sign, so that every product in the
// references below is exact in double.
std::uint16_t random_scale(std::mt19937& rng) {
  std::uniform_int_distribution<int> exponent(5, 20);  // Biased; 15 is 2^0.
  std::uniform_int_distribution<int> mantissa(0, 1023);
  std::uniform_int_distribution<int> sign(0, 1);
  return static_cast<std::uint16_t>((sign(rng) << 15) | (exponent(rng) << 10) | mantissa(rng));
}

void fill_random_bytes(std::mt19937& rng, void* p, std::size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  auto* bytes = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    bytes[i] = static_cast<unsigned char>(byte(rng));
}

// Per-element readers of each format, from the layout rules (see quant_blocks.h).
int ref_q4_0_quant(const BlockQ4_0& b, int e) {
  return e < 16 ? (b.qs[e] & 0xF) : (b.qs[e - 16] >> 4);
}

// 6-bit scale and min of Q4_K sub-block j, read bit by bit from the 12 packed bytes: byte k
// (0..3) = scale k | top2(scale k+4) << 6; byte 4 + k = min k | top2(min k+4) << 6;
// byte 8 + k = low4(scale k+4) | low4(min k+4) << 4.
void ref_q4_k_scale_min(const BlockQ4_K& b, int j, int* scale, int* min) {
  const std::uint8_t* s = b.scales;
  if (j < 4) {
    *scale = s[j] % 64;
    *min = s[4 + j] % 64;
  } else {
    const int k = j - 4;
    *scale = (s[8 + k] % 16) + 16 * (s[k] / 64);
    *min = (s[8 + k] / 16) + 16 * (s[4 + k] / 64);
  }
}

int ref_q4_k_quant(const BlockQ4_K& b, int e) {
  const int sub = e / 32;
  const int byte = 32 * (sub / 2) + e % 32;
  return sub % 2 == 0 ? b.qs[byte] % 16 : b.qs[byte] / 16;
}

double ref_q4_k(const BlockQ4_K& b, int e) {
  int scale = 0;
  int min = 0;
  ref_q4_k_scale_min(b, e / 32, &scale, &min);
  return ref_fp16(b.d) * scale * ref_q4_k_quant(b, e) - ref_fp16(b.dmin) * min;
}

// Element e of a Q6_K block: half h = e / 128; within it quarter k = (e % 128) / 32 and lane
// l = e % 32. The low four bits sit in ql[64h + l + 32 (k odd)], high nibble when k >= 2; the
// top two bits are bits 2k, 2k + 1 of qh[32h + l].
int ref_q6_k_quant(const BlockQ6_K& b, int e) {
  const int h = e / 128;
  const int k = (e % 128) / 32;
  const int l = e % 32;
  const int low_byte = b.ql[64 * h + l + 32 * (k % 2)];
  const int low = k >= 2 ? low_byte / 16 : low_byte % 16;
  const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
  return low + 16 * high;
}

double ref_q6_k(const BlockQ6_K& b, int e) {
  return ref_fp16(b.d) * b.scales[e / 16] * (ref_q6_k_quant(b, e) - 32);
}

void set_q6_k_quant(BlockQ6_K& b, int e, int q) {
  const int h = e / 128;
  const int k = (e % 128) / 32;
  const int l = e % 32;
  std::uint8_t& low_byte = b.ql[64 * h + l + 32 * (k % 2)];
  if (k >= 2) {
    low_byte = static_cast<std::uint8_t>((low_byte & 0x0F) | ((q % 16) << 4));
  } else {
    low_byte = static_cast<std::uint8_t>((low_byte & 0xF0) | (q % 16));
  }
  std::uint8_t& high_byte = b.qh[32 * h + l];
  high_byte = static_cast<std::uint8_t>((high_byte & ~(3 << (2 * k))) | ((q / 16) << (2 * k)));
}

std::vector<float> random_floats(std::mt19937& rng, std::int64_t n, float sigma) {
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v)
    x = dist(rng);
  return v;
}

std::size_t row_bytes(GgmlType type, std::int64_t n) {
  return *ggml_row_bytes(type, n);
}

// ---- Block geometry.

TEST(QuantBlocksTest, SizesMatchTypeTable) {
  EXPECT_EQ(sizeof(BlockQ8_0), ggml_type_info(GgmlType::kQ8_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ4_0), ggml_type_info(GgmlType::kQ4_0).block_bytes);
  EXPECT_EQ(sizeof(BlockQ4_K), ggml_type_info(GgmlType::kQ4_K).block_bytes);
  EXPECT_EQ(sizeof(BlockQ6_K), ggml_type_info(GgmlType::kQ6_K).block_bytes);
  EXPECT_EQ(kQK8_0, ggml_type_info(GgmlType::kQ8_0).block_elements);
  EXPECT_EQ(kQK4_0, ggml_type_info(GgmlType::kQ4_0).block_elements);
  EXPECT_EQ(kQK_K, ggml_type_info(GgmlType::kQ4_K).block_elements);
  EXPECT_EQ(kQK_K, ggml_type_info(GgmlType::kQ6_K).block_elements);
}

// ---- fp16 / bf16.

TEST(HalfTest, Fp16ToFp32AllPatterns) {
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<std::uint16_t>(i);
    const float f = fp16_to_fp32(h);
    if (is_fp16_nan(h)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << i;
      EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << i;
      EXPECT_EQ(fp32_to_fp16(f), (h & 0x8000) | 0x7E00) << std::hex << i;
    } else {
      ASSERT_EQ(static_cast<double>(f), ref_fp16(h)) << std::hex << i;
      EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << i;
      ASSERT_EQ(fp32_to_fp16(f), h) << std::hex << i;  // Exact values round-trip.
    }
  }
}

TEST(HalfTest, Fp32ToFp16RoundsToNearestEvenBetweenEveryPair) {
  // Between each pair of adjacent non-negative finite fp16 values: the midpoint goes to the
  // even one, anything above it to the upper one, anything below to the lower one.
  for (std::uint16_t lo = 0; lo < 0x7BFF; ++lo) {
    const auto hi = static_cast<std::uint16_t>(lo + 1);
    const auto mid = static_cast<float>((ref_fp16(lo) + ref_fp16(hi)) / 2);  // Exact in float.
    ASSERT_EQ(static_cast<double>(mid), (ref_fp16(lo) + ref_fp16(hi)) / 2);
    const std::uint16_t even = (lo % 2 == 0) ? lo : hi;
    ASSERT_EQ(fp32_to_fp16(mid), even) << std::hex << lo;
    ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 1e9f)), hi) << std::hex << lo;
    ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 0.0f)), lo) << std::hex << lo;
    ASSERT_EQ(fp32_to_fp16(-mid), 0x8000 | even) << std::hex << lo;
  }
}

TEST(HalfTest, Fp32ToFp16SpecialCases) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // Tie between 65504 (odd) and 2^16: inf.
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(kInf), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-kInf), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // Smallest subnormal.
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // Tie with zero: even.
  EXPECT_EQ(fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.0f, -26)), 0x8000);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1023.5f, -24)), 0x0400);  // Rounds up into the normals.
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::quiet_NaN()), 0xFE00);
  EXPECT_EQ(fp32_to_fp16(std::bit_cast<float>(0x7F800001u)), 0x7E00);           // Not inf.
  static_assert(fp32_to_fp16(0.5f) == 0x3800 && fp16_to_fp32(0x3800) == 0.5f);  // constexpr.
}

TEST(HalfTest, Fp32ToFp16RandomMatchesNearest) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<std::uint32_t> bits(0, 0xFFFFFFFFu);
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t x = (bits(rng) & 0x807FFFFFu) | ((100u + bits(rng) % 45u) << 23);
    const float f = std::bit_cast<float>(x);  // |f| in [2^-27, 2^17).
    const std::uint16_t h = fp32_to_fp16(f);
    const double got = ref_fp16(h);
    if (std::isinf(got)) {
      ASSERT_GE(std::fabs(static_cast<double>(f)), 65520.0) << f;
      continue;
    }
    // No fp16 value is strictly nearer, and on a tie the mantissa is even.
    const double err = std::fabs(got - f);
    for (int delta : {-1, 1}) {
      const auto other = static_cast<std::uint16_t>(h + delta);
      if ((h & 0x7FFF) == 0 && delta == -1) continue;  // No neighbour below zero's pattern.
      const double other_err = std::fabs(ref_fp16(other) - f);
      ASSERT_LE(err, other_err) << f;
      if (err == other_err) {
        ASSERT_EQ(h % 2, 0) << f;
      }
    }
  }
}

TEST(HalfTest, Bf16AllPatternsRoundTrip) {
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<std::uint16_t>(i);
    const float f = bf16_to_fp32(h);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(f), i << 16);
    const bool nan = (h & 0x7F80) == 0x7F80 && (h & 0x7F) != 0;
    ASSERT_EQ(fp32_to_bf16(f), nan ? (h | 0x40) : h) << std::hex << i;
  }
}

TEST(HalfTest, Fp32ToBf16RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // Tie, even below.
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // Tie, even above.
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F807FFFu)), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // Rounds to inf.
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x00018000u)), 0x0002);  // Subnormals kept.
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7F800001u)), 0x7FC0);  // NaN stays NaN.
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0xFF812345u)), 0xFFC1);

  std::mt19937 rng(2);
  std::uniform_int_distribution<std::uint32_t> bits(0, 0xFFFFFFFFu);
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t x = bits(rng);
    if ((x & 0x7FFFFFFFu) >= 0x7F800000u) continue;  // Inf and NaN covered above.
    const auto f = static_cast<double>(std::bit_cast<float>(x));
    const std::uint16_t h = fp32_to_bf16(std::bit_cast<float>(x));
    const auto lo = static_cast<std::uint16_t>(x >> 16);
    const auto hi = static_cast<std::uint16_t>(lo + 1);
    ASSERT_TRUE(h == lo || h == hi) << std::hex << x;
    const double err_lo = std::fabs(ref_bf16_extended(lo) - f);
    const double err_hi = std::fabs(ref_bf16_extended(hi) - f);
    const std::uint16_t want = err_lo < err_hi   ? lo
                               : err_hi < err_lo ? hi
                                                 : (lo % 2 == 0 ? lo : hi);
    ASSERT_EQ(h, want) << std::hex << x;
  }
}

// ---- Hand-built blocks with known bytes.

TEST(DequantizeTest, Q8_0HandBuilt) {
  BlockQ8_0 b{};
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 32; ++j)
    b.qs[j] = static_cast<std::int8_t>(j - 16);
  b.qs[0] = -128;
  b.qs[31] = 127;
  float y[32];
  dequantize_row(GgmlType::kQ8_0, &b, y, 32);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[1], -7.5f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[17], 0.5f);
  EXPECT_EQ(y[31], 63.5f);
}

TEST(DequantizeTest, Q4_0HandBuilt) {
  BlockQ4_0 b{};
  b.d = 0x4000;  // 2.0
  for (int j = 0; j < 16; ++j)
    b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(GgmlType::kQ4_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], static_cast<float>((j - 8) * 2)) << j;            // Low nibble.
    EXPECT_EQ(y[j + 16], static_cast<float>((15 - j - 8) * 2)) << j;  // High nibble.
  }
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[16], 14.0f);
}

TEST(DequantizeTest, Q4_KLiteralBytes) {
  BlockQ4_K b{};
  b.d = 0x3C00;     // 1.0
  b.dmin = 0x3C00;  // 1.0
  const std::uint8_t scales[12] = {0x41, 0x02, 0x03, 0x04, 0x85, 0x06,
                                   0x07, 0x08, 0x21, 0x00, 0x00, 0x00};
  std::memcpy(b.scales, scales, 12);
  b.qs[0] = 0x0A;   // Element 0 (sub-block 0, low) = 10; element 32 (sub-block 1, high) = 0.
  b.qs[64] = 0x09;  // Element 128 (sub-block 4, low) = 9.
  float y[256];
  dequantize_row(GgmlType::kQ4_K, &b, y, 256);
  // Sub-block 0: scale 0x41 & 63 = 1, min 0x85 & 63 = 5.
  EXPECT_EQ(y[0], 1.0f * 10 - 5);
  EXPECT_EQ(y[1], -5.0f);
  // Sub-block 1: scale 2, min 6.
  EXPECT_EQ(y[32], -6.0f);
  // Sub-block 4: scale = (0x21 & 15) | (0x41 >> 6) << 4 = 17; min = (0x21 >> 4) | (0x85 >> 6)
  // << 4 = 34.
  EXPECT_EQ(y[128], 17.0f * 9 - 34);
  // Sub-block 5: scale = 0 | (0x02 >> 6) << 4 = 0; min = 0 | (0x06 >> 6) << 4 = 0.
  EXPECT_EQ(y[160], 0.0f);
}

TEST(DequantizeTest, Q4_KHandBuilt) {
  const int sc[8] = {1, 5, 17, 63, 32, 45, 7, 60};
  const int mn[8] = {0, 3, 63, 12, 33, 16, 50, 1};
  BlockQ4_K b{};
  b.d = 0x3400;     // 0.25
  b.dmin = 0x3000;  // 0.125
  for (int k = 0; k < 4; ++k) {
    b.scales[k] = static_cast<std::uint8_t>(sc[k] | ((sc[k + 4] >> 4) << 6));
    b.scales[4 + k] = static_cast<std::uint8_t>(mn[k] | ((mn[k + 4] >> 4) << 6));
    b.scales[8 + k] = static_cast<std::uint8_t>((sc[k + 4] & 15) | ((mn[k + 4] & 15) << 4));
  }
  auto quant = [](int e) { return (e * 7 + 3) % 16; };
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    std::uint8_t& byte = b.qs[32 * (sub / 2) + e % 32];
    byte = static_cast<std::uint8_t>(byte | (sub % 2 == 0 ? quant(e) : quant(e) << 4));
  }
  float y[256];
  dequantize_row(GgmlType::kQ4_K, &b, y, 256);
  for (int e = 0; e < 256; ++e) {
    const double want = 0.25 * sc[e / 32] * quant(e) - 0.125 * mn[e / 32];
    ASSERT_EQ(static_cast<double>(y[e]), want) << e;
  }
  EXPECT_EQ(q4k_scale_min(b.scales, 6).scale, 7);
  EXPECT_EQ(q4k_scale_min(b.scales, 6).min, 50);
}

TEST(DequantizeTest, Q6_KHandBuilt) {
  BlockQ6_K b{};
  b.d = 0x3800;  // 0.5
  const int sc[16] = {1, -1, 127, -128, 2, 3, 5, 7, 11, -13, 17, 19, -23, 29, 31, 0};
  for (int s = 0; s < 16; ++s)
    b.scales[s] = static_cast<std::int8_t>(sc[s]);
  auto quant = [](int e) { return (e * 11 + 5) % 64; };
  for (int e = 0; e < 256; ++e)
    set_q6_k_quant(b, e, quant(e));
  float y[256];
  dequantize_row(GgmlType::kQ6_K, &b, y, 256);
  for (int e = 0; e < 256; ++e) {
    const double want = 0.5 * sc[e / 16] * (quant(e) - 32);
    ASSERT_EQ(static_cast<double>(y[e]), want) << e;
  }
  // Spot-check the interleaving with literal bytes: element 200 is half 1, quarter 2, lane 8:
  // low nibble = high nibble of ql[64 + 8], top bits = bits 4..5 of qh[32 + 8].
  BlockQ6_K c{};
  c.d = 0x3C00;
  c.scales[200 / 16] = 3;
  c.ql[72] = 0x50;  // High nibble 5.
  c.qh[40] = 0x20;  // Bits 4..5 = 2.
  dequantize_row(GgmlType::kQ6_K, &c, y, 256);
  EXPECT_EQ(y[200], 3.0f * ((5 + 2 * 16) - 32));
  EXPECT_EQ(y[136], -32.0f * c.scales[136 / 16]);  // Same bytes' other lanes read q = 0.
}

// ---- Random blocks against the per-element references. With scales of moderate exponent,
// each reference value is exact in double and ggml's float expression rounds only once, so the
// float result must equal the rounded reference exactly.

TEST(DequantizeTest, RandomBlocksMatchReference) {
  std::mt19937 rng(3);
  constexpr int kBlocks = 64;
  {
    std::vector<BlockQ8_0> blocks(kBlocks);
    fill_random_bytes(rng, blocks.data(), blocks.size() * sizeof(BlockQ8_0));
    for (BlockQ8_0& b : blocks)
      b.d = random_scale(rng);
    std::vector<float> y(kBlocks * 32);
    dequantize_row(GgmlType::kQ8_0, blocks.data(), y.data(), kBlocks * 32);
    for (int i = 0; i < kBlocks * 32; ++i) {
      ASSERT_EQ(y[i], static_cast<float>(ref_fp16(blocks[i / 32].d) * blocks[i / 32].qs[i % 32]));
    }
  }
  {
    std::vector<BlockQ4_0> blocks(kBlocks);
    fill_random_bytes(rng, blocks.data(), blocks.size() * sizeof(BlockQ4_0));
    for (BlockQ4_0& b : blocks)
      b.d = random_scale(rng);
    std::vector<float> y(kBlocks * 32);
    dequantize_row(GgmlType::kQ4_0, blocks.data(), y.data(), kBlocks * 32);
    for (int i = 0; i < kBlocks * 32; ++i) {
      const BlockQ4_0& b = blocks[i / 32];
      ASSERT_EQ(y[i], static_cast<float>(ref_fp16(b.d) * (ref_q4_0_quant(b, i % 32) - 8)));
    }
  }
  {
    std::vector<BlockQ4_K> blocks(kBlocks);
    fill_random_bytes(rng, blocks.data(), blocks.size() * sizeof(BlockQ4_K));
    for (BlockQ4_K& b : blocks) {
      b.d = random_scale(rng);
      b.dmin = random_scale(rng);
    }
    std::vector<float> y(kBlocks * 256);
    dequantize_row(GgmlType::kQ4_K, blocks.data(), y.data(), kBlocks * 256);
    for (int i = 0; i < kBlocks * 256; ++i) {
      ASSERT_EQ(y[i], static_cast<float>(ref_q4_k(blocks[i / 256], i % 256))) << i;
    }
  }
  {
    std::vector<BlockQ6_K> blocks(kBlocks);
    fill_random_bytes(rng, blocks.data(), blocks.size() * sizeof(BlockQ6_K));
    for (BlockQ6_K& b : blocks)
      b.d = random_scale(rng);
    std::vector<float> y(kBlocks * 256);
    dequantize_row(GgmlType::kQ6_K, blocks.data(), y.data(), kBlocks * 256);
    for (int i = 0; i < kBlocks * 256; ++i) {
      ASSERT_EQ(y[i], static_cast<float>(ref_q6_k(blocks[i / 256], i % 256))) << i;
    }
  }
}

TEST(DequantizeTest, PlainFloatTypes) {
  std::mt19937 rng(4);
  std::vector<std::uint16_t> halves(1000);
  fill_random_bytes(rng, halves.data(), halves.size() * 2);
  std::vector<float> y(1000);
  dequantize_row(GgmlType::kF16, halves.data(), y.data(), 1000);
  for (int i = 0; i < 1000; ++i) {
    if (is_fp16_nan(halves[i])) {
      EXPECT_TRUE(std::isnan(y[i]));
    } else {
      EXPECT_EQ(static_cast<double>(y[i]), ref_fp16(halves[i])) << i;
    }
  }
  dequantize_row(GgmlType::kBF16, halves.data(), y.data(), 1000);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(y[i]), static_cast<std::uint32_t>(halves[i]) << 16);
  }
  const std::vector<float> x = random_floats(rng, 1000, 3.0f);
  dequantize_row(GgmlType::kF32, x.data(), y.data(), 1000);
  EXPECT_EQ(x, y);
}

// ---- Quantizers.

TEST(QuantizeTest, Q8_0KnownValues) {
  // amax 127 makes d = 1, so q is round-half-away-from-zero of x (ggml uses roundf).
  float x[32] = {127.0f, -127.0f, 63.5f, 0.5f, -0.5f, 2.5f, -2.5f, 1.4999f, 0.0f, -126.6f};
  BlockQ8_0 b{};
  quantize_row(GgmlType::kQ8_0, x, &b, 32);
  EXPECT_EQ(b.d, 0x3C00);
  const int want[10] = {127, -127, 64, 1, -1, 3, -3, 1, 0, -127};
  for (int j = 0; j < 10; ++j)
    EXPECT_EQ(b.qs[j], want[j]) << j;
  for (int j = 10; j < 32; ++j)
    EXPECT_EQ(b.qs[j], 0) << j;

  float zeros[32] = {};
  quantize_row(GgmlType::kQ8_0, zeros, &b, 32);
  EXPECT_EQ(b.d, 0);
  for (int j = 0; j < 32; ++j)
    EXPECT_EQ(b.qs[j], 0);
}

TEST(QuantizeTest, Q4_0KnownValues) {
  // The signed maximum -8 makes d = 1 and q = min(15, trunc(x + 8.5)).
  float x[32] = {-8.0f, 7.6f, 0.49f, 0.5f, -0.51f, 3.0f, 8.0f};
  BlockQ4_0 b{};
  quantize_row(GgmlType::kQ4_0, x, &b, 32);
  EXPECT_EQ(b.d, 0x3C00);
  const int want[7] = {0, 15, 8, 9, 7, 11, 15};
  for (int j = 0; j < 7; ++j)
    EXPECT_EQ(ref_q4_0_quant(b, j), want[j]) << j;
  for (int j = 7; j < 32; ++j)
    EXPECT_EQ(ref_q4_0_quant(b, j), 8) << j;

  // A positive signed maximum gives a negative d: 8 maps to q = 0, i.e. (0 - 8) * -1.
  float y[32] = {};
  y[20] = 8.0f;
  y[3] = -4.0f;
  quantize_row(GgmlType::kQ4_0, y, &b, 32);
  EXPECT_EQ(b.d, 0xBC00);  // -1.0
  EXPECT_EQ(ref_q4_0_quant(b, 20), 0);
  EXPECT_EQ(ref_q4_0_quant(b, 3), 12);
}

// Quantize `x` as `type` and dequantize it again.
std::vector<float> round_trip(GgmlType type, const std::vector<float>& x,
                              std::vector<unsigned char>* bytes) {
  const auto n = static_cast<std::int64_t>(x.size());
  bytes->assign(row_bytes(type, n), 0xCD);
  quantize_row(type, x.data(), bytes->data(), n);
  std::vector<float> y(x.size());
  dequantize_row(type, bytes->data(), y.data(), n);
  return y;
}

// Random data whose scale varies by block, so that blocks with tiny and large values coexist.
std::vector<float> varied_data(std::mt19937& rng, std::int64_t n, int block) {
  std::vector<float> x = random_floats(rng, n, 1.0f);
  std::uniform_real_distribution<float> log_scale(-6.0f, 6.0f);
  for (std::int64_t b = 0; b < n / block; ++b) {
    const float scale = std::exp2(log_scale(rng));
    for (int i = 0; i < block; ++i)
      x[static_cast<std::size_t>(b * block + i)] *= scale;
  }
  return x;
}

double relative_rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0;
  double norm = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    norm += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(err / norm);
}

TEST(QuantizeTest, Q8_0RoundTripWithinHalfStep) {
  std::mt19937 rng(5);
  const std::vector<float> x = varied_data(rng, 32 * 100, 32);
  std::vector<unsigned char> bytes;
  const std::vector<float> y = round_trip(GgmlType::kQ8_0, x, &bytes);
  for (int b = 0; b < 100; ++b) {
    double amax = 0;
    for (int i = 0; i < 32; ++i)
      amax = std::max(amax, std::fabs(static_cast<double>(x[b * 32 + i])));
    const double d = amax / 127;
    const double d16 = ref_fp16(reinterpret_cast<const BlockQ8_0*>(bytes.data())[b].d);
    // Half a step, plus what storing d as fp16 moves the largest quant.
    const double bound = d / 2 + 127 * std::fabs(d - d16) + 1e-7 * amax;
    for (int i = 0; i < 32; ++i) {
      ASSERT_LE(std::fabs(x[b * 32 + i] - static_cast<double>(y[b * 32 + i])), bound) << b;
    }
  }
  EXPECT_LT(relative_rms_error(x, y), 0.01);
}

TEST(QuantizeTest, Q4_0RoundTripWithinOneStep) {
  std::mt19937 rng(6);
  const std::vector<float> x = varied_data(rng, 32 * 100, 32);
  std::vector<unsigned char> bytes;
  const std::vector<float> y = round_trip(GgmlType::kQ4_0, x, &bytes);
  for (int b = 0; b < 100; ++b) {
    double amax = 0;
    for (int i = 0; i < 32; ++i)
      amax = std::max(amax, std::fabs(static_cast<double>(x[b * 32 + i])));
    const double d = amax / 8;
    const double d16 = std::fabs(ref_fp16(reinterpret_cast<const BlockQ4_0*>(bytes.data())[b].d));
    // Half a step, except a full step where +amax meets the clamp at 15 (7 * d).
    const double bound = d + 8 * std::fabs(d - d16) + 1e-7 * amax;
    for (int i = 0; i < 32; ++i) {
      ASSERT_LE(std::fabs(x[b * 32 + i] - static_cast<double>(y[b * 32 + i])), bound) << b;
    }
  }
  EXPECT_LT(relative_rms_error(x, y), 0.12);
}

TEST(QuantizeTest, Q4_KRoundTripWithinAboutHalfStep) {
  std::mt19937 rng(7);
  constexpr int kSuper = 40;
  std::vector<float> x = varied_data(rng, 256 * kSuper, 32);  // Sub-block scales vary too.
  for (int i = 0; i < 256; ++i)
    x[i] = std::fabs(x[i]) + 3.0f;  // An all-positive block.
  for (int i = 256; i < 512; ++i)
    x[i] = -std::fabs(x[i]) - 3.0f;  // An all-negative block.
  for (int i = 512; i < 768; ++i)
    x[i] = 0.0f;
  std::vector<unsigned char> bytes;
  const std::vector<float> y = round_trip(GgmlType::kQ4_K, x, &bytes);
  for (int b = 0; b < kSuper; ++b) {
    // The quantizer's own step and offset choices, recomputed: step (hi - min(0, lo)) / 15.
    double max_step = 0;
    double max_offset = 0;
    double amax = 0;
    for (int s = 0; s < 8; ++s) {
      const float* xs = x.data() + b * 256 + s * 32;
      const double lo = std::min(0.0f, *std::min_element(xs, xs + 32));
      const double hi = *std::max_element(xs, xs + 32);
      max_step = std::max(max_step, (hi - lo) / 15);
      max_offset = std::max(max_offset, -lo);
      amax = std::max({amax, std::fabs(lo), std::fabs(hi)});
    }
    // Half a step, or where the 6-bit scale rounded down, up to 15 half-units of d = max step /
    // 63 (about 0.12 of a step), plus half a unit of dmin; see quantize_q4_k.
    const double bound = 0.55 * max_step + 0.51 * max_offset / 63 + 1e-6 * amax;
    for (int i = 0; i < 256; ++i) {
      ASSERT_LE(std::fabs(x[b * 256 + i] - static_cast<double>(y[b * 256 + i])), bound)
          << b << " " << i;
    }
  }
  for (int i = 512; i < 768; ++i)
    EXPECT_EQ(y[i], 0.0f);
  std::mt19937 rng2(8);
  const std::vector<float> gaussian = random_floats(rng2, 256 * 64, 1.0f);
  EXPECT_LT(relative_rms_error(gaussian, round_trip(GgmlType::kQ4_K, gaussian, &bytes)), 0.12);
}

TEST(QuantizeTest, Q6_KRoundTripWithinAboutHalfStep) {
  std::mt19937 rng(9);
  constexpr int kSuper = 40;
  std::vector<float> x = varied_data(rng, 256 * kSuper, 16);
  for (int i = 0; i < 256; ++i)
    x[i] = 0.0f;
  std::vector<unsigned char> bytes;
  const std::vector<float> y = round_trip(GgmlType::kQ6_K, x, &bytes);
  for (int b = 0; b < kSuper; ++b) {
    double max_step = 0;
    for (int i = 0; i < 256; ++i) {
      max_step = std::max(max_step, std::fabs(static_cast<double>(x[b * 256 + i])) / 31);
    }
    // Half a step, or up to 31 half-units of d = max step / 127 where the 8-bit scale rounded
    // down; see quantize_q6_k.
    const double bound = 0.55 * max_step + 1e-6 * max_step;
    for (int i = 0; i < 256; ++i) {
      ASSERT_LE(std::fabs(x[b * 256 + i] - static_cast<double>(y[b * 256 + i])), bound)
          << b << " " << i;
    }
  }
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(y[i], 0.0f);
  std::mt19937 rng2(10);
  const std::vector<float> gaussian = random_floats(rng2, 256 * 64, 1.0f);
  EXPECT_LT(relative_rms_error(gaussian, round_trip(GgmlType::kQ6_K, gaussian, &bytes)), 0.03);
}

TEST(QuantizeTest, PlainFloatTypesRoundTrip) {
  std::mt19937 rng(11);
  const std::vector<float> x = varied_data(rng, 1000, 1);
  std::vector<unsigned char> bytes;
  const std::vector<float> f32 = round_trip(GgmlType::kF32, x, &bytes);
  EXPECT_EQ(f32, x);
  const std::vector<float> f16 = round_trip(GgmlType::kF16, x, &bytes);
  const std::vector<float> bf16 = round_trip(GgmlType::kBF16, x, &bytes);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double ax = std::fabs(static_cast<double>(x[i]));
    // Relative half-ulp for normals; fp16 subnormals are spaced 2^-24 apart.
    EXPECT_LE(std::fabs(x[i] - static_cast<double>(f16[i])), std::max(ax * 0x1p-11, 0x1p-25));
    EXPECT_LE(std::fabs(x[i] - static_cast<double>(bf16[i])), ax * 0x1p-8);
    EXPECT_EQ(f16[i], fp16_to_fp32(fp32_to_fp16(x[i])));
    EXPECT_EQ(bf16[i], bf16_to_fp32(fp32_to_bf16(x[i])));
  }
}

// ---- dot_row.

TEST(DotRowTest, MatchesDequantizeThenDoubleDot) {
  struct Case {
    GgmlType type;
    std::int64_t n;
  };
  const Case cases[] = {
      {GgmlType::kF32, 1},        {GgmlType::kF32, 1000},     {GgmlType::kF16, 255},
      {GgmlType::kF16, 4099},     {GgmlType::kBF16, 777},     {GgmlType::kQ8_0, 32},
      {GgmlType::kQ8_0, 7 * 32},  {GgmlType::kQ8_0, 40 * 32}, {GgmlType::kQ4_0, 32},
      {GgmlType::kQ4_0, 41 * 32}, {GgmlType::kQ4_K, 256},     {GgmlType::kQ4_K, 5 * 256},
      {GgmlType::kQ6_K, 256},     {GgmlType::kQ6_K, 3 * 256}, {GgmlType::kQ8_0, 0},
  };
  std::mt19937 rng(12);
  for (const Case& c : cases) {
    const std::vector<float> w = random_floats(rng, c.n, 0.5f);
    const std::vector<float> x = random_floats(rng, c.n, 2.0f);
    std::vector<unsigned char> bytes;
    const std::vector<float> dw = round_trip(c.type, w, &bytes);
    double want = 0;
    double magnitude = 0;
    for (std::int64_t i = 0; i < c.n; ++i) {
      want += static_cast<double>(dw[i]) * x[i];
      magnitude += std::fabs(static_cast<double>(dw[i]) * x[i]);
    }
    const float got = dot_row(c.type, bytes.data(), x.data(), c.n);
    EXPECT_NEAR(got, want, 1e-6 * magnitude + 1e-30) << ggml_type_info(c.type).name << " n=" << c.n;
  }
}

TEST(DotRowTest, HandBuiltQ4_0) {
  BlockQ4_0 blocks[2]{};
  blocks[0].d = 0x3C00;  // 1.0
  blocks[1].d = 0x4000;  // 2.0
  for (int j = 0; j < 16; ++j) {
    blocks[0].qs[j] = 0x99;  // Every element of block 0 is (9 - 8) * 1 = 1.
    blocks[1].qs[j] = 0x77;  // Every element of block 1 is (7 - 8) * 2 = -2.
  }
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i)
    x[i] = static_cast<float>(i);
  // Block 0: sum 0..31 = 496. Block 1: -2 * sum 32..63 = -2 * 1520.
  EXPECT_EQ(dot_row(GgmlType::kQ4_0, blocks, x.data(), 64), 496.0f - 3040.0f);
}

// ---- Preconditions.

TEST(QuantDeathTest, PreconditionViolationsAbort) {
  float buffer[64] = {};
  unsigned char bytes[256] = {};
  EXPECT_FALSE(can_dequantize(GgmlType::kQ4_1));
  EXPECT_FALSE(can_quantize(GgmlType::kQ5_K));
  EXPECT_TRUE(can_dequantize(GgmlType::kBF16));
  EXPECT_DEATH(dequantize_row(GgmlType::kQ4_1, bytes, buffer, 32), "type not supported");
  EXPECT_DEATH(dequantize_row(GgmlType::kQ8_0, bytes, buffer, 33), "multiple of the block");
  EXPECT_DEATH(quantize_row(GgmlType::kQ4_0, buffer, bytes, 16), "multiple of the block");
  EXPECT_DEATH((void)dot_row(GgmlType::kQ2_K, bytes, buffer, 256), "type not supported");
}

}  // namespace
}  // namespace spillway::engine
