// The KV cache's block bookkeeping: reference-counted blocks plus the automatic prefix cache.
//
// A fixed number of blocks, each holding `block_tokens` positions. A block is either free,
// referenced by one or more sequences, or cached: unreferenced but still holding the keys and
// values of a full block of some sequence's prefix, so a later request with the same prefix can
// reuse it instead of recomputing it. Cached blocks are evicted least-recently-used when a free
// block is needed.
//
// Keys: full block i of a token sequence is keyed by a 128-bit hash of (namespace, the key of
// block i - 1, the block's tokens), so equal keys mean equal namespaces and equal prefixes up to
// and including the block. A hit is also verified exactly: the cached entry stores the block's
// tokens and the identity (id and allocation generation) of its parent block, so even a hash
// collision cannot hand out another prefix's keys and values.
//
// Isolation: the namespace is part of every key, so requests in one namespace (by default one
// tenant) never hit, and cannot time, blocks computed in another.
//
// Thread-safety: none; the scheduler's thread owns the pool. Pure bookkeeping (no tensors),
// so the fleet simulator runs the same code.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace spillway::engine {

struct BlockKey {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  friend bool operator==(const BlockKey&, const BlockKey&) = default;
};

// The key of a namespace's empty prefix (the parent of block 0).
[[nodiscard]] BlockKey namespace_root_key(std::string_view cache_namespace);
// The key of a full block whose parent prefix has key `parent`.
[[nodiscard]] BlockKey chain_block_key(const BlockKey& parent,
                                       std::span<const std::int32_t> block_tokens);

class BlockPool {
 public:
  // REQUIRES: num_blocks >= 1, block_tokens >= 1.
  BlockPool(std::int32_t num_blocks, std::int32_t block_tokens);

  [[nodiscard]] std::int32_t num_blocks() const { return static_cast<std::int32_t>(refs_.size()); }
  [[nodiscard]] std::int32_t block_tokens() const { return block_tokens_; }
  // Blocks that allocate() can hand out: free ones plus cached, unreferenced ones.
  [[nodiscard]] std::int32_t available() const {
    return static_cast<std::int32_t>(free_.size() + lru_.size());
  }
  // Blocks referenced by at least one sequence.
  [[nodiscard]] std::int32_t used() const { return num_blocks() - available(); }
  // Unreferenced blocks kept for reuse.
  [[nodiscard]] std::int32_t cached_unreferenced() const {
    return static_cast<std::int32_t>(lru_.size());
  }

  // A block with reference count 1 (a free one, else the least recently used cached one, which
  // leaves the prefix cache), or nullopt when every block is referenced.
  [[nodiscard]] std::optional<std::int32_t> allocate();
  // REQUIRES: ref_count(block) > 0.
  void retain(std::int32_t block);
  // Drops one reference. At zero a published block becomes cached (most recently used);
  // an unpublished one becomes free. REQUIRES: ref_count(block) > 0.
  void release(std::int32_t block);
  [[nodiscard]] std::int32_t ref_count(std::int32_t block) const {
    return refs_[static_cast<std::size_t>(block)];
  }

  // The longest run of cached full blocks that holds a prefix of `tokens` in `cache_namespace`:
  // at most max_blocks blocks, each retained for the caller (who releases them like any
  // other).
  [[nodiscard]] std::vector<std::int32_t> match(std::string_view cache_namespace,
                                                std::span<const std::int32_t> tokens,
                                                std::int32_t max_blocks);

  // Publishes `block` (referenced, fully written) as holding the full block with key `key`
  // whose parent is `parent_block` (-1 for the first block of a sequence, which also records
  // `cache_namespace`) and whose tokens are `block_tokens`. Returns false (and changes nothing) if
  // that key is already cached in another block, or if the block is already published.
  bool publish(std::int32_t block, const BlockKey& key, std::int32_t parent_block,
               std::span<const std::int32_t> block_tokens, std::string_view cache_namespace);
  [[nodiscard]] bool is_published(std::int32_t block) const {
    return entries_[static_cast<std::size_t>(block)].published;
  }

  // Drops every cached, unreferenced block from the prefix cache (they become free).
  void clear_cache();

 private:
  struct Entry {
    bool published = false;
    BlockKey key;
    std::int32_t parent = -1;
    std::uint64_t parent_generation = 0;
    std::vector<std::int32_t> tokens;
    std::string cache_namespace;                // First blocks only.
    std::list<std::int32_t>::iterator lru_pos;  // Valid while cached and unreferenced.
  };
  void unpublish(std::int32_t block);

  std::int32_t block_tokens_;
  std::vector<std::int32_t> refs_;
  std::vector<std::uint64_t> generation_;  // Bumped each time a block is handed out.
  std::vector<Entry> entries_;
  std::vector<std::int32_t> free_;  // Stack; lowest ids are handed out first.
  std::list<std::int32_t> lru_;     // Cached, unreferenced; front is the least recently used.
  struct KeyHash {
    std::size_t operator()(const BlockKey& k) const { return static_cast<std::size_t>(k.lo); }
  };
  std::unordered_map<BlockKey, std::int32_t, KeyHash> by_key_;
};

}  // namespace spillway::engine
