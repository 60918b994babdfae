// BlockPool (prefix cache bookkeeping) and Scheduler (continuous batching decisions), without a
// model: a driver stands in for the forward pass and "samples" a token derived from the
// sequence, so runs are deterministic and every invariant can be checked after each step.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "core/random.h"

#include "engine/block_pool.h"

namespace spillway::engine {
namespace {

SchedulerOptions opts(std::int32_t blocks, std::int32_t block_tokens, std::int32_t budget,
                      std::int32_t running, std::int32_t context) {
  SchedulerOptions o;
  o.num_blocks = blocks;
  o.block_tokens = block_tokens;
  o.max_batch_tokens = budget;
  o.max_running = running;
  o.max_context = context;
  return o;
}

struct Spec {
  SeqId id = 0;
  std::vector<std::int32_t> prompt;
  std::int32_t max_new = 1;
  std::int32_t priority = 0;
  std::uint64_t arrival = 0;
  std::string ns;
  SeqId wait_for = -1;
  operator SequenceSpec() const {  // NOLINT: implicit for brevity in tests.
    SequenceSpec out;
    out.id = id;
    out.priority = priority;
    out.arrival = arrival;
    out.cache_namespace = ns;
    out.prompt = prompt;
    out.max_new_tokens = max_new;
    out.wait_for = wait_for;
    return out;
  }
};

Spec spec(SeqId id, std::vector<std::int32_t> prompt, std::int32_t max_new,
          std::int32_t priority = 0, std::uint64_t arrival = 0, std::string ns = "",
          SeqId wait_for = -1) {
  Spec s;
  s.id = id;
  s.prompt = std::move(prompt);
  s.max_new = max_new;
  s.priority = priority;
  s.arrival = arrival;
  s.ns = std::move(ns);
  s.wait_for = wait_for;
  return s;
}

// Uniform integer in [lo, hi].
std::int64_t uni(Random& rng, std::int64_t lo, std::int64_t hi) {
  return lo + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(hi - lo + 1)));
}

std::vector<std::int32_t> iota_tokens(std::int32_t n, std::int32_t first = 1) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Publishes the full blocks of `tokens` held in `blocks` under namespace `ns`.
void publish_all(BlockPool& pool, const std::vector<std::int32_t>& blocks,
                 const std::vector<std::int32_t>& tokens, std::string_view ns) {
  BlockKey key = namespace_root_key(ns);
  const auto bt = static_cast<std::size_t>(pool.block_tokens());
  for (std::size_t b = 0; b < blocks.size() && (b + 1) * bt <= tokens.size(); ++b) {
    const auto chunk = std::span(tokens).subspan(b * bt, bt);
    key = chain_block_key(key, chunk);
    pool.publish(blocks[b], key, b == 0 ? -1 : blocks[b - 1], chunk, ns);
  }
}

TEST(BlockPool, AllocatesEveryBlockOnceAndFreesOnRelease) {
  BlockPool pool(4, 2);
  std::set<std::int32_t> got;
  for (int i = 0; i < 4; ++i)
    got.insert(*pool.allocate());
  EXPECT_EQ(got.size(), 4u);
  EXPECT_FALSE(pool.allocate().has_value());
  EXPECT_EQ(pool.available(), 0);
  pool.retain(2);
  pool.release(2);
  EXPECT_EQ(pool.available(), 0);  // Still one reference.
  pool.release(2);
  EXPECT_EQ(pool.available(), 1);
  EXPECT_EQ(*pool.allocate(), 2);
}

