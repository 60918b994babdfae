// One forward step's input: a batch of (sequence, position, token) entries. Sequences may mix
// prompt chunks and single decode tokens; each sequence's cache is given by its block table.
#pragma once

#include <cstdint>
#include <span>

namespace spillway::engine {

struct BatchToken {
  std::int32_t seq = 0;      // Index into ForwardBatch::block_tables.
  std::int32_t pos = 0;      // Position of this token in its sequence.
  std::int32_t token = 0;    // Token id.
  bool want_logits = false;  // Produce next-token logits for this entry.
};

// REQUIRES (checked by ForwardPass::run): within a sequence, the batch's positions are
// consecutive and increasing, positions before the first one are already in the cache, and
// the sequence's block table covers every position in the batch.
struct ForwardBatch {
  std::span<const BatchToken> tokens;
  std::span<const std::span<const std::int32_t>> block_tables;  // Indexed by BatchToken::seq.
};

}  // namespace spillway::engine
