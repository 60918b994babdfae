#include "engine/block_pool.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack.
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace spillway::engine {

BlockKey namespace_root_key(std::string_view cache_namespace) {
  constexpr std::uint64_t kSeed = 0x5350574c4e53ULL;  // Any fixed value; keys never leave memory.
  const XXH128_hash_t h =
      XXH3_128bits_withSeed(cache_namespace.data(), cache_namespace.size(), kSeed);
  return {h.low64, h.high64};
}

BlockKey chain_block_key(const BlockKey& parent, std::span<const std::int32_t> block_tokens) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, &parent.lo, sizeof parent.lo);
  XXH3_128bits_update(&state, &parent.hi, sizeof parent.hi);
  XXH3_128bits_update(&state, block_tokens.data(), block_tokens.size_bytes());
  const XXH128_hash_t h = XXH3_128bits_digest(&state);
  return {h.low64, h.high64};
}

BlockPool::BlockPool(std::int32_t num_blocks, std::int32_t block_tokens)
    : block_tokens_(block_tokens),
      refs_(static_cast<std::size_t>(num_blocks), 0),
      generation_(static_cast<std::size_t>(num_blocks), 0),
      entries_(static_cast<std::size_t>(num_blocks)) {
  assert(num_blocks >= 1 && block_tokens >= 1);
  free_.reserve(static_cast<std::size_t>(num_blocks));
  for (std::int32_t b = num_blocks - 1; b >= 0; --b)
    free_.push_back(b);
}

std::optional<std::int32_t> BlockPool::allocate() {
  std::int32_t block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    block = lru_.front();
    lru_.pop_front();
    unpublish(block);
  } else {
    return std::nullopt;
  }
  refs_[static_cast<std::size_t>(block)] = 1;
  ++generation_[static_cast<std::size_t>(block)];
  return block;
}

void BlockPool::retain(std::int32_t block) {
  auto& refs = refs_[static_cast<std::size_t>(block)];
  assert(refs >= 0);
  if (refs == 0) {
    // Only cached blocks are retained from zero (by match); they leave the LRU list.
    Entry& e = entries_[static_cast<std::size_t>(block)];
    assert(e.published);
    lru_.erase(e.lru_pos);
  }
  ++refs;
}

void BlockPool::release(std::int32_t block) {
  auto& refs = refs_[static_cast<std::size_t>(block)];
  assert(refs > 0);
  if (--refs > 0) return;
  Entry& e = entries_[static_cast<std::size_t>(block)];
  if (e.published) {
    e.lru_pos = lru_.insert(lru_.end(), block);
  } else {
    free_.push_back(block);
  }
}

std::vector<std::int32_t> BlockPool::match(std::string_view cache_namespace,
                                           std::span<const std::int32_t> tokens,
                                           std::int32_t max_blocks) {
  std::vector<std::int32_t> blocks;
  const std::int64_t full = static_cast<std::int64_t>(tokens.size()) / block_tokens_;
  const std::int64_t limit = std::min<std::int64_t>(full, max_blocks);
  if (limit <= 0 || by_key_.empty()) return blocks;
  BlockKey key = namespace_root_key(cache_namespace);
  std::int32_t parent = -1;
  for (std::int64_t i = 0; i < limit; ++i) {
    const auto chunk = tokens.subspan(static_cast<std::size_t>(i * block_tokens_),
                                      static_cast<std::size_t>(block_tokens_));
    key = chain_block_key(key, chunk);
    const auto it = by_key_.find(key);
    if (it == by_key_.end()) break;
    const std::int32_t b = it->second;
    const Entry& e = entries_[static_cast<std::size_t>(b)];
    const bool parent_ok =
        e.parent == parent &&
        (parent < 0 ? e.cache_namespace == cache_namespace
                    : e.parent_generation == generation_[static_cast<std::size_t>(parent)]);
    if (!parent_ok || !std::equal(chunk.begin(), chunk.end(), e.tokens.begin(), e.tokens.end())) {
      break;
    }
    retain(b);
    blocks.push_back(b);
    parent = b;
  }
  return blocks;
}

bool BlockPool::publish(std::int32_t block, const BlockKey& key, std::int32_t parent_block,
                        std::span<const std::int32_t> block_tokens,
                        std::string_view cache_namespace) {
  Entry& e = entries_[static_cast<std::size_t>(block)];
  assert(refs_[static_cast<std::size_t>(block)] > 0);
  if (e.published || by_key_.contains(key)) return false;
  e.published = true;
  e.key = key;
  e.parent = parent_block;
  e.parent_generation = parent_block < 0 ? 0 : generation_[static_cast<std::size_t>(parent_block)];
  e.tokens.assign(block_tokens.begin(), block_tokens.end());
  if (parent_block < 0) e.cache_namespace.assign(cache_namespace);
  by_key_.emplace(key, block);
  return true;
}

void BlockPool::unpublish(std::int32_t block) {
  Entry& e = entries_[static_cast<std::size_t>(block)];
  if (!e.published) return;
  by_key_.erase(e.key);
  e.published = false;
  e.tokens.clear();
  e.cache_namespace.clear();
}

void BlockPool::clear_cache() {
  while (!lru_.empty()) {
    const std::int32_t b = lru_.front();
    lru_.pop_front();
    unpublish(b);
    free_.push_back(b);
  }
}

}  // namespace spillway::engine
