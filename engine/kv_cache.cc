#include "engine/kv_cache.h"

#include <cassert>
#include <cmath>
#include <limits>

#include "engine/half.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"

namespace spillway::engine {

Result<KvType> parse_kv_type(std::string_view name) {
  if (name == "f16") return KvType::kF16;
  if (name == "f32") return KvType::kF32;
  if (name == "q8_0") return KvType::kQ8_0;
  return make_error(ErrorCode::kInvalidArgument, "unknown KV cache type '{}' (f16, f32, q8_0)",
                    name);
}

std::string_view kv_type_name(KvType type) {
  switch (type) {
    case KvType::kF32:
      return "f32";
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
  }
  return "?";
}

Status check_kv_type(const ModelConfig& config, KvType type) {
  if (type == KvType::kQ8_0 && config.head_dim % kQK8_0 != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "a q8_0 KV cache needs head_dim to be a multiple of {}; this model's is {} "
                      "(use f16)",
                      kQK8_0, config.head_dim);
  }
  return Status();
}

void quantize_kv_q8_0(const float* x, void* dst, std::int64_t n) {
  auto* blocks = static_cast<BlockQ8_0*>(dst);
  for (std::int64_t b = 0; b < n / kQK8_0; ++b) {
    const float* v = x + b * kQK8_0;
    bool finite = true;
    for (int i = 0; i < kQK8_0; ++i)
      finite = finite && std::isfinite(v[i]);
    if (finite) {
      quantize_row(GgmlType::kQ8_0, v, &blocks[b], kQK8_0);
      continue;
    }
    blocks[b].d = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
    for (std::int8_t& q : blocks[b].qs)
      q = 0;
  }
}

std::size_t KvCache::bytes_per_token(const ModelConfig& config, KvType type) {
  const auto kv_dim = static_cast<std::size_t>(config.kv_dim());
  std::size_t vector = 0;
  switch (type) {
    case KvType::kF32:
      vector = 4 * kv_dim;
      break;
    case KvType::kF16:
      vector = 2 * kv_dim;
      break;
    case KvType::kQ8_0:
      vector = kv_dim / kQK8_0 * sizeof(BlockQ8_0);
      break;
  }
  return 2 * vector * static_cast<std::size_t>(config.n_layer);
}

Result<KvCache> KvCache::create(const ModelConfig& config, KvCacheOptions options) {
  if (options.block_tokens <= 0 || options.num_blocks <= 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "KV cache needs positive block size and block count (got {} and {})",
                      options.block_tokens, options.num_blocks);
  }
  SPW_TRY(check_kv_type(config, options.type));
  const std::size_t per_token = bytes_per_token(config, options.type);
  const std::size_t tokens =
      static_cast<std::size_t>(options.block_tokens) * static_cast<std::size_t>(options.num_blocks);
  if (per_token == 0 || tokens > std::numeric_limits<std::size_t>::max() / 8 / per_token) {
    return make_error(ErrorCode::kResourceExhausted, "KV cache size overflows");
  }
  KvCache cache;
  cache.block_tokens_ = options.block_tokens;
  cache.num_blocks_ = options.num_blocks;
  cache.type_ = options.type;
  cache.vector_bytes_ = per_token / 2 / static_cast<std::size_t>(config.n_layer);
  cache.storage_.assign(tokens * per_token, std::byte{0});
  return cache;
}

KvBlockAllocator::KvBlockAllocator(std::int32_t num_blocks)
    : refs_(static_cast<std::size_t>(num_blocks), 0) {
  free_.reserve(static_cast<std::size_t>(num_blocks));
  for (std::int32_t b = num_blocks - 1; b >= 0; --b)
    free_.push_back(b);
}

std::optional<std::int32_t> KvBlockAllocator::allocate() {
  if (free_.empty()) return std::nullopt;
  const std::int32_t b = free_.back();
  free_.pop_back();
  refs_[static_cast<std::size_t>(b)] = 1;
  return b;
}

void KvBlockAllocator::retain(std::int32_t block) {
  assert(refs_[static_cast<std::size_t>(block)] > 0);
  ++refs_[static_cast<std::size_t>(block)];
}

void KvBlockAllocator::release(std::int32_t block) {
  assert(refs_[static_cast<std::size_t>(block)] > 0);
  if (--refs_[static_cast<std::size_t>(block)] == 0) free_.push_back(block);
}

}  // namespace spillway::engine
