// A loaded Llama-family model: hyper-parameters, tokenizer and weight views.
//
// The weights stay in the memory-mapped file (GGUF or llama2.c); the model only holds views
// into it, plus small F32 copies of the 1-D tensors (norms, biases, RoPE frequency factors),
// which the forward pass reads as plain floats whatever type the file stores them in. The
// exception: with ModelLoadOptions::repack_weights, F16, Q8_0 and Q4_0 matrices are copied once,
// at load, into the panel layout of engine/quant_repack.h (Matrix::panels), which the kernels
// stream faster; the file pages they came from are then released, so resident memory stays
// about one copy of the weights.
//
// Thread-safety: immutable after load(); safe to share between threads.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

#include "engine/gguf.h"
#include "engine/llama2c.h"
#include "engine/model_config.h"
#include "engine/quant_repack.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"

namespace spillway::engine {

// A 2-D weight matrix: `rows` rows of `cols` elements each, row r at data + r * row_bytes.
// In ggml terms, shape {cols, rows}: y = W x maps a cols-vector to a rows-vector.
struct Matrix {
  GgmlType type = GgmlType::kF32;
  std::int64_t cols = 0;
  std::int64_t rows = 0;
  std::size_t row_bytes = 0;
  const std::byte* data = nullptr;
  std::string name;
  // The same weights in the panel layout of engine/quant_repack.h (nullptr when not repacked);
  // matmul prefers it where the kernel level has a panel kernel. `data` stays valid either way.
  const std::byte* panels = nullptr;

  [[nodiscard]] const std::byte* row(std::int64_t r) const {
    return data + static_cast<std::size_t>(r) * row_bytes;
  }
};

struct LayerWeights {
  std::vector<float> attn_norm;       // [n_embd]
  Matrix wq, wk, wv, wo;              // q: n_embd→q_dim, k/v: n_embd→kv_dim, o: q_dim→n_embd
  std::vector<float> bq, bk, bv;      // Empty unless attention_bias.
  std::vector<float> ffn_norm;        // [n_embd]
  Matrix ffn_gate, ffn_up, ffn_down;  // gate/up: n_embd→n_ff, down: n_ff→n_embd
};

struct ModelLoadOptions {
  std::string path;            // A .gguf file, or a llama2.c checkpoint.
  std::string tokenizer_path;  // llama2.c only: the tokenizer .bin (e.g. tok512.bin).
  // Repack F16, Q8_0 and Q4_0 matrices into panels when the selected kernel level
  // (selected_isa()) has panel kernels for them. Costs a pass over those weights at load.
  bool repack_weights = true;
};

class Model {
 public:
  // Detects the format from the file's first bytes ("GGUF", else llama2.c, which needs
  // tokenizer_path). Errors are one line, prefixed with the path, naming the problem: missing
  // or mis-shaped tensor, unsupported type or architecture, corrupt file.
  [[nodiscard]] static Result<std::unique_ptr<Model>> load(const ModelLoadOptions& options);

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] const Vocab& vocab() const { return tokenizer_->vocab(); }
  [[nodiscard]] const Tokenizer& tokenizer() const { return *tokenizer_; }

  [[nodiscard]] const Matrix& token_embd() const { return token_embd_; }  // rows = n_vocab
  [[nodiscard]] std::span<const LayerWeights> layers() const { return layers_; }
  [[nodiscard]] std::span<const float> output_norm() const { return output_norm_; }
  [[nodiscard]] const Matrix& output() const { return output_; }  // The embedding when tied.
  // Llama-3 style per-dimension RoPE frequency divisors ([rope_dim / 2]); empty when absent.
  [[nodiscard]] std::span<const float> rope_freq_factors() const { return rope_freq_factors_; }
  // The model's chat template (tokenizer.chat_template), if it has one.
  [[nodiscard]] const std::optional<std::string>& chat_template() const { return chat_template_; }

  // Bytes of weights read to decode one token (all matrices but the embedding, whose one row
  // per token is negligible; the output matrix counts even when tied).
  [[nodiscard]] std::size_t weight_bytes_per_token() const;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  Model() = default;

 public:
  using TensorLookup = std::function<const GgufTensorInfo*(std::string_view)>;

 private:
  Status bind_weights(const TensorLookup& find);
  Status attach_vocab(Result<Vocab> vocab);
  // Fills Matrix::panels for the matrices the forward pass multiplies (not token_embd, which
  // is read by row); release_file_pages: the weights come from a private read-only file
  // mapping whose pages may be dropped once copied.
  Status repack_weights(bool release_file_pages);

  std::string path_;
  std::variant<std::monostate, GgufFile, Llama2cCheckpoint> source_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  Matrix token_embd_;
  std::vector<LayerWeights> layers_;
  std::vector<float> output_norm_;
  Matrix output_;
  std::vector<float> rope_freq_factors_;
  std::optional<std::string> chat_template_;
  PanelBuffer panels_;  // Holds every Matrix::panels.
};

}  // namespace spillway::engine
