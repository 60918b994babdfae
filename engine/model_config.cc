#include "engine/model_config.h"

#include <fmt/format.h>

#include "engine/gguf.h"
#include "engine/llama2c.h"

namespace spillway::engine {
namespace {

// Upper bounds that no real model reaches; they keep size arithmetic far from overflow.
constexpr std::int64_t kMaxWidth = 1 << 17;
constexpr std::int64_t kMaxLayers = 1 << 10;
constexpr std::int64_t kMaxHeads = 1 << 12;
constexpr std::int64_t kMaxContext = 1 << 24;

Result<std::int32_t> get_dim(const GgufFile& f, const std::string& key, std::int64_t max) {
  SPW_ASSIGN_OR_RETURN(const std::uint64_t v, f.get_u64(key));
  if (v == 0 || v > static_cast<std::uint64_t>(max)) {
    return make_error(ErrorCode::kInvalidArgument, "metadata {} = {} is out of range [1, {}]", key,
                      v, max);
  }
  return static_cast<std::int32_t>(v);
}

Result<std::int32_t> get_dim_or(const GgufFile& f, const std::string& key, std::int32_t fallback,
                                std::int64_t max) {
  if (f.find(key) == nullptr) return fallback;
  return get_dim(f, key, max);
}

}  // namespace

Status validate_model_config(const ModelConfig& c) {
  auto bad = [](std::string msg) { return Error(ErrorCode::kInvalidArgument, std::move(msg)); };
  if (c.n_embd <= 0 || c.n_ff <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 ||
      c.head_dim <= 0 || c.n_vocab <= 0 || c.n_ctx_train <= 0) {
    return bad("model hyper-parameters must all be positive");
  }
  if (c.n_head % c.n_head_kv != 0) {
    return bad(
        fmt::format("head_count {} is not a multiple of head_count_kv {}", c.n_head, c.n_head_kv));
  }
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    return bad(fmt::format("rope dimension count {} must be even and in [2, head size {}]",
                           c.rope_dim, c.head_dim));
  }
  if (!(c.rope_freq_base > 0) || !(c.rms_eps > 0)) {
    return bad("rope.freq_base and layer_norm_rms_epsilon must be positive");
  }
  if (static_cast<std::int64_t>(c.n_head) * c.head_dim > kMaxWidth) {
    return bad("attention width is too large");
  }
  return Status();
}

Result<ModelConfig> model_config_from_gguf(const GgufFile& f) {
  ModelConfig c;
  SPW_ASSIGN_OR_RETURN(const std::string_view arch, f.get_string("general.architecture"));
  c.arch_name = std::string(arch);
  if (arch == "llama") {
    c.arch = Architecture::kLlama;
    c.rope_mode = RopeMode::kNormal;
  } else if (arch == "qwen2") {
    c.arch = Architecture::kQwen2;
    c.rope_mode = RopeMode::kNeox;
    c.attention_bias = true;
  } else {
    return make_error(ErrorCode::kUnimplemented,
                      "unsupported architecture '{}' (supported: llama, qwen2)", arch);
  }
  const std::string p = c.arch_name + ".";
  SPW_ASSIGN_OR_RETURN(c.n_embd, get_dim(f, p + "embedding_length", kMaxWidth));
  SPW_ASSIGN_OR_RETURN(c.n_ff, get_dim(f, p + "feed_forward_length", kMaxWidth * 4));
  SPW_ASSIGN_OR_RETURN(c.n_layer, get_dim(f, p + "block_count", kMaxLayers));
  SPW_ASSIGN_OR_RETURN(c.n_head, get_dim(f, p + "attention.head_count", kMaxHeads));
  SPW_ASSIGN_OR_RETURN(c.n_head_kv,
                       get_dim_or(f, p + "attention.head_count_kv", c.n_head, kMaxHeads));
  SPW_ASSIGN_OR_RETURN(c.n_ctx_train, get_dim(f, p + "context_length", kMaxContext));
  if (c.n_embd % c.n_head != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "embedding_length {} is not a multiple of head_count {}", c.n_embd, c.n_head);
  }
  SPW_ASSIGN_OR_RETURN(c.head_dim,
                       get_dim_or(f, p + "attention.key_length", c.n_embd / c.n_head, kMaxWidth));
  SPW_ASSIGN_OR_RETURN(const std::int32_t value_dim,
                       get_dim_or(f, p + "attention.value_length", c.head_dim, kMaxWidth));
  if (value_dim != c.head_dim) {
    return make_error(ErrorCode::kUnimplemented,
                      "attention.value_length {} differs from key_length {}", value_dim,
                      c.head_dim);
  }
  SPW_ASSIGN_OR_RETURN(c.rope_dim,
                       get_dim_or(f, p + "rope.dimension_count", c.head_dim, kMaxWidth));
  if (f.find(p + "rope.freq_base") != nullptr) {
    SPW_ASSIGN_OR_RETURN(c.rope_freq_base, f.get_f32(p + "rope.freq_base"));
  }
  if (f.find(p + "attention.layer_norm_rms_epsilon") != nullptr) {
    SPW_ASSIGN_OR_RETURN(c.rms_eps, f.get_f32(p + "attention.layer_norm_rms_epsilon"));
  }
  if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
      tokens != nullptr && tokens->is_array()) {
    c.n_vocab = static_cast<std::int32_t>(std::min<std::uint64_t>(tokens->array_size(), 1u << 30));
  } else {
    SPW_ASSIGN_OR_RETURN(c.n_vocab, get_dim(f, p + "vocab_size", 1 << 22));
  }
  SPW_TRY(validate_model_config(c));
  return c;
}

Result<ModelConfig> model_config_from_llama2c(const Llama2cConfig& l) {
  ModelConfig c;
  c.arch = Architecture::kLlama;
  c.arch_name = "llama";
  c.n_embd = l.dim;
  c.n_ff = l.hidden_dim;
  c.n_layer = l.n_layers;
  c.n_head = l.n_heads;
  c.n_head_kv = l.n_kv_heads;
  c.head_dim = l.n_heads > 0 ? l.dim / l.n_heads : 0;
  c.n_vocab = l.vocab_size;
  c.n_ctx_train = l.seq_len;
  c.rope_dim = c.head_dim;  // run.c rotates the whole head.
  c.rope_freq_base = 10000.0f;
  c.rms_eps = 1e-5f;
  SPW_TRY(validate_model_config(c));
  return c;
}

}  // namespace spillway::engine
