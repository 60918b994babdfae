// Scalar reference conversions between f32 and the tensor types Spillway computes with, and a
// reference dot product of one weight row with an f32 vector. These are the plain, obviously
// correct implementations that faster (SIMD) kernels are tested against; they do not allocate.
//
// A "row" is `n` consecutive elements stored in `type`'s format: n / block_elements blocks of
// block_bytes each (see engine/ggml_type.h), with no padding between blocks. Block pointers need
// only the alignment of their fp16 fields (2 bytes); GGUF tensor data satisfies that.
//
// Dequantization is bit-exact with ggml's reference dequantize_row_* for every supported type.
// Quantization:
//   - F32, F16, BF16, Q8_0, Q4_0: bit-exact with ggml's reference quantizers
//     (quantize_row_*_ref, fp32 -> fp16/bf16 row conversion).
//   - Q4_K, Q6_K: a simple one-pass quantizer of our own (min/max per sub-block, then 6-bit or
//     8-bit sub-block scales relative to the super-block scale). Its blocks are valid and
//     dequantize to within about one quantization step of the input, but they are NOT the bytes
//     ggml's quantizer (an iterative error search) would write for the same input.
// Inputs to quantize_row must be finite, and small enough that the resulting scales fit fp16
// (|x| well below 65504 * 127 for Q8_0, for example), as ggml also assumes.
//
// Precondition violations (unsupported type, n not a multiple of the block size) are
// programmer errors: they abort with a message. Callers facing untrusted data (a GGUF file)
// validate type and shape first, with ggml_type_info and ggml_row_bytes.
//
// Thread-safety: pure functions; distinct calls may run concurrently.
#pragma once

#include <cstdint>

#include "engine/ggml_type.h"

namespace spillway::engine {

// Types dequantize_row and dot_row accept: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K.
[[nodiscard]] bool can_dequantize(GgmlType type);
// Types quantize_row accepts: the same set.
[[nodiscard]] bool can_quantize(GgmlType type);

// Decodes the n elements of the row at `src` into dst[0..n).
// REQUIRES: can_dequantize(type); n >= 0 and a multiple of the type's block size.
void dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n);

// Encodes src[0..n) as a row of `type` at `dst` (ggml_row_bytes(type, n) bytes).
// REQUIRES: can_quantize(type); n >= 0 and a multiple of the type's block size.
void quantize_row(GgmlType type, const float* src, void* dst, std::int64_t n);

// sum_i row[i] * x[i] over the n elements of the row at `row`. Products and sums are in
// double (in a fixed order, so the result is deterministic), rounded to float once at the end.
// x holds n floats.
// REQUIRES: can_dequantize(type); n >= 0 and a multiple of the type's block size.
[[nodiscard]] float dot_row(GgmlType type, const void* row, const float* x, std::int64_t n);

}  // namespace spillway::engine
