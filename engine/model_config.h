// Hyper-parameters of a Llama-family model, read from GGUF metadata or a llama2.c header.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace spillway::engine {

class GgufFile;
struct Llama2cConfig;

enum class Architecture { kLlama, kQwen2 };

// How RoPE pairs the elements of a head: kNormal rotates adjacent pairs (x[2i], x[2i+1]), as
// ggml's default mode and llama2.c do; kNeox rotates (x[i], x[i + rope_dim/2]), as GPT-NeoX and
// Qwen2 do.
enum class RopeMode { kNormal, kNeox };

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  std::string arch_name;    // general.architecture, e.g. "llama".
  std::int32_t n_embd = 0;  // Residual stream width.
  std::int32_t n_ff = 0;    // Feed-forward hidden width.
  std::int32_t n_layer = 0;
  std::int32_t n_head = 0;
  std::int32_t n_head_kv = 0;  // < n_head for grouped-query attention.
  std::int32_t head_dim = 0;   // Per-head width of queries/keys/values.
  std::int32_t n_vocab = 0;
  std::int32_t n_ctx_train = 0;  // Context length the model was trained for.
  std::int32_t rope_dim = 0;     // Leading dimensions of each head that RoPE rotates.
  float rope_freq_base = 10000.0f;
  RopeMode rope_mode = RopeMode::kNormal;
  float rms_eps = 1e-5f;
  bool attention_bias = false;  // Q/K/V projections have bias vectors (Qwen2).

  [[nodiscard]] std::int32_t q_dim() const { return n_head * head_dim; }
  [[nodiscard]] std::int32_t kv_dim() const { return n_head_kv * head_dim; }
};

// Reads and validates the hyper-parameters. Errors name the key and the problem (kNotFound for a
// missing required key, kUnimplemented for an unsupported architecture, kInvalidArgument for
// inconsistent values such as head counts that do not divide).
[[nodiscard]] Result<ModelConfig> model_config_from_gguf(const GgufFile& file);
[[nodiscard]] Result<ModelConfig> model_config_from_llama2c(const Llama2cConfig& c);

// Checks the relations every later stage relies on (positive sizes, n_head % n_head_kv == 0,
// even rope_dim <= head_dim, sane upper bounds).
[[nodiscard]] Status validate_model_config(const ModelConfig& c);

}  // namespace spillway::engine