TEST(BlockPool, PublishedBlocksAreMatchedAfterRelease) {
  BlockPool pool(8, 4);
  const auto tokens = iota_tokens(10);  // Two full blocks and a partial one.
  std::vector<std::int32_t> blocks = {*pool.allocate(), *pool.allocate(), *pool.allocate()};
  publish_all(pool, blocks, tokens, "tenant-a");
  EXPECT_TRUE(pool.is_published(blocks[0]));
  EXPECT_TRUE(pool.is_published(blocks[1]));
  EXPECT_FALSE(pool.is_published(blocks[2]));
  for (const std::int32_t b : blocks)
    pool.release(b);
  EXPECT_EQ(pool.cached_unreferenced(), 2);
  EXPECT_EQ(pool.available(), 8);

  const auto hit = pool.match("tenant-a", tokens, 100);
  ASSERT_EQ(hit.size(), 2u);
  EXPECT_EQ(hit[0], blocks[0]);
  EXPECT_EQ(hit[1], blocks[1]);
  EXPECT_EQ(pool.ref_count(hit[0]), 1);
  EXPECT_EQ(pool.cached_unreferenced(), 0);

  // A prefix that diverges in the second block matches only the first.
  auto other = tokens;
  other[5] = 999;
  const auto partial = pool.match("tenant-a", other, 100);
  ASSERT_EQ(partial.size(), 1u);
  EXPECT_EQ(partial[0], blocks[0]);
  EXPECT_EQ(pool.match("tenant-a", tokens, 1).size(), 1u);  // max_blocks is honoured.
}

TEST(BlockPool, NamespacesNeverShare) {
  BlockPool pool(4, 4);
  const auto tokens = iota_tokens(8);
  std::vector<std::int32_t> blocks = {*pool.allocate(), *pool.allocate()};
  publish_all(pool, blocks, tokens, "tenant-a");
  for (const std::int32_t b : blocks)
    pool.release(b);
  EXPECT_TRUE(pool.match("tenant-b", tokens, 10).empty());
  EXPECT_TRUE(pool.match("", tokens, 10).empty());
  EXPECT_EQ(pool.match("tenant-a", tokens, 10).size(), 2u);
}

TEST(BlockPool, EvictsLeastRecentlyUsedAndForgetsChildrenOfEvictedParents) {
  BlockPool pool(3, 2);
  const auto a = iota_tokens(4, 10);
  std::vector<std::int32_t> blocks = {*pool.allocate(), *pool.allocate()};
  publish_all(pool, blocks, a, "ns");
  // Release the tail first, as the scheduler does: it is evicted first.
  pool.release(blocks[1]);
  pool.release(blocks[0]);
  const std::int32_t spare = *pool.allocate();  // The never-used block: no eviction yet.
  EXPECT_EQ(pool.cached_unreferenced(), 2);
  const std::int32_t evicted = *pool.allocate();
  EXPECT_EQ(evicted, blocks[1]);
  EXPECT_EQ(pool.match("ns", a, 10).size(), 1u);  // Head still cached.
  pool.release(blocks[0]);                        // Back to cached (the match retained it).
  pool.release(evicted);
  pool.release(spare);

  // Evict the head and reuse its id for other content: the cached child must not match.
  BlockPool p2(3, 2);
  std::vector<std::int32_t> b2 = {*p2.allocate(), *p2.allocate()};
  publish_all(p2, b2, a, "ns");
  p2.release(b2[0]);  // Head released first: it becomes the LRU victim.
  p2.release(b2[1]);
  const std::int32_t free_block = *p2.allocate();
  const std::int32_t reused = *p2.allocate();
  EXPECT_EQ(reused, b2[0]);
  const std::vector<std::int32_t> head_again = {a[0], a[1]};
  p2.publish(reused, chain_block_key(namespace_root_key("ns"), head_again), -1, head_again, "ns");
  p2.release(reused);
  p2.release(free_block);
  // Block 0 matches (re-published, same content), but block 1's parent generation is stale.
  EXPECT_EQ(p2.match("ns", a, 10).size(), 1u);
}

TEST(BlockPool, DuplicateKeysArePublishedOnce) {
  BlockPool pool(4, 2);
  const auto t = iota_tokens(2);
  const std::int32_t a = *pool.allocate();
  const std::int32_t b = *pool.allocate();
  const BlockKey key = chain_block_key(namespace_root_key("ns"), t);
  EXPECT_TRUE(pool.publish(a, key, -1, t, "ns"));
  EXPECT_FALSE(pool.publish(b, key, -1, t, "ns"));
  pool.release(b);
  EXPECT_EQ(pool.cached_unreferenced(), 0);  // The duplicate went straight back to free.
  pool.release(a);
  EXPECT_EQ(pool.cached_unreferenced(), 1);
  pool.clear_cache();
  EXPECT_EQ(pool.cached_unreferenced(), 0);
  EXPECT_TRUE(pool.match("ns", t, 1).empty());
}

// ---------------------------------------------------------------------------------------------

