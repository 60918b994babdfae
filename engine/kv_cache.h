// The KV cache, organized in fixed-size blocks (paged attention). Memory is allocated once, at
// construction, and never grows: `num_blocks` blocks of `block_tokens` token slots, each slot
// holding every layer's key and value vectors for one position of one sequence.
//
// A sequence's cache is a block table: the i-th entry is the block holding its positions
// [i * block_tokens, (i + 1) * block_tokens). Blocks are handed out by KvBlockAllocator,
// reference-counted so that sequences can share blocks of a common prefix.
//
// Thread-safety: KvCache storage is written by the forward pass only for the positions in the
// batch it runs; the allocator is not thread-safe (the scheduler thread owns it).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "engine/model_config.h"

namespace spillway::engine {

// Element type of cached keys and values. F16 halves the cache (the default, as in llama.cpp);
// F32 keeps attention bit-for-bit independent of cache rounding (reference comparisons); Q8_0
// (ggml's block format: an fp16 scale per 32 int8 values, 34 bytes per 32 elements) takes 0.53
// of F16's memory, for models whose head_dim is a multiple of 32. Each key and value vector is
// quantized per head with ggml's reference quantizer when it is written; attention then takes
// the exact dequantized values (each element within half a quantization step, amax / 254, of
// what was computed).
enum class KvType { kF32, kF16, kQ8_0 };
inline constexpr KvType kKvTypes[] = {KvType::kF32, KvType::kF16, KvType::kQ8_0};  // All of them.

// Parses "f16" / "f32" / "q8_0".
[[nodiscard]] Result<KvType> parse_kv_type(std::string_view name);
[[nodiscard]] std::string_view kv_type_name(KvType type);

// Whether `config`'s model can keep its cache in `type`: kInvalidArgument naming the reason
// (Q8_0 needs head_dim a multiple of 32) if not.
[[nodiscard]] Status check_kv_type(const ModelConfig& config, KvType type);

// Writes x[0..n) as n / 32 Q8_0 blocks at `dst`: ggml's reference quantizer for a block of
// finite values; a block holding a NaN or an infinity gets a NaN scale and zero quants, so every
// element reads back as NaN and the fault reaches the logits (as it does through an F16 cache)
// instead of becoming a silent zero. REQUIRES: n a multiple of 32.
void quantize_kv_q8_0(const float* x, void* dst, std::int64_t n);

struct KvCacheOptions {
  std::int32_t block_tokens = 16;  // Token slots per block.
  std::int32_t num_blocks = 0;     // Total blocks; sets the memory used.
  KvType type = KvType::kF16;
};

class KvCache {
 public:
  // Errors: kInvalidArgument for non-positive sizes or a type the model cannot use
  // (check_kv_type); kResourceExhausted if the size overflows.
  [[nodiscard]] static Result<KvCache> create(const ModelConfig& config, KvCacheOptions options);

  [[nodiscard]] std::int32_t block_tokens() const { return block_tokens_; }
  [[nodiscard]] std::int32_t num_blocks() const { return num_blocks_; }
  [[nodiscard]] KvType type() const { return type_; }
  [[nodiscard]] std::size_t bytes() const { return storage_.size(); }
  // Bytes from one slot's key (or value) vector to the next slot's, within a block.
  [[nodiscard]] std::size_t slot_stride_bytes() const { return 2 * vector_bytes_; }
  // Bytes one token slot takes (all layers, K and V). REQUIRES: check_kv_type(config, type).
  [[nodiscard]] static std::size_t bytes_per_token(const ModelConfig& config, KvType type);

  // Key / value vector of `layer` at slot `slot` of `block`: kv_dim elements of type() (for
  // Q8_0, kv_dim / 32 BlockQ8_0, head h's from block h * head_dim / 32).
  [[nodiscard]] void* key(std::int32_t layer, std::int32_t block, std::int32_t slot) {
    return storage_.data() + offset(layer, block, slot);
  }
  [[nodiscard]] void* value(std::int32_t layer, std::int32_t block, std::int32_t slot) {
    return storage_.data() + offset(layer, block, slot) + vector_bytes_;
  }
  [[nodiscard]] const void* key(std::int32_t layer, std::int32_t block, std::int32_t slot) const {
    return storage_.data() + offset(layer, block, slot);
  }
  [[nodiscard]] const void* value(std::int32_t layer, std::int32_t block, std::int32_t slot) const {
    return storage_.data() + offset(layer, block, slot) + vector_bytes_;
  }

 private:
  KvCache() = default;
  // Layout [layer][block][slot][K | V]: one block of one layer is contiguous, so attention over
  // a sequence reads long runs.
  [[nodiscard]] std::size_t offset(std::int32_t layer, std::int32_t block,
                                   std::int32_t slot) const {
    return ((static_cast<std::size_t>(layer) * num_blocks_ + block) * block_tokens_ + slot) *
           (2 * vector_bytes_);
  }

  std::int32_t block_tokens_ = 0;
  std::int32_t num_blocks_ = 0;
  KvType type_ = KvType::kF16;
  std::size_t vector_bytes_ = 0;  // kv_dim elements.
  std::vector<std::byte> storage_;
};

// Hands out block ids with reference counts. Not thread-safe.
class KvBlockAllocator {
 public:
  explicit KvBlockAllocator(std::int32_t num_blocks);

  // A free block with reference count 1, or nullopt when none is left.
  [[nodiscard]] std::optional<std::int32_t> allocate();
  // REQUIRES: ref_count(block) > 0.
  void retain(std::int32_t block);
  // Drops one reference; the block is free again at zero. REQUIRES: ref_count(block) > 0.
  void release(std::int32_t block);

  [[nodiscard]] std::int32_t ref_count(std::int32_t block) const { return refs_[block]; }
  [[nodiscard]] std::int32_t free_blocks() const { return static_cast<std::int32_t>(free_.size()); }
  [[nodiscard]] std::int32_t total_blocks() const {
    return static_cast<std::int32_t>(refs_.size());
  }

 private:
  std::vector<std::int32_t> refs_;
  std::vector<std::int32_t> free_;  // Stack; lowest ids are handed out first.
};

}  // namespace spillway::engine
