// Reader for llama2.c checkpoints in the legacy (version 0) export format: a header of seven
// int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
// vocab_size means the classifier has its own weights) followed by float32 arrays.
//
// The weights are exposed as GgufTensorInfo views with the names and shapes a llama.cpp GGUF
// of the same model has (token_embd.weight {dim, vocab}, blk.N.attn_q.weight {dim, dim}, ...),
// so the model loader treats both sources alike. `output.weight` is absent when the classifier
// shares the embedding, as in a GGUF without an output tensor.
//
// RoPE: llama2.c's run.c rotates adjacent pairs (q[i], q[i+1]) of each head using the stored
// wq/wk rows as they are. llama.cpp's LLM_ARCH_LLAMA uses the same "normal" ggml RoPE
// (adjacent pairs); its HF converter permutes Q/K rows only to undo Hugging Face's
// rotate-half layout, and convert-llama2c-to-ggml copies the llama2.c matrices unchanged.
// Evidence: blk.L.attn_q/attn_k of stories260K.gguf are byte-identical to wq/wk of
// stories260K.bin (whose sha256 matches the published original), checked in llama2c_test.cc.
// So the engine uses one RoPE mode (adjacent pairs) for both sources, with no permutation.
//
// The trailing freq_cis tables are validated for size and otherwise ignored (the engine
// computes RoPE itself, as run.c does).
//
// Thread-safety: immutable after open(); concurrent reads are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "engine/gguf.h"

namespace spillway::engine {

struct Llama2cConfig {
  std::int32_t dim = 0;
  std::int32_t hidden_dim = 0;
  std::int32_t n_layers = 0;
  std::int32_t n_heads = 0;
  std::int32_t n_kv_heads = 0;
  std::int32_t vocab_size = 0;  // Always positive here; see shared_classifier.
  std::int32_t seq_len = 0;
  bool shared_classifier = true;  // The header's vocab_size was positive.

  [[nodiscard]] std::int32_t head_size() const { return dim / n_heads; }
  [[nodiscard]] std::int32_t kv_dim() const { return head_size() * n_kv_heads; }
};

// Caps on header values, so a corrupt header cannot describe a model whose size computations
// overflow; real llama2.c models are far below them.
struct Llama2cLimits {
  std::int32_t max_dim = 1 << 16;
  std::int32_t max_layers = 1 << 10;
  std::int32_t max_vocab = 1 << 20;
  std::int32_t max_seq_len = 1 << 20;
};

class Llama2cCheckpoint {
 public:
  // Maps and validates `path`. The file size must be exactly what the header implies.
  // Errors (prefixed with the path): kDataLoss for truncated or inconsistent files,
  // kUnimplemented for the newer versioned export formats.
  [[nodiscard]] static Result<Llama2cCheckpoint> open(const std::string& path,
                                                      const Llama2cLimits& limits = {});
  // As open(), over bytes owned by the caller. REQUIRES: `bytes` outlives the checkpoint, and
  // is 4-byte aligned (the weights are read as float).
  [[nodiscard]] static Result<Llama2cCheckpoint> parse(std::span<const std::byte> bytes,
                                                       const Llama2cLimits& limits = {});

  Llama2cCheckpoint(Llama2cCheckpoint&&) noexcept = default;
  Llama2cCheckpoint& operator=(Llama2cCheckpoint&&) noexcept = default;
  Llama2cCheckpoint(const Llama2cCheckpoint&) = delete;
  Llama2cCheckpoint& operator=(const Llama2cCheckpoint&) = delete;
  ~Llama2cCheckpoint() = default;

  [[nodiscard]] const Llama2cConfig& config() const { return config_; }
  // All F32. `offset` is the absolute byte offset in the checkpoint file.
  [[nodiscard]] std::span<const GgufTensorInfo> tensors() const { return tensors_; }
  // nullptr when absent.
  [[nodiscard]] const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  Llama2cCheckpoint() = default;

  MappedFile mapping_;  // Empty for parse().
  Llama2cConfig config_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace spillway::engine
