// The "exact" replica (engine::Scheduler on simulated time): step times against the perf model
// by hand, prefix sharing per namespace, preemption, failure and cancellation, queue bounds,
// and determinism of the report sequence.
#include "sim/scheduler_replica.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "core/random.h"

namespace spillway::sim {
namespace {

GpuProfile test_gpu() {
  GpuProfile g;
  g.name = "test";
  g.peak_flops = 1e12;
  g.memory_bandwidth = 1e11;
  g.memory_bytes = 1e9;
  g.link_bandwidth = 1e10;
  g.flops_efficiency = 0.5;
  g.bandwidth_efficiency = 0.8;
  g.step_overhead = Nanos{20000};
  return g;
}

ModelProfile test_model() {
  ModelProfile m;
  m.name = "test";
  m.n_layer = 4;
  m.n_embd = 256;
  m.n_ff = 512;
  m.n_head = 4;
  m.n_head_kv = 2;
  m.n_vocab = 1000;
  m.n_ctx = 4096;
  return m;
}

ReplicaConfig small_config() {
  ReplicaConfig c;
  c.kv_blocks = 64;
  c.block_tokens = 4;
  c.max_batch_tokens = 8;
  c.max_running = 4;
  c.max_waiting = 16;
  return c;
}

SimRequest request(RequestId id, std::int32_t prompt, std::int32_t output) {
  SimRequest r;
  r.id = id;
  r.tenant = "t";
  r.model = "m";
  r.cache_namespace = "t";
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

struct Event {
  int kind;  // 0 first token, 1 finished.
  RequestId id;
  Nanos at;
  bool operator==(const Event&) const = default;
};

class Recorder final : public ReplicaEventSink {
 public:
  void on_first_token(RequestId id, Nanos at) override { events.push_back({0, id, at}); }
  void on_finished(RequestId id, Nanos at) override { events.push_back({1, id, at}); }
  [[nodiscard]] std::map<RequestId, Nanos> of_kind(int kind) const {
    std::map<RequestId, Nanos> out;
    for (const Event& e : events) {
      if (e.kind == kind) out[e.id] = e.at;
    }
    return out;
  }
  std::vector<Event> events;
};

std::unique_ptr<ReplicaModel> make(const PerfModel& perf, const ReplicaConfig& config) {
  auto r = make_scheduler_replica(perf, config);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? std::move(*r) : nullptr;
}

// Runs the replica until it is idle.
void drain(ReplicaModel& r, Recorder& sink) {
  while (auto t = r.next_event_time())
    r.advance(*t, sink);
}

// A chunk of `count` tokens from position `start` of one sequence.
StepShape chunk(std::int64_t start, std::int64_t count, bool decode) {
  StepShape s;
  (decode ? s.decode_tokens : s.prefill_tokens) = count;
  s.attended_positions = count * start + count * (count + 1) / 2;
  s.kv_positions = start + count;
  return s;
}

class SchedulerReplicaTest : public ::testing::Test {
 protected:
  PerfModel perf_{test_gpu(), test_model(), 1};
};

TEST_F(SchedulerReplicaTest, OneRequestAloneFollowsTheStepTimes) {
  auto replica = make_scheduler_replica(perf_, small_config());
  ASSERT_TRUE(replica.ok()) << replica.error().message();
  ReplicaModel& r = **replica;
  const Nanos arrival{1'000'000};
  ASSERT_TRUE(r.submit(request(1, 20, 3), arrival).ok());
  // Prefill of 20 tokens in chunks of the step budget (8): [0,8), [8,16), [16,20); the last
  // chunk samples the first token. Then two decode steps at positions 20 and 21.
  const Nanos p1 = perf_.step_time(chunk(0, 8, false));
  const Nanos p2 = perf_.step_time(chunk(8, 8, false));
  const Nanos p3 = perf_.step_time(chunk(16, 4, false));
  const Nanos d1 = perf_.step_time(chunk(20, 1, true));
  const Nanos d2 = perf_.step_time(chunk(21, 1, true));
  EXPECT_LT(p3, p2);  // The shapes differ, so a wrong chunking would show.
  EXPECT_EQ(r.next_event_time(), arrival + p1);
  EXPECT_EQ(r.load().running, 1);
  Recorder sink;
  drain(r, sink);
  const std::vector<Event> expected = {{0, 1, arrival + p1 + p2 + p3},
                                       {1, 1, arrival + p1 + p2 + p3 + d1 + d2}};
  EXPECT_EQ(sink.events, expected);
  const ReplicaStats& s = r.stats();
  EXPECT_EQ(s.steps, 5u);
  EXPECT_EQ(s.prefill_tokens, 20u);
  EXPECT_EQ(s.decode_tokens, 2u);
  EXPECT_EQ(s.busy, p1 + p2 + p3 + d1 + d2);
  EXPECT_EQ(r.load().running, 0);
  EXPECT_EQ(r.load().waiting, 0);
  EXPECT_EQ(r.next_event_time(), std::nullopt);
}

TEST_F(SchedulerReplicaTest, OneOutputTokenReportsFirstTokenThenFinish) {
  auto r = make(perf_, small_config());
  ASSERT_TRUE(r->submit(request(7, 5, 1), Nanos{0}).ok());
  Recorder sink;
  drain(*r, sink);
  const Nanos t = perf_.step_time(chunk(0, 5, false));
  const std::vector<Event> expected = {{0, 7, t}, {1, 7, t}};
  EXPECT_EQ(sink.events, expected);
}

TEST_F(SchedulerReplicaTest, AdvanceStopsAtTheGivenTime) {
  auto r = make(perf_, small_config());
  ASSERT_TRUE(r->submit(request(1, 20, 3), Nanos{0}).ok());
  const Nanos p1 = perf_.step_time(chunk(0, 8, false));
  Recorder sink;
  r->advance(p1 - Nanos{1}, sink);
  EXPECT_EQ(r->stats().steps, 0u);
  EXPECT_EQ(r->next_event_time(), p1);
  r->advance(p1, sink);
  EXPECT_EQ(r->stats().steps, 1u);
  EXPECT_TRUE(sink.events.empty());
  EXPECT_EQ(r->next_event_time(), p1 + perf_.step_time(chunk(8, 8, false)));
}

TEST_F(SchedulerReplicaTest, PrefixSharingIsPerNamespace) {
  auto r = make(perf_, small_config());
  SimRequest a = request(1, 20, 2);
  a.prefix_id = 42;
  a.prefix_tokens = 16;
  ASSERT_TRUE(r->submit(a, Nanos{0}).ok());
  Recorder sink;
  drain(*r, sink);
  EXPECT_EQ(r->stats().prefill_tokens, 20u);
  EXPECT_EQ(r->stats().prefix_hit_tokens, 0u);

  // Same namespace and prefix: its 16 tokens (4 full blocks) are cached.
  SimRequest b = a;
  b.id = 2;
  ASSERT_TRUE(r->submit(b, r->stats().busy).ok());
  drain(*r, sink);
  EXPECT_EQ(r->stats().prefix_hit_tokens, 16u);
  EXPECT_EQ(r->stats().prefill_tokens, 20u + 4u);

  // Another namespace with the same prefix id finds nothing.
  SimRequest c = a;
  c.id = 3;
  c.cache_namespace = "other";
  ASSERT_TRUE(r->submit(c, r->stats().busy).ok());
  drain(*r, sink);
  EXPECT_EQ(r->stats().prefix_hit_tokens, 16u);
  EXPECT_EQ(r->stats().prefill_tokens, 24u + 20u);

  // A different prefix id in the first namespace finds nothing either.
  SimRequest d = a;
  d.id = 4;
  d.prefix_id = 43;
  ASSERT_TRUE(r->submit(d, r->stats().busy).ok());
  drain(*r, sink);
  EXPECT_EQ(r->stats().prefix_hit_tokens, 16u);
  EXPECT_EQ(r->stats().prefill_tokens, 44u + 20u);
  EXPECT_EQ(sink.of_kind(1).size(), 4u);
}

TEST_F(SchedulerReplicaTest, PreemptionUnderATinyCacheStillFinishesEverything) {
  ReplicaConfig c = small_config();
  c.kv_blocks = 12;  // 48 positions; four requests of 20 positions each do not fit together.
  auto r = make(perf_, c);
  for (RequestId id = 1; id <= 4; ++id)
    ASSERT_TRUE(r->submit(request(id, 10, 10), Nanos{0}).ok());
  Recorder sink;
  drain(*r, sink);
  EXPECT_GT(r->stats().preemptions, 0u);
  const auto first = sink.of_kind(0);
  const auto done = sink.of_kind(1);
  ASSERT_EQ(first.size(), 4u);
  ASSERT_EQ(done.size(), 4u);
  EXPECT_EQ(sink.events.size(), 8u);  // Exactly one of each per request.
  for (const auto& [id, at] : done)
    EXPECT_LE(first.at(id), at);
  EXPECT_EQ(r->load().running, 0);
  EXPECT_EQ(r->load().waiting, 0);
  EXPECT_EQ(r->load().kv_usage, 0);
  // Recomputation after preemption costs extra prefill: more than the 40 prompt and 36 decode
  // tokens of an unconstrained run are computed (a token sampled right after a recomputation
  // comes from a prefill chunk, so decode tokens may be fewer than 36).
  EXPECT_LE(r->stats().decode_tokens, 36u);
  EXPECT_GT(r->stats().prefill_tokens + r->stats().decode_tokens, 40u + 36u);
}

TEST_F(SchedulerReplicaTest, ReportsAreInTimeOrderTiesById) {
  ReplicaConfig c = small_config();
  c.max_batch_tokens = 64;
  auto r = make(perf_, c);
  // Submitted in reverse id order, same shape: they finish in the same steps.
  for (RequestId id = 5; id >= 1; --id)
    ASSERT_TRUE(r->submit(request(id, 6, 3), Nanos{0}).ok());
  Recorder sink;
  drain(*r, sink);
  ASSERT_EQ(sink.events.size(), 10u);
  for (std::size_t i = 1; i < sink.events.size(); ++i) {
    const Event& a = sink.events[i - 1];
    const Event& b = sink.events[i];
    EXPECT_LE(a.at, b.at);
    if (a.at == b.at) {
      EXPECT_LT(std::tie(a.id, a.kind), std::tie(b.id, b.kind));
    }
  }
}

TEST_F(SchedulerReplicaTest, FailAllReleasesEverything) {
  auto r = make(perf_, small_config());
  for (RequestId id : {9, 3, 6, 1, 12})
    ASSERT_TRUE(r->submit(request(id, 12, 8), Nanos{0}).ok());
  Recorder sink;
  // A few steps in: some running, some waiting.
  for (int i = 0; i < 3; ++i)
    r->advance(*r->next_event_time(), sink);
  EXPECT_GT(r->load().running, 0);
  EXPECT_GT(r->load().kv_usage, 0);
  const std::vector<RequestId> dropped = r->fail_all();
  EXPECT_EQ(dropped, (std::vector<RequestId>{1, 3, 6, 9, 12}));
  EXPECT_EQ(r->load().running, 0);
  EXPECT_EQ(r->load().waiting, 0);
  EXPECT_EQ(r->load().kv_usage, 0);
  EXPECT_EQ(r->next_event_time(), std::nullopt);
  const std::size_t reported = sink.events.size();
  r->advance(Nanos{1'000'000'000}, sink);
  EXPECT_EQ(sink.events.size(), reported);
  // Nothing of the old requests remains: an id can be reused, and a new request runs cleanly.
  ASSERT_TRUE(r->submit(request(3, 4, 2), Nanos{1'000'000'000}).ok());
  drain(*r, sink);
  EXPECT_EQ(sink.of_kind(1).size(), 1u);
  EXPECT_TRUE(r->fail_all().empty());
}

TEST_F(SchedulerReplicaTest, CancelReleasesTheRequest) {
  auto r = make(perf_, small_config());
  ASSERT_TRUE(r->submit(request(1, 12, 20), Nanos{0}).ok());
  ASSERT_TRUE(r->submit(request(2, 12, 4), Nanos{0}).ok());
  Recorder sink;
  r->advance(*r->next_event_time(), sink);
  // Request 1 is in the step now in flight; cancelling it drops it from that step.
  EXPECT_TRUE(r->cancel(1));
  EXPECT_FALSE(r->cancel(1));
  EXPECT_FALSE(r->cancel(99));
  drain(*r, sink);
  const std::vector<Event> only_two = {sink.events.begin(), sink.events.end()};
  for (const Event& e : only_two)
    EXPECT_EQ(e.id, 2u);
  EXPECT_EQ(sink.of_kind(1).size(), 1u);
  EXPECT_EQ(r->load().running, 0);
  EXPECT_EQ(r->load().kv_usage, 0);
  // A waiting request can be cancelled too.
  ASSERT_TRUE(r->submit(request(3, 40, 4), r->stats().busy).ok());
  ASSERT_TRUE(r->submit(request(4, 40, 4), r->stats().busy).ok());
  EXPECT_EQ(r->load().waiting, 1);
  EXPECT_TRUE(r->cancel(4));
  EXPECT_TRUE(r->cancel(3));
  EXPECT_EQ(r->load().running, 0);
  EXPECT_EQ(r->load().waiting, 0);
  EXPECT_EQ(r->load().kv_usage, 0);
  drain(*r, sink);
  EXPECT_EQ(sink.of_kind(1).size(), 1u);
}

TEST_F(SchedulerReplicaTest, SubmitErrors) {
  ReplicaConfig c = small_config();
  c.max_waiting = 2;
  c.max_context = 64;
  auto r = make(perf_, c);
  // The first is admitted into a step at once; two more wait; the fourth finds the queue full.
  ASSERT_TRUE(r->submit(request(1, 30, 4), Nanos{0}).ok());
  ASSERT_TRUE(r->submit(request(2, 30, 4), Nanos{0}).ok());
  ASSERT_TRUE(r->submit(request(3, 30, 4), Nanos{0}).ok());
  Status full = r->submit(request(4, 30, 4), Nanos{0});
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(r->submit(request(5, 60, 5), Nanos{0}).error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(r->submit(request(6, 0, 5), Nanos{0}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r->submit(request(1, 4, 1), Nanos{0}).error().code(), ErrorCode::kInvalidArgument);
  // Once request 2 is admitted, there is room again.
  Recorder sink;
  while (r->load().waiting == 2)
    r->advance(*r->next_event_time(), sink);
  EXPECT_TRUE(r->submit(request(4, 30, 4), r->stats().busy).ok());
}

TEST_F(SchedulerReplicaTest, InvalidConfigs) {
  ReplicaConfig c = small_config();
  c.kv_blocks = 0;
  EXPECT_EQ(make_scheduler_replica(perf_, c).error().code(), ErrorCode::kInvalidArgument);
  c = small_config();
  c.max_running = c.max_batch_tokens + 1;
  EXPECT_EQ(make_scheduler_replica(perf_, c).error().code(), ErrorCode::kInvalidArgument);
  c = small_config();
  c.max_waiting = -1;
  EXPECT_EQ(make_scheduler_replica(perf_, c).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SchedulerReplicaTest, InteractiveRunsBeforeBatch) {
  ReplicaConfig c = small_config();
  c.max_running = 1;
  auto r = make(perf_, c);
  ASSERT_TRUE(r->submit(request(1, 4, 2), Nanos{0}).ok());  // Occupies the only slot.
  SimRequest batch = request(2, 4, 2);
  batch.priority = fleet::Priority::kBatch;
  SimRequest interactive = request(3, 4, 2);
  interactive.priority = fleet::Priority::kInteractive;
  ASSERT_TRUE(r->submit(batch, Nanos{0}).ok());
  ASSERT_TRUE(r->submit(interactive, Nanos{0}).ok());
  Recorder sink;
  drain(*r, sink);
  const auto first = sink.of_kind(0);
  EXPECT_LT(first.at(3), first.at(2));
}

// Random arrivals, lengths, prefixes and priorities, run twice: the same report sequence.
std::vector<Event> random_run(const PerfModel& perf, std::uint64_t seed) {
  ReplicaConfig c = small_config();
  c.kv_blocks = 40;
  c.max_batch_tokens = 32;
  c.max_running = 8;
  c.max_waiting = 1000;
  auto r = make(perf, c);
  SeededRandom rng(seed);
  Recorder sink;
  Nanos t{0};
  for (RequestId id = 1; id <= 60; ++id) {
    t += Nanos{static_cast<std::int64_t>(rng.uniform() * 300'000)};
    r->advance(t, sink);
    SimRequest q = request(id, 1 + static_cast<std::int32_t>(rng.uniform() * 40),
                           1 + static_cast<std::int32_t>(rng.uniform() * 20));
    if (rng.uniform() < 0.5) {
      q.prefix_id = 1 + static_cast<std::uint64_t>(rng.uniform() * 3);
      q.prefix_tokens = q.prompt_tokens / 2;
    }
    q.cache_namespace = rng.uniform() < 0.5 ? "a" : "b";
    q.priority = static_cast<fleet::Priority>(static_cast<int>(rng.uniform() * 3));
    EXPECT_TRUE(r->submit(q, t).ok());
    if (id % 17 == 0) r->cancel(id - 3);
  }
  drain(*r, sink);
  return sink.events;
}

TEST_F(SchedulerReplicaTest, DeterministicAndComplete) {
  const std::vector<Event> a = random_run(perf_, 7);
  const std::vector<Event> b = random_run(perf_, 7);
  EXPECT_EQ(a, b);
  // Every request not cancelled finishes exactly once, after its first token.
  std::map<RequestId, int> finished;
  std::map<RequestId, Nanos> first;
  for (const Event& e : a) {
    if (e.kind == 0) first[e.id] = e.at;
    if (e.kind == 1) {
      ++finished[e.id];
      ASSERT_TRUE(first.contains(e.id));
      EXPECT_LE(first[e.id], e.at);
    }
  }
  std::size_t cancelled = 0;
  for (RequestId id = 1; id <= 60; ++id) {
    if (!finished.contains(id)) {
      ++cancelled;
    } else {
      EXPECT_EQ(finished[id], 1);
    }
  }
  EXPECT_LE(cancelled, 3u);
  EXPECT_GE(finished.size(), 57u);
  EXPECT_NE(a, random_run(perf_, 8));
}

}  // namespace
}  // namespace spillway::sim
