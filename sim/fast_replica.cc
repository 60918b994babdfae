// The "fast" replica: engine::Scheduler's rules (engine/scheduler.h) re-implemented on counts —
// no token ids, no hashes, no per-block records — with runs of identical decode steps folded
// into one event.
//
// Scheduling (one step, schedule_step): a line-by-line port of Scheduler::schedule() — running
// sequences first in (priority desc, submission, id) order under the token budget, preempting the
// last running sequence when a block is missing; then admission in the same order with prefix
// matching, chunked prefill, and preemption of strictly lower priorities when that suffices;
// first come, first served inside a class.
//
// Aggregation: when a step is pure decode (every running sequence computes its one pending
// token, nothing was admitted or preempted) the next steps repeat it until (a) a sequence
// finishes, (b) the free + cached blocks no longer cover the blocks the decodes need (the exact
// model would preempt in that step), or (c) a submit or cancel arrives (the run is cut at the
// first step boundary the replica has not yet reached). Admission cannot succeed inside such a
// run: it failed at its first step and, with no blocks released, available + freeable blocks
// only shrink. The run's duration is PerfModel::decode_steps_time (closed form, O(1)).
//
// Prefix cache, at block granularity by count. A "chain" is a sequence of full blocks whose
// keys are equal for every request that shares them: one per (namespace, prefix_id) — the
// shared prefix's full blocks — and one per request for the blocks after its shared prefix
// (unique tokens and generated ones, which only that request can hit again after preemption).
// A chain knows how many of its leading blocks are cached (`present`) and which lengths running
// sequences hold (`holders`: a block is referenced while some holder covers it). Unreferenced
// cached blocks sit in one LRU list of segments (chain, [lo, hi)), evicted from hi - 1 down:
// the order the block pool's LRU list has, since a release appends a sequence's blocks last
// block first and matches take leading blocks only.
//
// The engine's corner cases are kept (they change hit rates under concurrency and pressure):
// a block whose key is already cached stays an unpublished duplicate (freed on release); a
// block published while its parent is such a duplicate — or whose parent was evicted — is never
// matched but keeps its key taken (Chain::dead_key) until it is evicted. Differences from the
// exact model are listed in fast_replica.h.
#include "sim/fast_replica.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/scheduler.h"

namespace spillway::sim {
namespace {

struct Chain;
using SharedKey = std::pair<std::string, std::uint64_t>;  // (namespace, prefix_id)

// Cached, unreferenced blocks [lo, hi) of `chain` (positions in the chain), or `hi - lo` dead
// blocks (cached but never matched again) when chain is null.
struct Segment {
  Chain* chain = nullptr;
  std::int32_t lo = 0;
  std::int32_t hi = 0;
  // Blocks [lo, hi) of `chain` published under a dead parent: never matched, but their keys
  // keep the canonical copies from being published until they are evicted.
  bool dead_keys = false;
};
using Lru = std::list<Segment>;

struct Chain {
  std::int32_t present = 0;  // Leading blocks cached (matchable).
  // Positions (>= present) whose key is published by a block no match reaches (its parent is
  // a duplicate, or an evicted block): the canonical copy cannot be published there until that
  // block is evicted (BlockPool::publish refuses a key already cached).
  std::vector<bool> dead_key;
  std::map<std::int32_t, std::int32_t> holders;  // Held length -> running sequences.
  std::vector<Lru::iterator> segments;           // This chain's LRU segments.
  std::int32_t users = 0;                        // Live sequences naming it (shared chains).
  bool shared = false;                           // In shared_chains_ under `key`.
  SharedKey key;
  [[nodiscard]] std::int32_t held() const { return holders.empty() ? 0 : holders.rbegin()->first; }
  [[nodiscard]] bool key_taken(std::int32_t b) const {
    return b < present ||
           (static_cast<std::size_t>(b) < dead_key.size() && dead_key[static_cast<std::size_t>(b)]);
  }
  void set_dead_key(std::int32_t b, bool v) {
    if (static_cast<std::size_t>(b) >= dead_key.size()) {
      if (!v) return;
      dead_key.resize(static_cast<std::size_t>(b) + 1, false);
    }
    dead_key[static_cast<std::size_t>(b)] = v;
  }
};

struct Seq {
  RequestId id = 0;
  std::int32_t priority = 0;  // Higher runs first (engine convention).
  std::uint64_t arrival = 0;  // Submission order (SequenceSpec::arrival in the exact model).
  std::int32_t prompt = 0;
  std::int32_t output = 0;
  std::int32_t prefix_blocks = 0;  // Full blocks of the shared prefix (chain positions).
  Chain* shared = nullptr;         // Null when prefix_blocks == 0.
  Chain own;                       // Blocks from prefix_blocks on, position 0 = prefix_blocks.

