// The "fast" replica (aggregated decode steps): the closed-form decode sum against step_time,
// hand-checked timings, aggregation itself, prefix caching, errors, cancel/fail_all, and —
// the point — conformance to the "exact" replica (engine::Scheduler) on seeded random
// workloads with a roomy cache and with caches tight enough to force preemption.
//
// Tolerance: the fast replica sums a run of k decode steps in closed form and rounds once,
// where the exact one rounds each step to a nanosecond, so a run ends up to k/2 ns apart and
// the offsets accumulate: every reported time must agree within (steps so far) / 2 ns, i.e.
// within stats().steps / 2 ns overall. Everything else (which request runs when, prefix hits,
// preemptions, steps, tokens) must be identical.
#include "sim/fast_replica.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"

#include "sim/replica_model.h"

namespace spillway::sim {
namespace {

PerfModel h100_8b() {
  return PerfModel(*builtin_gpu_profile("H100"), *builtin_model_profile("llama-3-8b"), 1);
}

SimRequest request(RequestId id, Nanos arrival, std::int32_t prompt, std::int32_t output) {
  SimRequest r;
  r.id = id;
  r.arrival = arrival;
  r.tenant = "t";
  r.model = "m";
  r.cache_namespace = "t";
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

ReplicaConfig roomy_config() {
  ReplicaConfig c;
  c.kv_blocks = 4000;
  c.block_tokens = 16;
  c.max_batch_tokens = 256;
  c.max_running = 16;
  c.max_waiting = 1000;
  c.max_context = 4096;
  return c;
}

struct Times {
  std::optional<Nanos> first;
  std::optional<Nanos> finished;
};

class Recorder final : public ReplicaEventSink {
 public:
  void on_first_token(RequestId id, Nanos at) override {
    EXPECT_FALSE(times[id].first.has_value()) << id;
    EXPECT_GE(at, last);
    last = at;
    times[id].first = at;
    log.push_back({id, 0, at});
  }
  void on_finished(RequestId id, Nanos at) override {
    EXPECT_TRUE(times[id].first.has_value()) << id;
    EXPECT_FALSE(times[id].finished.has_value()) << id;
    EXPECT_GE(at, last);
    last = at;
    times[id].finished = at;
    log.push_back({id, 1, at});
  }
  struct Entry {
    RequestId id;
    int kind;
    Nanos at;
    friend bool operator==(const Entry&, const Entry&) = default;
  };
  std::map<RequestId, Times> times;
  std::vector<Entry> log;
  Nanos last{0};
};

struct Cancel {
  Nanos at;
  RequestId id;
};

struct RunResult {
  Recorder rec;
  std::uint64_t events = 0;  // Distinct replica event times the driver woke up for.
  ReplicaStats stats;
};

// The simulator's driving pattern: advance to each arrival (and cancel) before submitting it;
// otherwise advance to the replica's next event.
RunResult drive(ReplicaModel& m, const std::vector<SimRequest>& requests,
                std::vector<Cancel> cancels = {}) {
  RunResult out;
  std::size_t i = 0;
  std::size_t c = 0;
  while (true) {
    const std::optional<Nanos> ev = m.next_event_time();
    const std::optional<Nanos> arrival =
        i < requests.size() ? std::optional<Nanos>(requests[i].arrival) : std::nullopt;
    const std::optional<Nanos> cancel =
        c < cancels.size() ? std::optional<Nanos>(cancels[c].at) : std::nullopt;
    if (cancel && (!arrival || *cancel <= *arrival) && (!ev || *cancel < *ev)) {
      m.advance(*cancel, out.rec);
      m.cancel(cancels[c].id);
      ++c;
    } else if (arrival && (!ev || *arrival < *ev)) {
      m.advance(*arrival, out.rec);
      EXPECT_TRUE(m.submit(requests[i], *arrival).ok()) << requests[i].id;
      ++i;
    } else if (ev) {
      m.advance(*ev, out.rec);
      ++out.events;
    } else {
      break;
    }
  }
  out.stats = m.stats();
  return out;
}

// A seeded random workload: Poisson arrivals, three priorities, two namespaces, shared prefixes
// of several lengths (some covering the whole prompt).
std::vector<SimRequest> random_workload(std::uint64_t seed, int n, double mean_gap_ms) {
  SeededRandom rng(seed);
  std::vector<SimRequest> out;
  Nanos t{0};
  for (int k = 0; k < n; ++k) {
    t += Nanos{static_cast<std::int64_t>(rng.exponential(mean_gap_ms * 1e6))};
    SimRequest r = request(static_cast<RequestId>(k + 1), t,
                           1 + static_cast<std::int32_t>(rng.next_u64() % 600),
                           1 + static_cast<std::int32_t>(rng.next_u64() % 200));
    r.priority = static_cast<fleet::Priority>(rng.next_u64() % 3);
    r.cache_namespace = rng.next_u64() % 2 == 0 ? "a" : "b";
    if (rng.next_u64() % 3 != 0) {
      r.prefix_id = 1 + rng.next_u64() % 3;
      r.prefix_tokens =
          std::min<std::int32_t>(r.prompt_tokens, static_cast<std::int32_t>(r.prefix_id) * 100);
    }
    out.push_back(r);
  }
  return out;
}

struct Conformance {
  double max_rel_ttft = 0;
  double max_rel_finish = 0;
  std::int64_t max_abs_ns = 0;
  std::uint64_t preemptions = 0;
  std::uint64_t exact_events = 0;
  std::uint64_t fast_events = 0;
};

// Runs both models on the same workload and checks the per-request agreement.
void expect_conform(const PerfModel& perf, const ReplicaConfig& config,
                    const std::vector<SimRequest>& requests, Conformance& total,
                    const std::vector<Cancel>& cancels = {}) {
  auto exact = make_replica_model("exact", perf, config);
  auto fast = make_replica_model("fast", perf, config);
  ASSERT_TRUE(exact.ok());
  ASSERT_TRUE(fast.ok());
  const RunResult a = drive(**exact, requests, cancels);
  const RunResult b = drive(**fast, requests, cancels);
  ASSERT_EQ(a.rec.times.size(), b.rec.times.size());
  const std::int64_t tolerance = static_cast<std::int64_t>(a.stats.steps / 2 + 1);
  for (const SimRequest& r : requests) {
    const auto ia = a.rec.times.find(r.id);
    const auto ib = b.rec.times.find(r.id);
    ASSERT_EQ(ia == a.rec.times.end(), ib == b.rec.times.end()) << r.id;
    if (ia == a.rec.times.end()) continue;
    const Times& ta = ia->second;
    const Times& tb = ib->second;
    ASSERT_EQ(ta.first.has_value(), tb.first.has_value()) << r.id;
    ASSERT_EQ(ta.finished.has_value(), tb.finished.has_value()) << r.id;
    if (ta.first) {
      const std::int64_t d = (*ta.first - *tb.first).count();
      EXPECT_LE(std::abs(d), tolerance) << "first token of " << r.id;
      total.max_abs_ns = std::max(total.max_abs_ns, std::abs(d));
      total.max_rel_ttft =
          std::max(total.max_rel_ttft, std::abs(static_cast<double>(d)) /
                                           static_cast<double>((*ta.first - r.arrival).count()));
    }
    if (ta.finished) {
      const std::int64_t d = (*ta.finished - *tb.finished).count();
      EXPECT_LE(std::abs(d), tolerance) << "finish of " << r.id;
      total.max_abs_ns = std::max(total.max_abs_ns, std::abs(d));
      total.max_rel_finish = std::max(total.max_rel_finish,
                                      std::abs(static_cast<double>(d)) /
                                          static_cast<double>((*ta.finished - r.arrival).count()));
    }
  }
  EXPECT_EQ(a.stats.steps, b.stats.steps);
  EXPECT_EQ(a.stats.preemptions, b.stats.preemptions);
  EXPECT_EQ(a.stats.prefix_query_tokens, b.stats.prefix_query_tokens);
  EXPECT_EQ(a.stats.prefix_hit_tokens, b.stats.prefix_hit_tokens);
  if (cancels.empty()) {
    EXPECT_EQ(a.stats.prefill_tokens, b.stats.prefill_tokens);
    EXPECT_EQ(a.stats.decode_tokens, b.stats.decode_tokens);
  }
  EXPECT_LE(std::abs((a.stats.busy - b.stats.busy).count()), tolerance);
  total.preemptions += a.stats.preemptions;
  total.exact_events += a.events;
  total.fast_events += b.events;
}

TEST(DecodeStepsTime, EqualsTheSumOfStepTimesUpToRounding) {
  SeededRandom rng(7);
  for (const std::string& gpu : builtin_gpu_profile_names()) {
    for (const char* model : {"llama-3-8b", "llama-3-70b", "stories260k"}) {
      for (const std::int32_t tp : {1, 2, 8}) {
        const PerfModel perf(*builtin_gpu_profile(gpu), *builtin_model_profile(model), tp);
        for (int trial = 0; trial < 8; ++trial) {
          const std::int64_t r = 1 + static_cast<std::int64_t>(rng.next_u64() % 300);
          const std::int64_t context0 =
              r + static_cast<std::int64_t>(rng.next_u64() % 200000);  // Compute- or memory-bound.
          const std::int64_t steps = 1 + static_cast<std::int64_t>(rng.next_u64() % 400);
          Nanos sum{0};
          for (std::int64_t j = 0; j < steps; ++j) {
            StepShape s;
            s.decode_tokens = r;
            s.attended_positions = context0 + j * r;
            s.kv_positions = context0 + j * r;
            sum += perf.step_time(s);
          }
          const Nanos closed = perf.decode_steps_time(r, context0, steps);
          EXPECT_LE(std::abs((closed - sum).count()), steps / 2 + 1)
              << gpu << " " << model << " tp" << tp << " r=" << r << " x0=" << context0
              << " k=" << steps;
        }
      }
    }
  }
  const PerfModel perf = h100_8b();
  EXPECT_EQ(perf.decode_steps_time(4, 100, 0), Nanos{0});
  EXPECT_EQ(perf.decode_steps_time(0, 100, 5), Nanos{0});
}

TEST(DecodeStepsTime, FollowsTheRooflineAcrossTheComputeMemoryCrossing) {
  // A run that starts memory-bound and ends compute-bound (contexts grow past the crossing):
  // the closed form must switch lines at the right step.
  const PerfModel perf(*builtin_gpu_profile("H100"), *builtin_model_profile("stories260k"), 1);
  Nanos sum{0};
  const std::int64_t r = 256;
  const std::int64_t context0 = 256;
  const std::int64_t steps = 3000;
  for (std::int64_t j = 0; j < steps; ++j) {
    StepShape s;
    s.decode_tokens = r;
    s.attended_positions = context0 + j * r;
    s.kv_positions = s.attended_positions;
    sum += perf.step_time(s);
  }
  EXPECT_LE(std::abs((perf.decode_steps_time(r, context0, steps) - sum).count()), steps / 2 + 1);
}

TEST(FastReplica, OneRequestMatchesThePerfModelByHand) {
  const PerfModel perf = h100_8b();
  auto m = make_fast_replica(perf, roomy_config());
  ASSERT_TRUE(m.ok());
  const Nanos t0{1'000'000};
  ASSERT_TRUE((*m)->submit(request(1, t0, 100, 50), t0).ok());
  StepShape prefill;
  prefill.prefill_tokens = 100;
  prefill.attended_positions = 100 * 101 / 2;
  prefill.kv_positions = 100;
  const Nanos first = t0 + perf.step_time(prefill);
  ASSERT_EQ((*m)->next_event_time(), first);
  Recorder rec;
  (*m)->advance(first, rec);
  // The 49 decode steps are one event: contexts 101, 102, ..., 149.
  const Nanos finish = first + perf.decode_steps_time(1, 101, 49);
  EXPECT_EQ((*m)->next_event_time(), finish);
  (*m)->advance(finish, rec);
  EXPECT_EQ(rec.times[1].first, first);
  EXPECT_EQ(rec.times[1].finished, finish);
  EXPECT_EQ((*m)->next_event_time(), std::nullopt);
  EXPECT_EQ((*m)->stats().steps, 50u);
  EXPECT_EQ((*m)->stats().prefill_tokens, 100u);
  EXPECT_EQ((*m)->stats().decode_tokens, 49u);
  EXPECT_EQ((*m)->load().running, 0);
  EXPECT_EQ((*m)->load().kv_usage, 0.0);
}

TEST(FastReplica, FoldsDecodeStepsIntoFewEvents) {
  const PerfModel perf = h100_8b();
  std::vector<SimRequest> reqs;
  for (RequestId id = 1; id <= 8; ++id)
    reqs.push_back(request(id, Nanos{0}, 64, 1000));
  auto exact = make_replica_model("exact", perf, roomy_config());
  auto fast = make_replica_model("fast", perf, roomy_config());
  ASSERT_TRUE(exact.ok() && fast.ok());
  const RunResult a = drive(**exact, reqs);
  const RunResult b = drive(**fast, reqs);
  EXPECT_GE(a.events, 1000u);  // One event per step.
  EXPECT_LE(b.events, 12u);    // Prefill steps, then a run to each finish.
  EXPECT_EQ(a.stats.steps, b.stats.steps);
  for (RequestId id = 1; id <= 8; ++id) {
    EXPECT_LE(std::abs((*a.rec.times.at(id).finished - *b.rec.times.at(id).finished).count()),
              static_cast<std::int64_t>(a.stats.steps));
  }
}

TEST(FastReplica, ArrivalCutsARunAtTheNextStepBoundary) {
  const PerfModel perf = h100_8b();
  auto m = make_fast_replica(perf, roomy_config());
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE((*m)->submit(request(1, Nanos{0}, 32, 1000), Nanos{0}).ok());
  Recorder rec;
  const Nanos first = *(*m)->next_event_time();
  (*m)->advance(first, rec);
  const Nanos run_end = *(*m)->next_event_time();
  // Midway through the run a second request arrives: the run ends at the first step boundary
  // after it, where the request is admitted.
  const Nanos mid = first + (run_end - first) / 2;
  (*m)->advance(mid, rec);
  ASSERT_TRUE((*m)->submit(request(2, mid, 32, 1), mid).ok());
  const Nanos cut = *(*m)->next_event_time();
  EXPECT_GT(cut, mid);
  EXPECT_LT(cut, run_end);
  const Nanos longest_step = perf.decode_steps_time(1, 33 + 1000, 1);  // Memory-bound: grows.
  EXPECT_LE(cut - mid, longest_step);
}

TEST(FastReplica, SharesPrefixesWithinANamespaceOnly) {
  const PerfModel perf = h100_8b();
  auto m = make_fast_replica(perf, roomy_config());
  ASSERT_TRUE(m.ok());
  SimRequest a = request(1, Nanos{0}, 200, 2);
  a.prefix_id = 9;
  a.prefix_tokens = 160;  // 10 full blocks.
  SimRequest b = a;
  b.id = 2;
  SimRequest c = a;
  c.id = 3;
  c.cache_namespace = "other";
  Recorder rec;
  ASSERT_TRUE((*m)->submit(a, Nanos{0}).ok());
  while ((*m)->next_event_time())
    (*m)->advance(*(*m)->next_event_time(), rec);
  EXPECT_EQ((*m)->stats().prefix_hit_tokens, 0u);
  ASSERT_TRUE((*m)->submit(b, rec.last).ok());
  while ((*m)->next_event_time())
    (*m)->advance(*(*m)->next_event_time(), rec);
  EXPECT_EQ((*m)->stats().prefix_hit_tokens, 160u);
  ASSERT_TRUE((*m)->submit(c, rec.last).ok());
  while ((*m)->next_event_time())
    (*m)->advance(*(*m)->next_event_time(), rec);
  EXPECT_EQ((*m)->stats().prefix_hit_tokens, 160u);
  EXPECT_EQ((*m)->stats().prefix_query_tokens, 600u);
  EXPECT_EQ((*m)->stats().prefill_tokens, 200u + 40u + 200u);
}

TEST(FastReplica, RejectsBadConfigsAndRequests) {
  const PerfModel perf = h100_8b();
  ReplicaConfig bad = roomy_config();
  bad.kv_blocks = 0;
  EXPECT_EQ(make_fast_replica(perf, bad).error().code(), ErrorCode::kInvalidArgument);
  bad = roomy_config();
  bad.max_running = bad.max_batch_tokens + 1;
  EXPECT_EQ(make_fast_replica(perf, bad).error().code(), ErrorCode::kInvalidArgument);
  bad = roomy_config();
  bad.max_waiting = -1;
  EXPECT_EQ(make_fast_replica(perf, bad).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(make_replica_model("slow", perf, roomy_config()).error().code(),
            ErrorCode::kInvalidArgument);

  ReplicaConfig config = roomy_config();
  config.max_waiting = 2;
  config.kv_blocks = 10;  // 160 positions.
  auto m = make_fast_replica(perf, config);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->submit(request(1, Nanos{0}, 0, 1), Nanos{0}).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ((*m)->submit(request(1, Nanos{0}, 4000, 100), Nanos{0}).error().code(),
            ErrorCode::kOutOfRange);  // Beyond max_context.
  EXPECT_EQ((*m)->submit(request(1, Nanos{0}, 150, 20), Nanos{0}).error().code(),
            ErrorCode::kOutOfRange);  // Beyond the whole cache.
  ASSERT_TRUE((*m)->submit(request(1, Nanos{0}, 10, 5), Nanos{0}).ok());
  EXPECT_EQ((*m)->submit(request(1, Nanos{0}, 10, 5), Nanos{0}).error().code(),
            ErrorCode::kInvalidArgument);  // Duplicate id.
  ASSERT_TRUE((*m)->submit(request(2, Nanos{0}, 10, 5), Nanos{0}).ok());
  ASSERT_TRUE((*m)->submit(request(3, Nanos{0}, 10, 5), Nanos{0}).ok());
  EXPECT_EQ((*m)->submit(request(4, Nanos{0}, 10, 5), Nanos{0}).error().code(),
            ErrorCode::kResourceExhausted);  // Two never-admitted requests queued.
}

TEST(FastReplica, FailAllAndCancelReleaseEverything) {
  const PerfModel perf = h100_8b();
  auto m = make_fast_replica(perf, roomy_config());
  ASSERT_TRUE(m.ok());
  for (RequestId id : {5u, 3u, 9u})
    ASSERT_TRUE((*m)->submit(request(id, Nanos{0}, 100, 500), Nanos{0}).ok());
  Recorder rec;
  (*m)->advance(*(*m)->next_event_time(), rec);  // Prefill done; a decode run in flight.
  EXPECT_GT((*m)->load().kv_usage, 0.0);
  EXPECT_FALSE((*m)->cancel(42));
  EXPECT_TRUE((*m)->cancel(3));
  EXPECT_FALSE((*m)->cancel(3));
  EXPECT_EQ((*m)->load().running, 2);
  EXPECT_EQ((*m)->fail_all(), (std::vector<RequestId>{5, 9}));
  EXPECT_EQ((*m)->load().running, 0);
  EXPECT_EQ((*m)->load().waiting, 0);
  EXPECT_EQ((*m)->load().kv_usage, 0.0);
  EXPECT_EQ((*m)->next_event_time(), std::nullopt);
  // Usable afterwards, from an empty cache.
  ASSERT_TRUE((*m)->submit(request(10, rec.last, 100, 3), rec.last).ok());
  while ((*m)->next_event_time())
    (*m)->advance(*(*m)->next_event_time(), rec);
  EXPECT_TRUE(rec.times[10].finished.has_value());
  EXPECT_FALSE(rec.times[5].finished.has_value());
}

TEST(FastReplica, SameInputsGiveTheSameReports) {
  const PerfModel perf = h100_8b();
  ReplicaConfig config = roomy_config();
  config.kv_blocks = 150;  // Preemption too.
  const std::vector<SimRequest> reqs = random_workload(99, 40, 15);
  auto m1 = make_fast_replica(perf, config);
  auto m2 = make_fast_replica(perf, config);
  ASSERT_TRUE(m1.ok() && m2.ok());
  const RunResult a = drive(**m1, reqs);
  const RunResult b = drive(**m2, reqs);
  EXPECT_EQ(a.rec.log, b.rec.log);
  EXPECT_EQ(a.rec.times.size(), reqs.size());
  EXPECT_GT(a.stats.preemptions, 0u);
}

// The conformance suite. Each config runs several seeds; the figures are printed for the
// report (they are also asserted against the rounding bound above).
void conformance_suite(const ReplicaConfig& config, int seeds, bool expect_preemption,
                       double mean_gap_ms = 20) {
  const PerfModel perf = h100_8b();
  Conformance total;
  for (int seed = 1; seed <= seeds; ++seed) {
    expect_conform(perf, config, random_workload(static_cast<std::uint64_t>(seed), 60, mean_gap_ms),
                   total);
    if (::testing::Test::HasFatalFailure()) return;
  }
  if (expect_preemption) {
    EXPECT_GT(total.preemptions, 0u);
  } else {
    EXPECT_EQ(total.preemptions, 0u);
  }
  EXPECT_LT(total.fast_events, total.exact_events);
  std::printf(
      "conformance: max rel error TTFT %.3g, finish %.3g; max |diff| %lld ns; preemptions %llu; "
      "events exact %llu fast %llu\n",
      total.max_rel_ttft, total.max_rel_finish, static_cast<long long>(total.max_abs_ns),
      static_cast<unsigned long long>(total.preemptions),
      static_cast<unsigned long long>(total.exact_events),
      static_cast<unsigned long long>(total.fast_events));
}

TEST(FastReplicaConformance, RoomyCache) {
  conformance_suite(roomy_config(), 12, false);
}

TEST(FastReplicaConformance, TightCacheForcesPreemption) {
  ReplicaConfig config = roomy_config();
  config.kv_blocks = 200;
  conformance_suite(config, 12, true);
}

TEST(FastReplicaConformance, VeryTightCacheSmallBlocksAndBudgets) {
  ReplicaConfig config = roomy_config();
  config.block_tokens = 4;
  config.kv_blocks = 240;  // 960 positions for up to 800-token requests.
  config.max_batch_tokens = 64;
  config.max_running = 6;
  conformance_suite(config, 8, true, 10);
}

TEST(FastReplicaConformance, OneTokenBlocksAndAWideBatch) {
  ReplicaConfig config = roomy_config();
  config.block_tokens = 1;
  config.kv_blocks = 5000;
  config.max_batch_tokens = 1024;
  config.max_running = 64;
  conformance_suite(config, 6, true, 5);
}

TEST(FastReplicaConformance, CancellationsInARoomyCache) {
  const PerfModel perf = h100_8b();
  Conformance total;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    const std::vector<SimRequest> reqs = random_workload(seed, 60, 20);
    SeededRandom rng(seed + 100);
    std::vector<Cancel> cancels;
    for (int k = 0; k < 10; ++k) {
      const SimRequest& r = reqs[rng.next_u64() % reqs.size()];
      cancels.push_back({r.arrival + Nanos{static_cast<std::int64_t>(rng.exponential(3e8))}, r.id});
    }
    std::sort(cancels.begin(), cancels.end(),
              [](const Cancel& a, const Cancel& b) { return a.at < b.at; });
    expect_conform(perf, roomy_config(), reqs, total, cancels);
  }
}

}  // namespace
}  // namespace spillway::sim