struct Driven {
  std::vector<std::int32_t> generated;
  std::int32_t max_new = 0;
  bool finished = false;
};

Driven driven(std::int32_t max_new) {
  Driven d;
  d.max_new = max_new;
  return d;
}

// The token a fake model "samples" after `tokens`: depends on the whole sequence, so any
// mix-up of sequences or positions changes the output.
std::int32_t fake_next(std::span<const std::int32_t> tokens) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const std::int32_t t : tokens)
    h = (h ^ static_cast<std::uint64_t>(t)) * 1099511628211ULL;
  return static_cast<std::int32_t>(h % 1000) + 1;
}

// Checks the plan against the scheduler's state and the options.
void check_plan(const Scheduler& s, const StepPlan& plan) {
  const SchedulerOptions& o = s.options();
  EXPECT_LE(plan.num_tokens, o.max_batch_tokens);
  EXPECT_LE(s.num_running(), o.max_running);
  std::set<SeqId> seen;
  for (const ScheduledChunk& c : plan.chunks) {
    EXPECT_TRUE(seen.insert(c.id).second) << "sequence scheduled twice in one step";
    EXPECT_TRUE(s.is_running(c.id));
    EXPECT_GT(c.count, 0);
    const auto table = s.block_table(c.id);
    EXPECT_GE(static_cast<std::int64_t>(table.size()) * o.block_tokens, c.start + c.count);
    EXPECT_LE(c.start + c.count, static_cast<std::int32_t>(s.tokens(c.id).size()));
    EXPECT_EQ(c.want_logits, c.start + c.count == static_cast<std::int32_t>(s.tokens(c.id).size()));
    for (const std::int32_t b : table)
      EXPECT_GT(s.pool().ref_count(b), 0);
  }
}

// Runs the scheduler to completion; returns the number of steps.
int drive(Scheduler& s, std::map<SeqId, Driven>& seqs, int max_steps = 100000) {
  int steps = 0;
  while (s.num_running() + s.num_waiting() > 0) {
    if (++steps > max_steps) {
      ADD_FAILURE() << "no progress after " << max_steps << " steps";
      return steps;
    }
    const StepPlan plan = s.schedule();
    check_plan(s, plan);
    if (plan.empty()) {
      ADD_FAILURE() << "empty plan with " << s.num_running() << " running and " << s.num_waiting()
                    << " waiting";
      return steps;
    }
    s.commit(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      if (!c.want_logits) continue;
      Driven& d = seqs.at(c.id);
      const std::int32_t t = fake_next(s.tokens(c.id));
      d.generated.push_back(t);
      if (static_cast<std::int32_t>(d.generated.size()) >= d.max_new) {
        d.finished = true;
        s.finish(c.id);
      } else {
        s.append_token(c.id, t);
      }
    }
  }
  return steps;
}

// What a sequence generates when it runs alone with plenty of room.
std::vector<std::int32_t> alone(const std::vector<std::int32_t>& prompt, std::int32_t max_new) {
  std::vector<std::int32_t> tokens = prompt;
  std::vector<std::int32_t> out;
  for (std::int32_t i = 0; i < max_new; ++i) {
    out.push_back(fake_next(tokens));
    tokens.push_back(out.back());
  }
  return out;
}

