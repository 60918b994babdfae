#include "engine/scheduler.h"

#include <algorithm>
#include <cassert>

namespace spillway::engine {

Status validate_scheduler_options(const SchedulerOptions& o) {
  if (o.num_blocks < 1) {
    return make_error(ErrorCode::kInvalidArgument, "num_blocks must be at least 1 (got {})",
                      o.num_blocks);
  }
  if (o.block_tokens < 1 || o.block_tokens > 4096) {
    return make_error(ErrorCode::kInvalidArgument, "block_tokens must be in [1, 4096] (got {})",
                      o.block_tokens);
  }
  if (o.max_batch_tokens < 1) {
    return make_error(ErrorCode::kInvalidArgument, "max_batch_tokens must be at least 1 (got {})",
                      o.max_batch_tokens);
  }
  if (o.max_running < 1 || o.max_running > o.max_batch_tokens) {
    return make_error(ErrorCode::kInvalidArgument,
                      "max_running must be in [1, max_batch_tokens = {}] (got {})",
                      o.max_batch_tokens, o.max_running);
  }
  if (o.max_prompt_logits_tokens < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "max_prompt_logits_tokens must be at least 1 (got {})",
                      o.max_prompt_logits_tokens);
  }
  if (o.max_context < 2) {
    return make_error(ErrorCode::kInvalidArgument, "max_context must be at least 2 (got {})",
                      o.max_context);
  }
  return Status();
}

Scheduler::Scheduler(const SchedulerOptions& options)
    : options_(options), pool_(options.num_blocks, options.block_tokens) {
  assert(validate_scheduler_options(options).ok());
}

bool Scheduler::before(const Seq& a, const Seq& b) {
  if (a.spec.priority != b.spec.priority) return a.spec.priority > b.spec.priority;
  if (a.spec.arrival != b.spec.arrival) return a.spec.arrival < b.spec.arrival;
  return a.spec.id < b.spec.id;
}

Status Scheduler::add(SequenceSpec spec) {
  if (spec.prompt.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "sequence {} has an empty prompt", spec.id);
  }
  if (spec.max_new_tokens < 1) {
    return make_error(ErrorCode::kInvalidArgument, "max_new_tokens must be at least 1 (got {})",
                      spec.max_new_tokens);
  }
  if (seqs_.contains(spec.id)) {
    return make_error(ErrorCode::kInvalidArgument, "sequence id {} is already in use", spec.id);
  }
  const std::int64_t total = static_cast<std::int64_t>(spec.prompt.size()) + spec.max_new_tokens;
  if (total > options_.max_context) {
    return make_error(ErrorCode::kOutOfRange,
                      "this model's maximum context length is {} tokens; the request asks for {} "
                      "({} in the prompt, {} to generate)",
                      options_.max_context, total, spec.prompt.size(), spec.max_new_tokens);
  }
  const std::int64_t capacity =
      static_cast<std::int64_t>(options_.num_blocks) * options_.block_tokens;
  if (total > capacity) {
    return make_error(ErrorCode::kOutOfRange,
                      "the request needs {} tokens of KV cache ({} prompt + {} to generate) but "
                      "the whole cache holds {}",
                      total, spec.prompt.size(), spec.max_new_tokens, capacity);
  }
  const SeqId id = spec.id;
  Seq s;
  s.tokens = spec.prompt;
  s.last_key = namespace_root_key(spec.cache_namespace);
  s.spec = std::move(spec);
  seqs_.emplace(id, std::move(s));
  insert_waiting(id);
  return Status();
}

void Scheduler::insert_waiting(SeqId id) {
  const auto pos = std::upper_bound(waiting_.begin(), waiting_.end(), id, [&](SeqId a, SeqId b) {
    return before(seqs_.at(a), seqs_.at(b));
  });
  waiting_.insert(pos, id);
}

bool Scheduler::is_running(SeqId id) const {
  const auto it = seqs_.find(id);
  return it != seqs_.end() && it->second.running;
}

std::span<const std::int32_t> Scheduler::tokens(SeqId id) const {
  return seqs_.at(id).tokens;
}

