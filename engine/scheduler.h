// The iteration-level scheduler of continuous batching: decides, step by step, which sequences
// run and how many of their tokens are computed, over a fixed pool of KV-cache blocks.
//
// Each step (schedule):
//  1. Running sequences, highest priority first and oldest first within a priority, each get
//     the tokens they still need computed (one for a decoding sequence; a chunk of the prompt
//     for one still prefilling), within the per-step token budget. When a sequence needs a new
//     block and none is left, the lowest-priority, most recently arrived running sequence is
//     preempted (its blocks are released and it goes back to waiting, to be recomputed later);
//     that may be the sequence itself. Within a class, admission follows arrival, so this is
//     the most recently admitted one; a sequence readmitted after a preemption keeps its
//     arrival, so it is not picked again ahead of newer ones. The oldest sequence of the highest
//     class always progresses, so there is no deadlock and no livelock.
//  2. Waiting sequences are admitted in the same order while budget, blocks and the running
//     limit allow: each first reuses the longest cached prefix of its tokens (prefix caching),
//     then gets a first chunk of the rest (chunked prefill). A waiting sequence that does not
//     fit may preempt running sequences of strictly lower priority; otherwise admission stops
//     there (first come, first served inside a class, so nothing starves inside its class).
// After the step's forward pass, commit() records the computed tokens and publishes newly
// completed full blocks to the prefix cache; the caller samples for chunks with want_logits and
// calls append_token(), and calls finish() when a sequence ends.
//
// A preempted sequence keeps its tokens (prompt and generated) and recomputes their keys and
// values on readmission, reusing whatever of its prefix is still cached.
//
// Sequences of one request with n > 1 choices: every sibling names the first one in
// `wait_for` and is admitted only once that one's prompt is computed, so it finds the prompt's
// full blocks in the prefix cache and shares them.
//
// Sequences with `prompt_logits` (prompt log-probabilities) need logits at every prompt
// position: until their prompt has been computed once they reuse no cached prefix and get at
// most max_prompt_logits_tokens prompt tokens per step, all such sequences together (so the
// caller's logits buffer is bounded). They still publish their blocks.
//
// Thread-safety: none; one thread (the engine's step thread, or the simulator) drives it.
// Pure bookkeeping: no tensors, no clock, so the fleet simulator runs this same code.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"

#include "engine/block_pool.h"

namespace spillway::engine {

using SeqId = std::int64_t;

struct SchedulerOptions {
  std::int32_t num_blocks = 0;          // KV-cache blocks.
  std::int32_t block_tokens = 16;       // Positions per block.
  std::int32_t max_batch_tokens = 512;  // Tokens computed per step (decode + prefill chunks).
  std::int32_t max_running = 64;        // Sequences in the batch at once; <= max_batch_tokens.
  std::int32_t max_context = 0;         // Prompt + generated tokens per sequence.
  // Per step, prompt tokens of sequences with prompt_logits (see the file comment); >= 1.
  std::int32_t max_prompt_logits_tokens = 64;
};

// Errors (kInvalidArgument) name the offending option.
[[nodiscard]] Status validate_scheduler_options(const SchedulerOptions& options);

struct SequenceSpec {
  SeqId id = 0;                 // Unique among live sequences.
  std::int32_t priority = 0;    // Higher runs first.
  std::uint64_t arrival = 0;    // Order of arrival; lower is older. Ties broken by id.
  std::string cache_namespace;  // Prefix-cache namespace (the tenant by default).
  std::vector<std::int32_t> prompt;
  std::int32_t max_new_tokens = 1;  // >= 1.
  SeqId wait_for = -1;              // Admit only after this sequence's prompt is computed.
  bool prompt_logits = false;       // Logits at every prompt position (see the file comment).
};

struct ScheduledChunk {
  SeqId id = 0;
  std::int32_t start = 0;    // First position computed (== tokens already in the cache).
  std::int32_t count = 0;    // Tokens computed: positions [start, start + count).
  bool want_logits = false;  // The chunk ends at the sequence's last known token: sample next.
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;  // Highest priority first.
  std::vector<SeqId> preempted;        // Sent back to waiting during this schedule().
  std::int32_t num_tokens = 0;
  [[nodiscard]] bool empty() const { return chunks.empty(); }
};

struct SchedulerStats {
  std::uint64_t prefix_query_tokens = 0;  // Prompt tokens looked up in the prefix cache.
  std::uint64_t prefix_hit_tokens = 0;    // Of which found cached.
  std::uint64_t computed_tokens = 0;      // Tokens run through the model (prefill and decode).
  std::uint64_t preemptions = 0;
};

class Scheduler {
 public:
  // REQUIRES: validate_scheduler_options(options).ok().
  explicit Scheduler(const SchedulerOptions& options);