TEST(Scheduler, RejectsWhatCanNeverFit) {
  Scheduler s(opts(4, 4, 8, 4, 100));
  const Status too_big = s.add(spec(1, iota_tokens(10), 7));
  EXPECT_EQ(too_big.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(too_big.error().message().find("whole cache holds 16"), std::string::npos);
  EXPECT_EQ(s.add(spec(2, iota_tokens(60), 50)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.add(spec(3, {}, 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(s.add(spec(4, iota_tokens(10), 6)).ok());
  EXPECT_EQ(s.add(spec(4, iota_tokens(3), 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(validate_scheduler_options(opts(4, 16, 4, 8, 10)).ok());
}

TEST(Scheduler, ChunkedPrefillKeepsDecodingStreamsGoing) {
  Scheduler s(opts(64, 4, 8, 4, 256));
  std::map<SeqId, Driven> seqs;
  ASSERT_TRUE(s.add(spec(1, iota_tokens(3), 20)).ok());
  seqs[1] = driven(20);
  // Prefill the short one and let it decode.
  for (int i = 0; i < 2; ++i) {
    const StepPlan plan = s.schedule();
    s.commit(plan);
    for (const auto& c : plan.chunks) {
      if (c.want_logits) s.append_token(c.id, fake_next(s.tokens(c.id)));
    }
  }
  // A long prompt arrives: every step still decodes sequence 1, and the prompt is chunked.
  ASSERT_TRUE(s.add(spec(2, iota_tokens(40), 2, 0, 1)).ok());
  int chunks = 0;
  for (int i = 0; i < 5; ++i) {
    const StepPlan plan = s.schedule();
    ASSERT_FALSE(plan.empty());
    EXPECT_EQ(plan.chunks[0].id, 1);
    EXPECT_EQ(plan.chunks[0].count, 1);
    EXPECT_LE(plan.num_tokens, 8);
    for (const auto& c : plan.chunks)
      chunks += c.id == 2 ? 1 : 0;
    s.commit(plan);
    for (const auto& c : plan.chunks) {
      if (c.want_logits) s.append_token(c.id, fake_next(s.tokens(c.id)));
    }
  }
  EXPECT_EQ(chunks, 5);  // 7 prompt tokens per step.
}

TEST(Scheduler, HigherPriorityIsAdmittedFirstAndFifoWithinAClass) {
  Scheduler s(opts(64, 4, 4, 1, 64));
  ASSERT_TRUE(s.add(spec(1, {1}, 1)).ok());
  ASSERT_TRUE(s.add(spec(2, {1}, 1, 2, 1)).ok());
  ASSERT_TRUE(s.add(spec(3, {1}, 1, 2, 2)).ok());
  ASSERT_TRUE(s.add(spec(4, {1}, 1, 1, 3)).ok());
  std::vector<SeqId> order;
  while (s.num_waiting() + s.num_running() > 0) {
    const StepPlan plan = s.schedule();
    ASSERT_EQ(plan.chunks.size(), 1u);
    s.commit(plan);
    order.push_back(plan.chunks[0].id);
    s.finish(plan.chunks[0].id);
  }
  EXPECT_EQ(order, (std::vector<SeqId>{2, 3, 4, 1}));
}

TEST(Scheduler, PrefixReuseComputesOnlyTheNewPart) {
  Scheduler s(opts(64, 4, 64, 8, 256));
  std::map<SeqId, Driven> seqs;
  auto shared = iota_tokens(40);
  auto first = shared;
  first.insert(first.end(), {900, 901, 902});
  ASSERT_TRUE(s.add(spec(1, first, 3, 0, 0, "t1")).ok());
  seqs[1] = driven(3);
  drive(s, seqs);
  const std::uint64_t before = s.stats().computed_tokens;
  EXPECT_EQ(before, 43u + 2u);  // Prompt, then two decode steps.

  auto second = shared;
  second.insert(second.end(), {700, 701, 702, 703, 704});
  ASSERT_TRUE(s.add(spec(2, second, 1, 0, 0, "t1")).ok());
  seqs[2] = driven(1);
  drive(s, seqs);
  // 40 shared tokens are 10 full blocks: only the 5 new prompt tokens are computed.
  EXPECT_EQ(s.stats().computed_tokens - before, 5u);
  EXPECT_EQ(s.stats().prefix_hit_tokens, 40u);
  EXPECT_EQ(seqs[2].generated, alone(second, 1));

  // Another tenant with the same prompt gets no hit and computes everything.
  const std::uint64_t mid = s.stats().computed_tokens;
  ASSERT_TRUE(s.add(spec(3, second, 1, 0, 0, "t2")).ok());
  seqs[3] = driven(1);
  drive(s, seqs);
  EXPECT_EQ(s.stats().computed_tokens - mid, 45u);
  EXPECT_EQ(s.stats().prefix_hit_tokens, 40u);
  EXPECT_EQ(s.pool().used(), 0);
}

TEST(Scheduler, SiblingsShareThePromptBlocks) {
  Scheduler s(opts(64, 4, 64, 8, 256));
  std::map<SeqId, Driven> seqs;
  const auto prompt = iota_tokens(21);
  for (SeqId id = 10; id < 13; ++id) {
    ASSERT_TRUE(s.add(spec(id, prompt, 4, 0, 0, "req", id == 10 ? -1 : 10)).ok());
    seqs[id] = driven(4);
  }
  drive(s, seqs);
  // The leader computes 21 prompt tokens; each sibling reuses 5 full blocks and computes 1.
  EXPECT_EQ(s.stats().prefix_hit_tokens, 40u);
  EXPECT_EQ(s.stats().computed_tokens, 21u + 1u + 1u + 3u * 3u);
  for (SeqId id = 10; id < 13; ++id)
    EXPECT_EQ(seqs[id].generated, alone(prompt, 4));
}

// A sequence scoring its prompt (prompt_logits) reuses no cached prefix and, together with any
// other such sequence, gets at most max_prompt_logits_tokens prompt tokens per step; once its
// prompt is done it decodes normally, and later sequences reuse the blocks it published.
TEST(Scheduler, PromptLogitsSequencesSkipTheCacheAndAreCappedPerStep) {
  SchedulerOptions o = opts(64, 4, 64, 8, 256);
  o.max_prompt_logits_tokens = 5;
  EXPECT_FALSE(validate_scheduler_options([&] {
                 SchedulerOptions bad = o;
                 bad.max_prompt_logits_tokens = 0;
                 return bad;
               }())
                   .ok());
  Scheduler s(o);
  std::map<SeqId, Driven> seqs;
  const auto prompt = iota_tokens(23);
  ASSERT_TRUE(s.add(spec(1, prompt, 2, 0, 0, "t")).ok());
  seqs[1] = driven(2);
  drive(s, seqs);
  EXPECT_EQ(s.stats().prefix_hit_tokens, 0u);

  // Two scoring sequences with the same (cached) prompt, and a plain one.
  for (SeqId id = 2; id <= 3; ++id) {
    SequenceSpec scored = spec(id, prompt, 2, 0, static_cast<std::uint64_t>(id), "t");
    scored.prompt_logits = true;
    ASSERT_TRUE(s.add(std::move(scored)).ok());
  }
  ASSERT_TRUE(s.add(spec(4, prompt, 2, 0, 4, "t")).ok());
  std::map<SeqId, std::int32_t> prompt_chunks;
  std::map<SeqId, std::vector<std::int32_t>> generated;
  std::int32_t scored_total = 0, scoring_steps = 0;
  while (s.num_running() + s.num_waiting() > 0) {
    const StepPlan plan = s.schedule();
    ASSERT_FALSE(plan.empty());
    std::int32_t scored_tokens = 0;
    for (const ScheduledChunk& c : plan.chunks) {
      if ((c.id == 2 || c.id == 3) && c.start < 23) {
        scored_tokens += c.count;
        ++prompt_chunks[c.id];
        if (prompt_chunks[c.id] == 1) {
          EXPECT_EQ(c.start, 0) << "sequence " << c.id;
        }
      }
      if (c.id == 4 && c.start < 23) {
        EXPECT_EQ(c.start, 20);  // 5 blocks reused.
      }
    }
    EXPECT_LE(scored_tokens, 5);
    scored_total += scored_tokens;
    scoring_steps += scored_tokens > 0 ? 1 : 0;
    s.commit(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      if (!c.want_logits) continue;
      auto& g = generated[c.id];
      g.push_back(fake_next(s.tokens(c.id)));
      if (static_cast<std::int32_t>(g.size()) == 2) {
        s.finish(c.id);
      } else {
        s.append_token(c.id, g.back());
      }
    }
  }
  EXPECT_EQ(scored_total, 46);
  EXPECT_GE(scoring_steps, 10);                 // 46 prompt tokens, at most 5 per step.
  EXPECT_EQ(s.stats().prefix_hit_tokens, 20u);  // Only sequence 4 hit.
  for (SeqId id = 2; id <= 4; ++id)
    EXPECT_EQ(generated[id], alone(prompt, 2)) << "sequence " << id;
  EXPECT_EQ(s.pool().used(), 0);
}

TEST(Scheduler, PreemptsLowestPriorityNewestAndRecomputes) {
  // 12 blocks of 4 tokens; three sequences that each grow to 4 blocks, plus a fourth: they
  // cannot all fit, so someone is preempted and later recomputed, with the same output.
  Scheduler s(opts(12, 4, 32, 8, 64));
  std::map<SeqId, Driven> seqs;
  std::map<SeqId, std::vector<std::int32_t>> prompts;
  for (SeqId id = 1; id <= 4; ++id) {
    prompts[id] = iota_tokens(6, static_cast<std::int32_t>(id) * 100);
    ASSERT_TRUE(
        s.add(spec(id, prompts[id], 10, id == 4 ? 1 : 0, static_cast<std::uint64_t>(id))).ok());
    seqs[id] = driven(10);
  }
  drive(s, seqs);
  EXPECT_GT(s.stats().preemptions, 0u);
  for (SeqId id = 1; id <= 4; ++id) {
    EXPECT_TRUE(seqs[id].finished);
    EXPECT_EQ(seqs[id].generated, alone(prompts[id], 10)) << "sequence " << id;
  }
  EXPECT_EQ(s.pool().used(), 0);
}

// Runs one schedule/commit round, "sampling" a token for every chunk that wants one.
StepPlan step_once(Scheduler& s) {
  StepPlan plan = s.schedule();
  s.commit(plan);
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.want_logits) s.append_token(c.id, fake_next(s.tokens(c.id)));
  }
  return plan;
}

TEST(Scheduler, PreemptionVictimIsTheLowestPriorityMostRecentArrival) {
  // 6 blocks of 2 tokens. Three 2-token prompts: 1 and 2 in class 0 (arrivals 0 and 1), 3 in
  // class 1 but the last to arrive. Each grows by one block every second step.
  Scheduler s(opts(6, 2, 16, 8, 64));
  ASSERT_TRUE(s.add(spec(1, {11, 12}, 10, 0, 0)).ok());
  ASSERT_TRUE(s.add(spec(2, {21, 22}, 10, 0, 1)).ok());
  ASSERT_TRUE(s.add(spec(3, {31, 32}, 10, 1, 2)).ok());
  std::vector<SeqId> victims;
  for (int i = 0; i < 4 && victims.empty(); ++i) {
    const StepPlan plan = step_once(s);
    victims = plan.preempted;
  }
  // The fourth step needs a third block for each: sequence 2 (lowest class, newest in it) goes,
  // not 3 (newest overall but a higher class) and not 1 (older in the same class).
  EXPECT_EQ(victims, std::vector<SeqId>{2});
  EXPECT_TRUE(s.is_running(1));
  EXPECT_TRUE(s.is_running(3));
  EXPECT_FALSE(s.is_running(2));
  EXPECT_EQ(s.stats().preemptions, 1u);

  // A waiting request of a higher class is admitted by preempting the newest running
  // sequence of a strictly lower class; one of an equal class waits instead.
  // Blocks of 4 tokens: the running ones need no new block for the next three steps.
  Scheduler t(opts(4, 4, 16, 8, 64));
  ASSERT_TRUE(t.add(spec(1, iota_tokens(5, 10), 10, 0, 0)).ok());
  ASSERT_TRUE(t.add(spec(2, iota_tokens(5, 20), 10, 0, 1)).ok());
  step_once(t);  // Both admitted; all 4 blocks in use.
  ASSERT_EQ(t.pool().available(), 0);
  ASSERT_TRUE(t.add(spec(3, {31, 32}, 4, 0, 2)).ok());
  StepPlan plan = step_once(t);
  EXPECT_TRUE(plan.preempted.empty());
  EXPECT_FALSE(t.is_running(3));
  ASSERT_TRUE(t.add(spec(4, {41, 42}, 4, 2, 3)).ok());
  plan = step_once(t);
  EXPECT_EQ(plan.preempted, std::vector<SeqId>{2});
  EXPECT_TRUE(t.is_running(4));
  EXPECT_TRUE(t.is_running(1));
  EXPECT_FALSE(t.is_running(3));  // Still behind 2, which arrived before it.
}

// Random arrivals, lengths, priorities, shared prefixes, siblings and cancellations against a
// small cache: every sequence ends, outputs equal running alone, and no block leaks.
TEST(Scheduler, RandomWorkloadsKeepEveryInvariant) {
  std::uint64_t preemptions = 0;
  std::uint64_t hits = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    SeededRandom rng(seed);
    const auto budget = static_cast<std::int32_t>(uni(rng, 4, 64));
    const SchedulerOptions o = opts(
        static_cast<std::int32_t>(uni(rng, 8, 32)), static_cast<std::int32_t>(uni(rng, 1, 8)),
        budget, static_cast<std::int32_t>(std::min<std::int64_t>(uni(rng, 1, budget), 16)), 128);
    Scheduler s(o);
    const SchedulerOptions& opts_ = o;

    const std::int64_t capacity = static_cast<std::int64_t>(opts_.num_blocks) * opts_.block_tokens;
    std::map<SeqId, Driven> seqs;
    std::map<SeqId, std::vector<std::int32_t>> prompts;
    std::set<SeqId> cancelled;
    const auto common = iota_tokens(24, 5000);
    SeqId next = 1;
    int steps = 0;
    std::uint64_t arrival = 0;
    while (next <= 60 || s.num_running() + s.num_waiting() > 0) {
      ASSERT_LT(++steps, 20000) << "no progress";
      // Arrivals.
      const int arrivals = next <= 60 ? static_cast<int>(uni(rng, 0, 2)) : 0;
      for (int k = 0; k < arrivals; ++k) {
        const auto len = static_cast<std::int32_t>(uni(rng, 1, 40));
        std::vector<std::int32_t> prompt;
        if (uni(rng, 0, 1) == 1) {
          prompt.assign(common.begin(), common.begin() + std::min<std::int32_t>(len, 24));
        }
        while (static_cast<std::int32_t>(prompt.size()) < len) {
          prompt.push_back(static_cast<std::int32_t>(uni(rng, 1, 50)));
        }
        const auto max_new = static_cast<std::int32_t>(uni(rng, 1, 20));
        const int n = uni(rng, 0, 4) == 0 ? 2 : 1;
        const std::string ns = "tenant" + std::to_string(uni(rng, 0, 2));
        const auto priority = static_cast<std::int32_t>(uni(rng, 0, 2));
        const SeqId leader = next;
        for (int i = 0; i < n; ++i) {
          const Status st =
              s.add(spec(next, prompt, max_new, priority, arrival, ns, i == 0 ? -1 : leader));
          if (len + max_new > capacity) {
            EXPECT_EQ(st.code(), ErrorCode::kOutOfRange);
          } else {
            ASSERT_TRUE(st.ok()) << st.error().message();
            seqs[next] = driven(max_new);
            prompts[next] = prompt;
          }
          ++next;
        }
        ++arrival;
      }
      // Cancellations.
      if (!seqs.empty() && uni(rng, 0, 9) == 0) {
        auto it = seqs.begin();
        std::advance(it,
                     static_cast<long>(uni(rng, 0, static_cast<std::int64_t>(seqs.size()) - 1)));
        if (!it->second.finished) {
          s.finish(it->first);
          it->second.finished = true;
          cancelled.insert(it->first);
        }
      }
      if (s.num_running() + s.num_waiting() == 0) continue;
      const StepPlan plan = s.schedule();
      check_plan(s, plan);
      ASSERT_FALSE(plan.empty());
      s.commit(plan);
      for (const ScheduledChunk& c : plan.chunks) {
        if (!c.want_logits) continue;
        Driven& d = seqs.at(c.id);
        d.generated.push_back(fake_next(s.tokens(c.id)));
        if (static_cast<std::int32_t>(d.generated.size()) >= d.max_new) {
          d.finished = true;
          s.finish(c.id);
        } else {
          s.append_token(c.id, d.generated.back());
        }
      }
    }
    EXPECT_EQ(s.pool().used(), 0) << "leaked blocks";
    preemptions += s.stats().preemptions;
    hits += s.stats().prefix_hit_tokens;
    for (auto& [id, d] : seqs) {
      EXPECT_TRUE(d.finished);
      if (!cancelled.contains(id)) {
        EXPECT_EQ(d.generated, alone(prompts[id], d.max_new)) << "sequence " << id;
      }
    }
  }
  // The workloads are meant to exercise preemption and prefix reuse; make sure they do.
  EXPECT_GT(preemptions, 20u);
  EXPECT_GT(hits, 100u);
  std::printf("preemptions %llu, prefix hit tokens %llu\n",
              static_cast<unsigned long long>(preemptions), static_cast<unsigned long long>(hits));
}

}  // namespace
}  // namespace spillway::engine
