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
#include <vector>

#include "core/status.h"

#include "engine/model_config.h"

namespace spillway::engine {

struct KvCacheOptions {
  std::int32_t block_tokens = 16;  // Token slots per block.
  std::int32_t num_blocks = 0;     // Total blocks; sets the memory used.
};

class KvCache {
 public:
  // Errors: kInvalidArgument for non-positive sizes; kResourceExhausted if the size overflows.
  [[nodiscard]] static Result<KvCache> create(const ModelConfig& config, KvCacheOptions options);

  [[nodiscard]] std::int32_t block_tokens() const { return block_tokens_; }
  [[nodiscard]] std::int32_t num_blocks() const { return num_blocks_; }
  [[nodiscard]] std::size_t bytes() const { return storage_.size() * sizeof(float); }
  // Bytes one token slot takes (all layers, K and V).
  [[nodiscard]] static std::size_t bytes_per_token(const ModelConfig& config);

  // Key / value vector ([kv_dim] floats) of `layer` at slot `slot` of block `block`.
  [[nodiscard]] float* key(std::int32_t layer, std::int32_t block, std::int32_t slot) {
    return storage_.data() + offset(layer, block, slot);
  }
  [[nodiscard]] float* value(std::int32_t layer, std::int32_t block, std::int32_t slot) {
    return storage_.data() + offset(layer, block, slot) + kv_dim_;
  }
  [[nodiscard]] const float* key(std::int32_t layer, std::int32_t block, std::int32_t slot) const {
    return storage_.data() + offset(layer, block, slot);
  }
  [[nodiscard]] const float* value(std::int32_t layer, std::int32_t block,
                                   std::int32_t slot) const {
    return storage_.data() + offset(layer, block, slot) + kv_dim_;
  }

 private:
  KvCache() = default;
  // Layout [layer][block][slot][K | V]: one block of one layer is contiguous, so attention over
  // a sequence reads long runs.
  [[nodiscard]] std::size_t offset(std::int32_t layer, std::int32_t block,
                                   std::int32_t slot) const {
    return ((static_cast<std::size_t>(layer) * num_blocks_ + block) * block_tokens_ + slot) *
           (2 * static_cast<std::size_t>(kv_dim_));
  }

  std::int32_t block_tokens_ = 0;
  std::int32_t num_blocks_ = 0;
  std::int32_t kv_dim_ = 0;
  std::vector<float> storage_;
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