  // Queues a sequence. Errors: kInvalidArgument (empty prompt, max_new_tokens < 1, duplicate
  // id), kOutOfRange when prompt + max_new_tokens exceeds max_context or the whole cache.
  [[nodiscard]] Status add(SequenceSpec spec);

  [[nodiscard]] StepPlan schedule();
  // Records that the plan's chunks were computed. REQUIRES: the plan came from the last
  // schedule() and no sequence in it was finished since.
  void commit(const StepPlan& plan);
  // Appends a sampled token to a running sequence (computed in a later step).
  void append_token(SeqId id, std::int32_t token);
  // Removes a sequence (running or waiting) and releases its blocks. Unknown ids are ignored.
  void finish(SeqId id);

  [[nodiscard]] bool contains(SeqId id) const { return seqs_.contains(id); }
  [[nodiscard]] bool is_running(SeqId id) const;
  // All known tokens of a sequence: prompt, then generated.
  [[nodiscard]] std::span<const std::int32_t> tokens(SeqId id) const;
  [[nodiscard]] std::int32_t prompt_length(SeqId id) const;
  [[nodiscard]] std::span<const std::int32_t> block_table(SeqId id) const;

  [[nodiscard]] std::int32_t num_running() const {
    return static_cast<std::int32_t>(running_.size());
  }
  [[nodiscard]] std::int32_t num_waiting() const {
    return static_cast<std::int32_t>(waiting_.size());
  }
  [[nodiscard]] const BlockPool& pool() const { return pool_; }
  [[nodiscard]] const SchedulerStats& stats() const { return stats_; }
  [[nodiscard]] const SchedulerOptions& options() const { return options_; }

 private:
  struct Seq {
    SequenceSpec spec;
    std::vector<std::int32_t> tokens;
    std::int32_t num_computed = 0;
    std::vector<std::int32_t> blocks;
    BlockKey last_key;              // Key of the last keyed full block (or the namespace root).
    std::int32_t keyed_blocks = 0;  // Full blocks whose key is known (published or matched).
    bool prompt_done = false;       // The whole prompt has been computed at least once.
    bool running = false;           // In running_ (else in waiting_).
  };
  // Scheduling order: priority descending, then arrival, then id.
  [[nodiscard]] static bool before(const Seq& a, const Seq& b);
  [[nodiscard]] bool eligible(const Seq& s) const;
  // Grows s's block table to cover `positions` tokens; false (nothing changed) if blocks ran out.
  bool reserve(Seq& s, std::int32_t positions);
  [[nodiscard]] std::int32_t blocks_for(std::int32_t positions) const;
  void release_blocks(Seq& s);
  void preempt(SeqId id, StepPlan& plan);
  void insert_waiting(SeqId id);
  void publish_full_blocks(Seq& s);
  // Scoring its prompt: limited by max_prompt_logits_tokens, no prefix reuse.
  [[nodiscard]] static bool scoring_prompt(const Seq& s) {
    return s.spec.prompt_logits && !s.prompt_done;
  }

  SchedulerOptions options_;
  BlockPool pool_;
  std::unordered_map<SeqId, Seq> seqs_;
  std::vector<SeqId> running_;  // Kept in scheduling order.
  std::vector<SeqId> waiting_;  // Kept in scheduling order.
  SchedulerStats stats_;
};

}  // namespace spillway::engine