std::int32_t Scheduler::prompt_length(SeqId id) const {
  return static_cast<std::int32_t>(seqs_.at(id).spec.prompt.size());
}

std::span<const std::int32_t> Scheduler::block_table(SeqId id) const {
  return seqs_.at(id).blocks;
}

std::int32_t Scheduler::blocks_for(std::int32_t positions) const {
  return (positions + options_.block_tokens - 1) / options_.block_tokens;
}

bool Scheduler::eligible(const Seq& s) const {
  if (s.spec.wait_for < 0) return true;
  const auto it = seqs_.find(s.spec.wait_for);
  return it == seqs_.end() || it->second.prompt_done;
}

bool Scheduler::reserve(Seq& s, std::int32_t positions) {
  const std::int32_t need = blocks_for(positions) - static_cast<std::int32_t>(s.blocks.size());
  if (need <= 0) return true;
  if (need > pool_.available()) return false;
  for (std::int32_t i = 0; i < need; ++i)
    s.blocks.push_back(*pool_.allocate());
  return true;
}

void Scheduler::release_blocks(Seq& s) {
  // Last block first: the LRU list then evicts a prefix's tail before its head, and the head
  // is what other requests share.
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it)
    pool_.release(*it);
  s.blocks.clear();
  s.num_computed = 0;
  s.keyed_blocks = 0;
  s.last_key = namespace_root_key(s.spec.cache_namespace);
}

void Scheduler::preempt(SeqId id, StepPlan& plan) {
  Seq& s = seqs_.at(id);
  release_blocks(s);
  running_.erase(std::find(running_.begin(), running_.end(), id));
  s.running = false;
  insert_waiting(id);
  plan.preempted.push_back(id);
  ++stats_.preemptions;
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  std::int32_t budget = options_.max_batch_tokens;
  std::int32_t logits_budget = options_.max_prompt_logits_tokens;

  // 1. Running sequences, in order; victims come from the back.
  for (std::size_t i = 0; i < running_.size() && budget > 0;) {
    const SeqId id = running_[i];
    Seq& s = seqs_.at(id);
    const auto known = static_cast<std::int32_t>(s.tokens.size());
    std::int32_t n = std::min(known - s.num_computed, budget);
    if (scoring_prompt(s)) n = std::min(n, logits_budget);
    if (n <= 0) {
      ++i;
      continue;
    }
    bool self_preempted = false;
    while (!reserve(s, s.num_computed + n)) {
      const SeqId victim = running_.back();
      self_preempted = victim == id;
      preempt(victim, plan);
      if (self_preempted) break;
    }
    if (self_preempted) break;  // It was the last one; nothing after it.
    plan.chunks.push_back({id, s.num_computed, n, s.num_computed + n == known});
    budget -= n;
    if (scoring_prompt(s)) logits_budget -= n;
    ++i;
  }

  // 2. Admission.
  for (std::size_t w = 0; w < waiting_.size() && budget > 0 &&
                          static_cast<std::int32_t>(running_.size()) < options_.max_running;) {
    const SeqId id = waiting_[w];
    Seq& s = seqs_.at(id);
    if (!eligible(s)) {
      ++w;
      continue;
    }
    const auto known = static_cast<std::int32_t>(s.tokens.size());
    const bool scoring = scoring_prompt(s);
    if (scoring && logits_budget <= 0) break;  // First come, first served, as below.
    // Reuse cached full blocks, but always compute at least the last token (its logits).
    const std::int32_t max_hit_blocks = scoring ? 0 : (known - 1) / options_.block_tokens;
    s.blocks = pool_.match(s.spec.cache_namespace, s.tokens, max_hit_blocks);
    s.num_computed = static_cast<std::int32_t>(s.blocks.size()) * options_.block_tokens;
    std::int32_t n = std::min(known - s.num_computed, budget);
    if (scoring) n = std::min(n, logits_budget);
    bool fits = reserve(s, s.num_computed + n);
    // Make room by preempting strictly lower-priority running sequences, if that suffices.
    if (!fits) {
      std::int32_t freeable = 0;
      for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
        const Seq& r = seqs_.at(*it);
        if (r.spec.priority >= s.spec.priority) break;
        for (const std::int32_t b : r.blocks)
          freeable += pool_.ref_count(b) == 1 ? 1 : 0;
      }
      const std::int32_t need =
          blocks_for(s.num_computed + n) - static_cast<std::int32_t>(s.blocks.size());
      if (pool_.available() + freeable >= need) {
        while (!fits && !running_.empty() &&
               seqs_.at(running_.back()).spec.priority < s.spec.priority) {
          const SeqId victim = running_.back();
          // A victim already scheduled this step loses its chunk.
          std::erase_if(plan.chunks, [&](const ScheduledChunk& c) {
            if (c.id != victim) return false;
            budget += c.count;
            if (scoring_prompt(seqs_.at(victim))) logits_budget += c.count;
            return true;
          });
          preempt(victim, plan);
          fits = reserve(s, s.num_computed + n);
        }
      }
    }
    if (!fits) {
      release_blocks(s);
      break;  // First come, first served: nothing behind it jumps the queue.
    }
    const std::int32_t hit = s.num_computed;
    stats_.prefix_query_tokens += static_cast<std::uint64_t>(known);
    stats_.prefix_hit_tokens += static_cast<std::uint64_t>(hit);
    // Keys of the matched blocks, to chain the keys of blocks published later.
    for (std::int32_t b = 0; b < static_cast<std::int32_t>(s.blocks.size()) &&
                             b * options_.block_tokens + options_.block_tokens <= hit;
         ++b) {
      s.last_key = chain_block_key(
          s.last_key,
          std::span(s.tokens).subspan(
              static_cast<std::size_t>(b) * static_cast<std::size_t>(options_.block_tokens),
              static_cast<std::size_t>(options_.block_tokens)));
      s.keyed_blocks = b + 1;
    }
    plan.chunks.push_back({id, s.num_computed, n, s.num_computed + n == known});
    budget -= n;
    if (scoring) logits_budget -= n;
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(w));
    const auto pos = std::upper_bound(running_.begin(), running_.end(), id, [&](SeqId a, SeqId b) {
      return before(seqs_.at(a), seqs_.at(b));
    });
    running_.insert(pos, id);
    s.running = true;
  }
  for (const ScheduledChunk& c : plan.chunks)
    plan.num_tokens += c.count;
  return plan;
}

