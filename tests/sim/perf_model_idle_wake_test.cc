// The idle wake-up term of the performance model (GpuProfile::idle_wake) through the exact
// replica: only a step that starts while the replica had no request in flight pays it, as only
// then is the serving engine's step thread asleep. Times by hand from PerfModel::step_time.
#include <gtest/gtest.h>

#include <vector>

#include "sim/perf_model.h"
#include "sim/scheduler_replica.h"

namespace spillway::sim {
namespace {

GpuProfile waking_gpu() {
  GpuProfile g;
  g.name = "waking";
  g.peak_flops = 1e12;
  g.memory_bandwidth = 1e11;
  g.memory_bytes = 1e9;
  g.link_bandwidth = 1e10;
  g.flops_efficiency = 0.5;
  g.bandwidth_efficiency = 0.8;
  g.step_overhead = Nanos{20000};
  g.idle_wake = Nanos{150000};
  return g;
}

ModelProfile small_model() {
  ModelProfile m;
  m.name = "small";
  m.n_layer = 4;
  m.n_embd = 256;
  m.n_ff = 512;
  m.n_head = 4;
  m.n_head_kv = 2;
  m.n_vocab = 1000;
  m.n_ctx = 4096;
  return m;
}

SimRequest request(RequestId id, std::int32_t prompt, std::int32_t output, Nanos arrival) {
  SimRequest r;
  r.id = id;
  r.tenant = "t";
  r.model = "m";
  r.cache_namespace = "t";
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  r.arrival = arrival;
  return r;
}

StepShape chunk(std::int64_t start, std::int64_t count, bool decode, bool after_idle = false) {
  StepShape s;
  (decode ? s.decode_tokens : s.prefill_tokens) = count;
  s.attended_positions = count * start + count * (count + 1) / 2;
  s.kv_positions = start + count;
  s.after_idle = after_idle;
  return s;
}

struct Times final : ReplicaEventSink {
  void on_first_token(RequestId id, Nanos at) override { first.push_back({id, at}); }
  void on_finished(RequestId id, Nanos at) override { finished.push_back({id, at}); }
  std::vector<std::pair<RequestId, Nanos>> first, finished;
};

TEST(IdleWake, OnlyTheStepThatWakesAnIdleReplicaPaysIt) {
  const PerfModel perf(waking_gpu(), small_model(), 1);
  ReplicaConfig config;
  config.kv_blocks = 64;
  config.block_tokens = 4;
  config.max_batch_tokens = 8;
  config.max_running = 4;
  config.max_waiting = 16;
  auto made = make_scheduler_replica(perf, config);
  ASSERT_TRUE(made.ok()) << made.error().message();
  ReplicaModel& r = **made;
  Times sink;

  // Request 1 (6 prompt tokens, 3 output) wakes the idle replica at 1 ms: its prefill step
  // pays the wake-up; its two decode steps follow back to back and do not.
  const Nanos t1{1'000'000};
  const Nanos p1 = perf.step_time(chunk(0, 6, false, true));
  EXPECT_EQ(p1, perf.step_time(chunk(0, 6, false)) + Nanos{150000});
  ASSERT_TRUE(r.submit(request(1, 6, 3, t1), t1).ok());
  EXPECT_EQ(r.next_event_time(), t1 + p1);
  r.advance(t1 + p1, sink);
  // Request 2 arrives while request 1 decodes: the thread is awake, no wake-up. It joins the
  // next step: request 1's decode at position 6 and request 2's 2-token prompt together.
  const Nanos d1 = perf.step_time(chunk(6, 1, true));
  const Nanos t2 = t1 + p1 + d1 / 2;
  ASSERT_TRUE(r.submit(request(2, 2, 1, t2), t2).ok());
  r.advance(t1 + p1 + d1, sink);
  StepShape mixed = chunk(7, 1, true);
  mixed.prefill_tokens = 2;
  mixed.attended_positions += 3;  // Positions 0 and 1 attend 1 and 2.
  mixed.kv_positions += 2;
  const Nanos m = perf.step_time(mixed);
  while (auto t = r.next_event_time())
    r.advance(*t, sink);
  ASSERT_EQ(sink.finished.size(), 2u);
  EXPECT_EQ(sink.first[0], std::make_pair(RequestId{1}, t1 + p1));
  EXPECT_EQ(sink.first[1], std::make_pair(RequestId{2}, t1 + p1 + d1 + m));
  // Both finish in that step (reported in id order).
  EXPECT_EQ(sink.finished[0], std::make_pair(RequestId{1}, t1 + p1 + d1 + m));
  EXPECT_EQ(sink.finished[1], std::make_pair(RequestId{2}, t1 + p1 + d1 + m));

  // Request 3 arrives after everything finished: the replica is idle again and wakes.
  const Nanos t3 = t1 + p1 + d1 + m + Nanos{5'000'000};
  ASSERT_TRUE(r.submit(request(3, 6, 1, t3), t3).ok());
  EXPECT_EQ(r.next_event_time(), t3 + p1);
  // Busy time counts the wake-ups: they are time the replica is occupied.
  while (auto t = r.next_event_time())
    r.advance(*t, sink);
  EXPECT_EQ(r.stats().busy, p1 + d1 + m + p1);
}

}  // namespace
}  // namespace spillway::sim