  std::int32_t generated = 0;
  std::int32_t computed = 0;
  std::int32_t blocks = 0;       // Block table length.
  std::int32_t keyed = 0;        // Full blocks published (or matched) so far.
  std::int32_t shared_held = 0;  // Leading shared-chain blocks held (canonical copies).
  std::int32_t own_held = 0;     // Leading own-chain blocks held (canonical copies).
  // Positions this sequence published under a parent no match reaches, ascending.
  std::vector<std::int32_t> dead;      // In the shared chain.
  std::vector<std::int32_t> own_dead;  // In its own chain.
  bool running = false;
  bool admitted = false;  // Has been in a step (max_waiting bounds the others).

  [[nodiscard]] std::int32_t known() const { return prompt + generated; }
};

struct Chunk {
  Seq* seq = nullptr;  // Null once cancelled mid-step.
  std::int32_t start = 0;
  std::int32_t count = 0;
  bool want_logits = false;
};

// Scheduling order: priority descending, then submission order, then id (Scheduler::before).
bool before(const Seq* a, const Seq* b) {
  if (a->priority != b->priority) return a->priority > b->priority;
  if (a->arrival != b->arrival) return a->arrival < b->arrival;
  return a->id < b->id;
}

class FastReplica final : public ReplicaModel {
 public:
  FastReplica(const PerfModel& perf, const ReplicaConfig& config, std::int32_t max_context)
      : perf_(perf), config_(config), max_context_(max_context), free_(config.kv_blocks) {}

  Status submit(const SimRequest& request, Nanos now) override;
  [[nodiscard]] std::optional<Nanos> next_event_time() const override {
    if (!in_flight_) return std::nullopt;
    return end_;
  }
  void advance(Nanos t, ReplicaEventSink& sink) override;
  std::vector<RequestId> fail_all() override;
  bool cancel(RequestId id) override;
  [[nodiscard]] ReplicaLoad load() const override {
    ReplicaLoad l;
    l.running = static_cast<std::int64_t>(running_.size());
    l.waiting = static_cast<std::int64_t>(waiting_.size());
    l.kv_usage = static_cast<double>(config_.kv_blocks - available()) / config_.kv_blocks;
    return l;
  }
  [[nodiscard]] const ReplicaStats& stats() const override { return stats_; }

 private:
  [[nodiscard]] std::int32_t available() const { return free_ + lru_blocks_; }
  // The exact model's split of a step's tokens (stats and StepShape): a one-token chunk past
  // the prompt is a decode, anything else prefill.
  [[nodiscard]] static bool is_decode(const Chunk& c) {
    return c.count == 1 && c.start >= c.seq->prompt;
  }
  [[nodiscard]] std::int32_t blocks_for(std::int64_t positions) const {
    return static_cast<std::int32_t>((positions + config_.block_tokens - 1) / config_.block_tokens);
  }

  // Block pool.
  void allocate(std::int32_t n);  // REQUIRES: n <= available().
  void append_segment(Chain* chain, std::int32_t lo, std::int32_t hi);
  void erase_segment(Lru::iterator it);
  void take_from_lru(Chain& chain, std::int32_t lo, std::int32_t hi);  // Retain [lo, hi).
  void truncate_chain(Chain& chain, std::int32_t present);  // Blocks from `present` go dead.
  static void add_holder(Chain& chain, std::int32_t length);
  static void remove_holder(Chain& chain, std::int32_t length);
  void drop_shared_user(Seq& s);
  void maybe_forget(Chain* chain);       // Drops an unused, empty shared chain.
  static void kill_chain(Chain& chain);  // Its LRU segments become dead blocks.
  void append_dead_keys(Chain* chain, const std::vector<std::int32_t>& positions);
  enum class Published { kDuplicate, kCanonical, kDeadKey };
  Published publish_block(Chain& chain, std::int32_t b, bool parent_canonical);