void Scheduler::publish_full_blocks(Seq& s) {
  const std::int32_t full = s.num_computed / options_.block_tokens;
  const auto bt = static_cast<std::size_t>(options_.block_tokens);
  for (std::int32_t b = s.keyed_blocks; b < full; ++b) {
    const auto chunk =
        std::span<const std::int32_t>(s.tokens).subspan(static_cast<std::size_t>(b) * bt, bt);
    s.last_key = chain_block_key(s.last_key, chunk);
    const std::int32_t parent = b == 0 ? -1 : s.blocks[static_cast<std::size_t>(b) - 1];
    pool_.publish(s.blocks[static_cast<std::size_t>(b)], s.last_key, parent, chunk,
                  s.spec.cache_namespace);
    s.keyed_blocks = b + 1;
  }
}

void Scheduler::commit(const StepPlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    Seq& s = seqs_.at(c.id);
    assert(s.num_computed == c.start);
    s.num_computed += c.count;
    stats_.computed_tokens += static_cast<std::uint64_t>(c.count);
    if (s.num_computed >= static_cast<std::int32_t>(s.spec.prompt.size())) s.prompt_done = true;
    publish_full_blocks(s);
  }
}

void Scheduler::append_token(SeqId id, std::int32_t token) {
  seqs_.at(id).tokens.push_back(token);
}

void Scheduler::finish(SeqId id) {
  const auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  release_blocks(it->second);
  if (it->second.running) {
    std::erase(running_, id);
  } else {
    std::erase(waiting_, id);
  }
  seqs_.erase(it);
}

}  // namespace spillway::engine
