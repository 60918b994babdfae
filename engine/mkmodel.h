// Writes Llama-architecture GGUF files with random weights in realistic shapes, for
// benchmarks of realistic size and for tests of every tensor type end to end. The tokenizer is
// copied from a vocabulary GGUF (e.g. ggml-vocab-llama-spm.gguf), so the files load and
// tokenize like real models, or is a built-in byte vocabulary when none is given; their output
// is of course meaningless text.
//
// The files follow the format's reference layout: llama.cpp tensor names, metadata keys,
// ggml block layouts, alignment 32, so any conforming reader loads them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "engine/ggml_type.h"

namespace spillway::engine {

struct ModelShape {
  std::string name;
  std::int32_t n_embd = 0;
  std::int32_t n_ff = 0;
  std::int32_t n_layer = 0;
  std::int32_t n_head = 0;
  std::int32_t n_head_kv = 0;
  std::int32_t n_ctx = 0;
};

// "tinyllama-1.1b" (2048 / 5632 / 22 layers / 32 heads / 4 KV heads), "llama-110m" (768 / 2048 /
// 12 / 12 / 12) and "tiny" (256 / 512 / 2 / 4 / 2, for tests). Errors name the known shapes.
[[nodiscard]] Result<ModelShape> named_model_shape(std::string_view name);
[[nodiscard]] std::vector<std::string> named_model_shapes();

struct MkModelOptions {
  ModelShape shape;
  std::string arch = "llama";       // "llama", or "qwen2" (adds Q/K/V biases, NeoX RoPE).
  GgmlType type = GgmlType::kQ8_0;  // Of every matrix; norms stay F32.
  // GGUF holding tokenizer.* metadata; empty: a built-in byte-level vocabulary (260 tokens:
  // <unk>, <s>, </s>, the space piece and one token per byte), for self-contained smoke-test
  // models.
  std::string vocab_path;
  std::uint64_t seed = 0;
  std::string out_path;
};

// Parses "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k".
[[nodiscard]] Result<GgmlType> parse_weight_type(std::string_view name);

// Streams the file to disk (no second copy of the weights in memory); the same options and
// seed give the same bytes.
[[nodiscard]] Status write_random_model(const MkModelOptions& options);

}  // namespace spillway::engine