  // Scheduler.
  bool reserve(Seq& s, std::int64_t positions);
  void release_blocks(Seq& s, bool finished);
  void preempt(Seq* victim);
  void match(Seq& s);
  void publish_full_blocks(Seq& s);
  [[nodiscard]] std::int32_t exclusive_blocks(const Seq& s) const;
  void insert_sorted(std::vector<Seq*>& list, Seq* s);
  void schedule_step(Nanos start);
  [[nodiscard]] std::int64_t fold_limit(std::int64_t max_steps) const;
  void complete_step(ReplicaEventSink& sink);
  // Cuts a folded run at the first step boundary after processed_ (new input is seen there).
  void cut_run();
  void remove_seq(Seq& s);

  const PerfModel& perf_;
  ReplicaConfig config_;
  std::int32_t max_context_;

  std::int32_t free_;
  std::int32_t lru_blocks_ = 0;
  Lru lru_;
  std::map<SharedKey, Chain> shared_chains_;

  std::unordered_map<RequestId, Seq> seqs_;
  std::vector<Seq*> running_;  // Scheduling order.
  std::vector<Seq*> waiting_;  // Scheduling order.

  // The step (or folded run of decode steps) in flight.
  bool in_flight_ = false;
  Nanos start_{0};
  Nanos end_{0};
  std::vector<Chunk> chunks_;
  std::int64_t steps_ = 1;     // > 1: a folded run; chunks_ are its decodes (count 1 each).
  std::int64_t context0_ = 0;  // A folded run's summed context at its first step.
  Nanos processed_{0};         // Latest time given to advance().
  Nanos now_{0};               // Latest time seen (advance or submit).
  std::uint64_t next_arrival_ = 0;
  std::int32_t queued_ = 0;  // Requests never admitted yet: what max_waiting bounds.

