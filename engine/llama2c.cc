#include "engine/llama2c.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>
#include <utility>

namespace spillway::engine {
namespace {

constexpr std::size_t kHeaderBytes = 7 * sizeof(std::int32_t);
// The versioned exports (llama2.c export.py version >= 1) start with this magic ("ak42").
constexpr std::uint32_t kVersionedMagic = 0x616b3432;

// Lays out consecutive f32 arrays after the header and records them as tensors.
class Layout {
 public:
  explicit Layout(std::span<const std::byte> bytes) : bytes_(bytes) {}

  // Appends an f32 array of `shape`; named arrays become tensors, unnamed ones are skipped.
  void add(std::string name, std::vector<std::int64_t> shape) {
    std::uint64_t elements = 1;
    for (const std::int64_t d : shape)
      elements *= static_cast<std::uint64_t>(d);
    const std::uint64_t nbytes = elements * sizeof(float);
    if (!name.empty()) {
      GgufTensorInfo t;
      t.name = std::move(name);
      t.type = GgmlType::kF32;
      t.shape = std::move(shape);
      t.offset = pos_;
      t.nbytes = static_cast<std::size_t>(nbytes);
      tensors_.push_back(std::move(t));
    }
    pos_ += nbytes;
  }

  std::uint64_t end() const { return pos_; }

  // REQUIRES: end() <= bytes.size().
  std::vector<GgufTensorInfo> take() && {
    for (GgufTensorInfo& t : tensors_)
      t.data = bytes_.data() + t.offset;
    return std::move(tensors_);
  }

 private:
  std::span<const std::byte> bytes_;
  std::uint64_t pos_ = kHeaderBytes;
  std::vector<GgufTensorInfo> tensors_;
};

Status validate(const Llama2cConfig& c, const Llama2cLimits& limits) {
  const auto check = [](std::string_view field, std::int32_t v, std::int32_t max) -> Status {
    if (v < 1 || v > max) {
      return make_error(ErrorCode::kDataLoss, "header field {} is {} (expected 1 to {})", field, v,
                        max);
    }
    return Status();
  };
  SPW_TRY(check("dim", c.dim, limits.max_dim));
  // Hidden sizes of real models are a few times dim.
  SPW_TRY(check("hidden_dim", c.hidden_dim, 16 * limits.max_dim));
  SPW_TRY(check("n_layers", c.n_layers, limits.max_layers));
  SPW_TRY(check("n_heads", c.n_heads, c.dim));
  SPW_TRY(check("n_kv_heads", c.n_kv_heads, c.n_heads));
  SPW_TRY(check("vocab_size", c.vocab_size, limits.max_vocab));
  SPW_TRY(check("seq_len", c.seq_len, limits.max_seq_len));
  if (c.dim % c.n_heads != 0) {
    return make_error(ErrorCode::kDataLoss, "dim {} is not a multiple of n_heads {}", c.dim,
                      c.n_heads);
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return make_error(ErrorCode::kDataLoss, "n_heads {} is not a multiple of n_kv_heads {}",
                      c.n_heads, c.n_kv_heads);
  }
  if (c.head_size() % 2 != 0) {
    return make_error(ErrorCode::kDataLoss, "head size {} is odd; RoPE needs pairs", c.head_size());
  }
  return Status();
}

}  // namespace

Result<Llama2cCheckpoint> Llama2cCheckpoint::parse(std::span<const std::byte> bytes,
                                                   const Llama2cLimits& limits) {
  if (bytes.size() < kHeaderBytes) {
    return make_error(ErrorCode::kDataLoss,
                      "not a llama2.c checkpoint: {} bytes, the header alone needs {}",
                      bytes.size(), kHeaderBytes);
  }
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(float) != 0) {
    return make_error(ErrorCode::kInvalidArgument, "checkpoint bytes are not 4-byte aligned");
  }
  std::int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof(h));
  if (static_cast<std::uint32_t>(h[0]) == kVersionedMagic) {
    return make_error(ErrorCode::kUnimplemented,
                      "llama2.c export version {} is not supported (only the legacy version 0 "
                      "format)",
                      h[1]);
  }
  Llama2cCheckpoint ckpt;
  Llama2cConfig& c = ckpt.config_;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  // INT32_MIN has no positive counterpart; it fails validation as 0.
  c.vocab_size = h[5] == std::numeric_limits<std::int32_t>::min() ? 0 : (h[5] < 0 ? -h[5] : h[5]);
  c.seq_len = h[6];
  SPW_TRY(validate(c, limits));

  // The limits keep every product below 2^62, so the arithmetic cannot overflow.
  const std::int64_t dim = c.dim;
  const std::int64_t hidden = c.hidden_dim;
  const std::int64_t kv_dim = c.kv_dim();
  const std::int64_t vocab = c.vocab_size;
  const std::int64_t half_head = c.head_size() / 2;

  // Each llama2.c array holds all layers back to back; GGUF names one tensor per layer.
  Layout layout(bytes);
  const auto per_layer = [&](std::string_view suffix, std::vector<std::int64_t> shape) {
    for (std::int32_t l = 0; l < c.n_layers; ++l) {
      layout.add(fmt::format("blk.{}.{}.weight", l, suffix), shape);
    }
  };
  layout.add("token_embd.weight", {dim, vocab});
  per_layer("attn_norm", {dim});
  per_layer("attn_q", {dim, dim});
  per_layer("attn_k", {dim, kv_dim});
  per_layer("attn_v", {dim, kv_dim});
  per_layer("attn_output", {dim, dim});
  per_layer("ffn_norm", {dim});
  per_layer("ffn_gate", {dim, hidden});  // w1
  per_layer("ffn_down", {hidden, dim});  // w2
  per_layer("ffn_up", {dim, hidden});    // w3
  layout.add("output_norm.weight", {dim});
  layout.add("", {c.seq_len, half_head});  // freq_cis_real
  layout.add("", {c.seq_len, half_head});  // freq_cis_imag
  if (!c.shared_classifier) layout.add("output.weight", {dim, vocab});

  if (layout.end() != bytes.size()) {
    return make_error(ErrorCode::kDataLoss,
                      "size mismatch: the header (dim {}, hidden_dim {}, n_layers {}, n_heads {}, "
                      "n_kv_heads {}, vocab_size {}, seq_len {}) implies {} bytes, file has {}",
                      c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, h[5], c.seq_len,
                      layout.end(), bytes.size());
  }
  ckpt.tensors_ = std::move(layout).take();
  return ckpt;
}

Result<Llama2cCheckpoint> Llama2cCheckpoint::open(const std::string& path,
                                                  const Llama2cLimits& limits) {
  SPW_ASSIGN_OR_RETURN(MappedFile mapping, MappedFile::open(path));
  Result<Llama2cCheckpoint> ckpt = parse(mapping.bytes(), limits);
  if (!ckpt.ok()) return ckpt.error().with_context(path);
  ckpt->mapping_ = std::move(mapping);  // The views stay valid: the mapping does not move.
  return ckpt;
}

const GgufTensorInfo* Llama2cCheckpoint::find_tensor(std::string_view name) const {
  // ~10 tensors per layer; a linear scan is cheap next to loading them.
  for (const GgufTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace spillway::engine