  ReplicaStats stats_;
};

// ---- Block pool ----------------------------------------------------------------------------

void FastReplica::append_segment(Chain* chain, std::int32_t lo, std::int32_t hi) {
  if (hi <= lo) return;
  const auto it = lru_.insert(lru_.end(), Segment{chain, lo, hi});
  if (chain != nullptr) chain->segments.push_back(it);
  lru_blocks_ += hi - lo;
}

void FastReplica::erase_segment(Lru::iterator it) {
  if (it->chain != nullptr) std::erase(it->chain->segments, it);
  lru_.erase(it);
}

void FastReplica::allocate(std::int32_t n) {
  assert(n <= available());
  const std::int32_t from_free = std::min(n, free_);
  free_ -= from_free;
  n -= from_free;
  while (n > 0) {
    const auto it = lru_.begin();
    const std::int32_t take = std::min(n, it->hi - it->lo);
    it->hi -= take;
    lru_blocks_ -= take;
    n -= take;
    Chain* chain = it->chain;
    const std::int32_t hi = it->hi;
    const bool dead_keys = it->dead_keys;
    if (it->hi == it->lo) erase_segment(it);
    if (chain != nullptr && dead_keys) {
      // The keys are free again: the canonical copies can be published.
      for (std::int32_t b = hi; b < hi + take; ++b)
        chain->set_dead_key(b, false);
    } else if (chain != nullptr && hi < chain->present) {
      // Evicting a chain's block makes every later block of the chain unmatchable.
      truncate_chain(*chain, hi);
    }
    maybe_forget(chain);
  }
}

void FastReplica::maybe_forget(Chain* chain) {
  if (chain == nullptr || !chain->shared) return;
  if (chain->users == 0 && chain->present == 0 && chain->segments.empty() &&
      chain->holders.empty()) {
    const SharedKey key = chain->key;  // Not a reference into the node being erased.
    shared_chains_.erase(key);
  }
}

void FastReplica::kill_chain(Chain& chain) {
  for (const Lru::iterator it : chain.segments)
    it->chain = nullptr;
  chain.segments.clear();
  chain.present = 0;
  chain.dead_key.clear();
}

void FastReplica::truncate_chain(Chain& chain, std::int32_t present) {
  if (present >= chain.present) return;
  // Cached blocks at [present, old present) stay cached but unmatchable (their parent is gone)
  // and their keys stay taken until they are evicted.
  chain.present = present;
  std::vector<Lru::iterator> keep;
  std::vector<Lru::iterator> dead;
  for (const Lru::iterator it : chain.segments) {
    if (it->hi <= present || it->dead_keys) {
      keep.push_back(it);
    } else if (it->lo < present) {  // Split: the upper part, same age, is evicted first.
      dead.push_back(lru_.insert(it, Segment{&chain, present, it->hi}));
      it->hi = present;
      keep.push_back(it);
    } else {
      dead.push_back(it);
    }
  }
  for (const Lru::iterator it : dead) {
    it->dead_keys = true;
    for (std::int32_t b = it->lo; b < it->hi; ++b)
      chain.set_dead_key(b, true);
    keep.push_back(it);
  }
  chain.segments = std::move(keep);
}

void FastReplica::take_from_lru(Chain& chain, std::int32_t lo, std::int32_t hi) {
  if (hi <= lo) return;
  for (std::size_t i = 0; i < chain.segments.size();) {
    const Lru::iterator it = chain.segments[i];
    const std::int32_t a = std::max(lo, it->lo);
    const std::int32_t b = std::min(hi, it->hi);
    if (a >= b || it->dead_keys) {
      ++i;
      continue;
    }
    lru_blocks_ -= b - a;
    if (a == it->lo && b == it->hi) {
      lru_.erase(it);
      chain.segments.erase(chain.segments.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    if (a == it->lo) {
      it->lo = b;
    } else if (b == it->hi) {
      it->hi = a;
    } else {  // Middle taken: [b, hi) keeps the age, as its own segment.
      const auto upper = lru_.insert(it, Segment{&chain, b, it->hi});
      it->hi = a;
      chain.segments.push_back(upper);
    }
    ++i;
  }
}

void FastReplica::add_holder(Chain& chain, std::int32_t length) {
  if (length > 0) ++chain.holders[length];
}

void FastReplica::remove_holder(Chain& chain, std::int32_t length) {
  if (length <= 0) return;
  const auto it = chain.holders.find(length);
  assert(it != chain.holders.end());
  if (--it->second == 0) chain.holders.erase(it);
}

void FastReplica::drop_shared_user(Seq& s) {
  if (s.shared == nullptr) return;
  Chain* c = s.shared;
  --c->users;
  s.shared = nullptr;
  maybe_forget(c);
}

// ---- Scheduler rules -------------------------------------------------------------------------

bool FastReplica::reserve(Seq& s, std::int64_t positions) {
  const std::int32_t need = blocks_for(positions) - s.blocks;
  if (need <= 0) return true;
  if (need > available()) return false;
  allocate(need);
  s.blocks += need;
  return true;
}

// Appends a sequence's dead-key blocks of `chain` (ascending positions) to the LRU list, as
// runs, highest first.
void FastReplica::append_dead_keys(Chain* chain, const std::vector<std::int32_t>& positions) {
  for (std::size_t end = positions.size(); end > 0;) {
    std::size_t begin = end - 1;
    while (begin > 0 && positions[begin - 1] + 1 == positions[begin])
      --begin;
    append_segment(chain, positions[begin], positions[end - 1] + 1);
    lru_.back().dead_keys = true;
    end = begin;
  }
}

// Scheduler::release_blocks: the table is released last block first: the own chain's published
// blocks (dead keys above canonical ones) enter the LRU list before (older than) the shared
// prefix's. Unpublished blocks (partial ones, duplicates) are free. A finished sequence's own
// blocks are never looked up again: dead.
void FastReplica::release_blocks(Seq& s, bool finished) {
  free_ += s.blocks - s.shared_held - s.own_held - static_cast<std::int32_t>(s.dead.size()) -
           static_cast<std::int32_t>(s.own_dead.size());
  Chain* own = finished ? nullptr : &s.own;
  append_dead_keys(own, s.own_dead);
  append_segment(own, 0, s.own_held);
  append_dead_keys(s.shared, s.dead);
  if (s.shared_held > 0) {
    Chain& c = *s.shared;
    remove_holder(c, s.shared_held);
    const std::int32_t still = c.held();
    if (s.shared_held > still) append_segment(&c, still, s.shared_held);
  }
  s.blocks = 0;
  s.computed = 0;
  s.keyed = 0;
  s.shared_held = 0;
  s.own_held = 0;
  s.dead.clear();
  s.own_dead.clear();
}

void FastReplica::preempt(Seq* victim) {
  release_blocks(*victim, /*finished=*/false);
  victim->running = false;
  std::erase(running_, victim);
  insert_sorted(waiting_, victim);
  ++stats_.preemptions;
}

void FastReplica::insert_sorted(std::vector<Seq*>& list, Seq* s) {
  list.insert(std::upper_bound(list.begin(), list.end(), s, before), s);
}

// BlockPool::match on chains: the shared prefix's cached leading blocks, then (only when the
// whole shared prefix matched) the sequence's own cached blocks; always leaves the last known
// token to compute.
void FastReplica::match(Seq& s) {
  const std::int32_t max_hit = (s.known() - 1) / config_.block_tokens;
  std::int32_t hit_shared = 0;
  if (s.shared != nullptr) {
    Chain& c = *s.shared;
    hit_shared = std::min({c.present, s.prefix_blocks, max_hit});
    take_from_lru(c, c.held(), hit_shared);
    add_holder(c, hit_shared);
  }
  std::int32_t hit_own = 0;
  if (hit_shared == s.prefix_blocks) {
    hit_own = std::min(s.own.present, max_hit - hit_shared);
    take_from_lru(s.own, 0, hit_own);
  }
  // Own blocks past the hit (their parent is gone, or not reached): cached but unmatchable.
  truncate_chain(s.own, hit_own);
  s.shared_held = hit_shared;
  s.own_held = hit_own;
  s.blocks = hit_shared + hit_own;
  s.keyed = s.blocks;
  s.computed = s.blocks * config_.block_tokens;
}

// BlockPool::publish of block `b` of `chain` by a sequence: a duplicate (not published) when
// the key is already cached; the canonical copy when its parent is the canonical copy of
// block b - 1 and nobody published b; otherwise published under a parent no match reaches.
FastReplica::Published FastReplica::publish_block(Chain& chain, std::int32_t b,
                                                  bool parent_canonical) {
  if (chain.key_taken(b)) return Published::kDuplicate;
  if (parent_canonical && chain.present == b) {
    chain.present = b + 1;
    return Published::kCanonical;
  }
  chain.set_dead_key(b, true);
  return Published::kDeadKey;
}

// Scheduler::publish_full_blocks on chains.
void FastReplica::publish_full_blocks(Seq& s) {
  const std::int32_t full = s.computed / config_.block_tokens;
  for (std::int32_t b = s.keyed; b < full; ++b) {
    if (b < s.prefix_blocks) {
      Chain& c = *s.shared;
      switch (publish_block(c, b, s.shared_held == b)) {
        case Published::kCanonical:
          remove_holder(c, b);
          add_holder(c, b + 1);
          s.shared_held = b + 1;
          break;
        case Published::kDeadKey:
          s.dead.push_back(b);
          break;
        case Published::kDuplicate:
          break;
      }
      continue;
    }
    const std::int32_t q = b - s.prefix_blocks;
    const bool parent_canonical = q == 0 ? s.shared_held == s.prefix_blocks : s.own_held == q;
    switch (publish_block(s.own, q, parent_canonical)) {
      case Published::kCanonical:
        s.own_held = q + 1;
        break;
      case Published::kDeadKey:
        s.own_dead.push_back(q);
        break;
      case Published::kDuplicate:
        break;
    }
  }
  s.keyed = std::max(s.keyed, full);
}

// Blocks of a running sequence with reference count 1 (freed by preempting it).
std::int32_t FastReplica::exclusive_blocks(const Seq& s) const {
  std::int32_t n = s.blocks - s.shared_held;
  if (s.shared_held > 0) {
    const Chain& c = *s.shared;
    // Holders other than s: the largest other held length.
    std::int32_t other = 0;
    for (auto it = c.holders.rbegin(); it != c.holders.rend(); ++it) {
      const std::int32_t count = it->first == s.shared_held ? it->second - 1 : it->second;
      if (count > 0) {
        other = it->first;
        break;
      }
    }
    n += std::max(0, s.shared_held - other);
  }
  return n;
}

void FastReplica::schedule_step(Nanos start) {
  chunks_.clear();
  steps_ = 1;
  std::int32_t budget = config_.max_batch_tokens;
  bool changed = false;  // Anything but pure decode of the running set.

  // 1. Running sequences, in order; victims come from the back.
  for (std::size_t i = 0; i < running_.size() && budget > 0;) {
    Seq* s = running_[i];
    const std::int32_t n = std::min(s->known() - s->computed, budget);
    if (n <= 0) {
      ++i;
      continue;
    }
    bool self_preempted = false;
    while (!reserve(*s, static_cast<std::int64_t>(s->computed) + n)) {
      Seq* victim = running_.back();
      self_preempted = victim == s;
      preempt(victim);
      changed = true;
      if (self_preempted) break;
    }
    if (self_preempted) break;
    chunks_.push_back({s, s->computed, n, s->computed + n == s->known()});
    budget -= n;
    ++i;
  }

  // 2. Admission.
  for (std::size_t w = 0; w < waiting_.size() && budget > 0 &&
                          static_cast<std::int32_t>(running_.size()) < config_.max_running;) {
    Seq* s = waiting_[w];
    match(*s);
    const std::int32_t known = s->known();
    const std::int32_t n = std::min(known - s->computed, budget);
    bool fits = reserve(*s, static_cast<std::int64_t>(s->computed) + n);
    if (!fits) {
      std::int32_t freeable = 0;
      for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
        if ((*it)->priority >= s->priority) break;
        freeable += exclusive_blocks(**it);
      }
      const std::int32_t need = blocks_for(static_cast<std::int64_t>(s->computed) + n) - s->blocks;
      if (available() + freeable >= need) {
        while (!fits && !running_.empty() && running_.back()->priority < s->priority) {
          Seq* victim = running_.back();
          std::erase_if(chunks_, [&](const Chunk& c) {
            if (c.seq != victim) return false;
            budget += c.count;
            return true;
          });
          preempt(victim);
          changed = true;
          fits = reserve(*s, static_cast<std::int64_t>(s->computed) + n);
        }
      }
    }
    if (!fits) {
      release_blocks(*s, /*finished=*/false);
      break;
    }
    stats_.prefix_query_tokens += static_cast<std::uint64_t>(known);
    stats_.prefix_hit_tokens += static_cast<std::uint64_t>(s->computed);
    chunks_.push_back({s, s->computed, n, s->computed + n == known});
    budget -= n;
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(w));
    s->running = true;
    if (!s->admitted) {
      s->admitted = true;
      --queued_;
    }
    insert_sorted(running_, s);
    changed = true;
  }

  if (chunks_.empty()) {
    in_flight_ = false;
    return;
  }

  // The step's shape; a chunk [start, start + count) attends start + 1 ... start + count
  // positions and reads start + count.
  StepShape shape;
  bool pure_decode = !changed && chunks_.size() == running_.size();
  for (const Chunk& c : chunks_) {
    const std::int64_t st = c.start;
    const std::int64_t n = c.count;
    shape.attended_positions += n * st + n * (n + 1) / 2;
    shape.kv_positions += st + n;
    if (is_decode(c)) {
      shape.decode_tokens += 1;
    } else {
      shape.prefill_tokens += n;
    }
    if (!(c.count == 1 && c.want_logits && c.seq->generated >= 1)) pure_decode = false;
  }
  in_flight_ = true;
  start_ = start;
  if (pure_decode) {
    std::int64_t max_steps = std::numeric_limits<std::int64_t>::max();
    for (const Chunk& c : chunks_)
      max_steps = std::min<std::int64_t>(max_steps, c.seq->output - c.seq->generated);
    steps_ = fold_limit(max_steps);
  }
  context0_ = shape.kv_positions;
  if (steps_ > 1) {
    end_ = start +
           perf_.decode_steps_time(static_cast<std::int64_t>(chunks_.size()), context0_, steps_);
  } else {
    end_ = start + std::max(perf_.step_time(shape), Nanos{1});  // Time always moves.
  }
}

// The largest k <= max_steps such that steps 1 .. k-1 of the run find the blocks they need
// (step 0's are already reserved).
std::int64_t FastReplica::fold_limit(std::int64_t max_steps) const {
  if (max_steps <= 1) return 1;
  const auto needed = [&](std::int64_t k) {
    std::int64_t total = 0;
    for (const Chunk& c : chunks_)
      total += blocks_for(c.start + k) - blocks_for(c.start + 1);
    return total;
  };
  const std::int64_t avail = available();
  if (needed(max_steps) <= avail) return max_steps;
  // needed() is non-decreasing: the largest k with needed(k) <= avail, needed(1) == 0.
  std::int64_t lo = 1;
  std::int64_t hi = max_steps;  // needed(hi) > avail.
  while (hi - lo > 1) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (needed(mid) <= avail) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

void FastReplica::cut_run() {
  if (!in_flight_ || steps_ <= 1) return;
  const std::int64_t r = static_cast<std::int64_t>(chunks_.size());
  const auto boundary = [&](std::int64_t m) {
    return start_ + perf_.decode_steps_time(r, context0_, m);
  };
  // The first m in [1, steps_] with boundary(m) > processed_.
  std::int64_t lo = 0;
  std::int64_t hi = steps_;
  if (boundary(hi) <= processed_) return;  // Cannot happen: advance() would have completed it.
  while (hi - lo > 1) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (boundary(mid) > processed_) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  steps_ = hi;
  end_ = boundary(hi);
}

void FastReplica::complete_step(ReplicaEventSink& sink) {
  struct Report {
    RequestId id;
    int kind;  // 0 first token, 1 finished.
  };
  std::vector<Report> reports;
  std::vector<Seq*> finished;
  const std::int64_t k = steps_;
  ++stats_.steps;
  stats_.steps += static_cast<std::uint64_t>(k - 1);
  stats_.busy += end_ - start_;

  if (k > 1) {
    // Blocks of steps 1 .. k-1, all at once (no release in between, so the same blocks).
    std::int32_t need = 0;
    for (const Chunk& c : chunks_) {
      if (c.seq == nullptr) continue;
      need += blocks_for(c.start + k) - c.seq->blocks;
    }
    allocate(std::min(need, available()));
  }
  for (const Chunk& c : chunks_) {
    Seq* s = c.seq;
    if (s == nullptr) continue;
    if (k > 1) {
      s->computed = c.start + static_cast<std::int32_t>(k);
      s->blocks = blocks_for(s->computed);
      s->generated += static_cast<std::int32_t>(k);
      stats_.decode_tokens += static_cast<std::uint64_t>(k);
      publish_full_blocks(*s);
    } else {
      s->computed += c.count;
      if (is_decode(c)) {
        stats_.decode_tokens += 1;
      } else {
        stats_.prefill_tokens += static_cast<std::uint64_t>(c.count);
      }
      publish_full_blocks(*s);
      if (!c.want_logits) continue;
      ++s->generated;
      if (s->generated == 1) reports.push_back({s->id, 0});
    }
    if (s->generated >= s->output) {
      reports.push_back({s->id, 1});
      finished.push_back(s);
    }
  }
  for (Seq* s : finished)
    remove_seq(*s);
  chunks_.clear();
  in_flight_ = false;
  const Nanos at = end_;
  std::sort(reports.begin(), reports.end(), [](const Report& a, const Report& b) {
    return a.id != b.id ? a.id < b.id : a.kind < b.kind;
  });
  for (const Report& r : reports) {
    if (r.kind == 0) {
      sink.on_first_token(r.id, at);
    } else {
      sink.on_finished(r.id, at);
    }
  }
  schedule_step(at);
}

void FastReplica::remove_seq(Seq& s) {
  if (s.running) {
    release_blocks(s, /*finished=*/true);
    std::erase(running_, &s);
  } else {
    std::erase(waiting_, &s);
  }
  kill_chain(s.own);
  drop_shared_user(s);
  seqs_.erase(s.id);
}

// ---- ReplicaModel ----------------------------------------------------------------------------

Status FastReplica::submit(const SimRequest& request, Nanos now) {
  SPW_TRY(validate_sim_request(request));

  const std::int64_t total =
      static_cast<std::int64_t>(request.prompt_tokens) + request.output_tokens;
  if (total > max_context_) {
    return make_error(ErrorCode::kOutOfRange,
                      "request {} needs {} tokens of context ({} prompt + {} output) but the "
                      "replica's maximum is {}",
                      request.id, total, request.prompt_tokens, request.output_tokens,
                      max_context_);
  }
  const std::int64_t capacity = static_cast<std::int64_t>(config_.kv_blocks) * config_.block_tokens;
  if (total > capacity) {
    return make_error(ErrorCode::kOutOfRange,
                      "request {} needs {} tokens of KV cache but the whole cache holds {}",
                      request.id, total, capacity);
  }
  if (seqs_.contains(request.id)) {
    return make_error(ErrorCode::kInvalidArgument, "request {} is already on this replica",
                      request.id);
  }
  if (queued_ >= config_.max_waiting) {
    return make_error(ErrorCode::kResourceExhausted, "the replica's queue is full ({} waiting)",
                      queued_);
  }
  Seq& s = seqs_[request.id];
  s.id = request.id;
  s.priority = fleet::kNumPriorities - 1 - static_cast<std::int32_t>(request.priority);
  s.arrival = next_arrival_++;
  ++queued_;
  s.prompt = request.prompt_tokens;
  s.output = request.output_tokens;
  s.prefix_blocks = request.prefix_id == 0 ? 0 : request.prefix_tokens / config_.block_tokens;
  if (s.prefix_blocks > 0) {
    SharedKey key{request.cache_namespace, request.prefix_id};
    Chain& c = shared_chains_[key];
    if (!c.shared) {
      c.shared = true;
      c.key = std::move(key);
    }
    ++c.users;
    s.shared = &c;
  }
  insert_sorted(waiting_, &s);
  now_ = std::max(now_, now);
  if (!in_flight_) {
    schedule_step(now_);
  } else {
    cut_run();
  }
  return Status();
}

void FastReplica::advance(Nanos t, ReplicaEventSink& sink) {
  processed_ = std::max(processed_, t);
  while (in_flight_ && end_ <= t)
    complete_step(sink);
  now_ = std::max(now_, t);
}

std::vector<RequestId> FastReplica::fail_all() {
  std::vector<RequestId> ids;
  ids.reserve(seqs_.size());
  for (const auto& [id, s] : seqs_)
    ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  running_.clear();
  waiting_.clear();
  chunks_.clear();
  in_flight_ = false;
  lru_.clear();
  seqs_.clear();
  shared_chains_.clear();
  lru_blocks_ = 0;
  free_ = config_.kv_blocks;
  queued_ = 0;
  return ids;
}

bool FastReplica::cancel(RequestId id) {
  const auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  cut_run();
  Seq* s = &it->second;
  if (!s->admitted) --queued_;
  for (Chunk& c : chunks_) {
    if (c.seq == s) c.seq = nullptr;
  }
  remove_seq(*s);
  return true;
}

}  // namespace

Result<std::unique_ptr<ReplicaModel>> make_fast_replica(const PerfModel& perf,
                                                        const ReplicaConfig& config) {
  // The exact model's checks, in its order (scheduler_replica.cc), so both reject alike.
  if (config.kv_blocks < 1) {
    return make_error(ErrorCode::kInvalidArgument, "replica kv_blocks must be at least 1 (got {})",
                      config.kv_blocks);
  }
  if (config.max_waiting < 0) {
    return make_error(ErrorCode::kInvalidArgument, "replica max_waiting must be >= 0 (got {})",
                      config.max_waiting);
  }
  if (config.max_context < 0) {
    return make_error(ErrorCode::kInvalidArgument, "replica max_context must be >= 0 (got {})",
                      config.max_context);
  }
  engine::SchedulerOptions options;
  options.num_blocks = config.kv_blocks;
  options.block_tokens = config.block_tokens;
  options.max_batch_tokens = config.max_batch_tokens;
  options.max_running = config.max_running;
  options.max_context = config.max_context > 0 ? config.max_context : perf.model().n_ctx;
  if (Status ok = engine::validate_scheduler_options(options); !ok.ok()) {
    return make_error(ok.error().code(), "replica config: {}", ok.error().message());
  }
  return std::unique_ptr<ReplicaModel>(new FastReplica(perf, config, options.max_context));
}

}  // namespace spillway::sim
