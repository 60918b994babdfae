#include "sim/simulator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/random.h"

#include "fleet/quota.h"

#include "sim/event_queue.h"
#include "sim/fleet_events.h"
#include "sim/perf_model.h"
#include "sim/replica_model.h"
#include "sim/sim_report.h"

#include "test_support.h"

namespace spillway::sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------- event queue

TEST(EventQueue, EarliestFirstAndSameTimeInInsertionOrder) {
  EventQueue q;
  q.push(Nanos{30}, EventKind::kSample, 1);
  q.push(Nanos{10}, EventKind::kArrival, 2);
  q.push(Nanos{30}, EventKind::kArrival, 3);
  q.push(Nanos{20}, EventKind::kReplicaStep, 4);
  q.push(Nanos{30}, EventKind::kAutoscaleTick, 5);
  q.push(Nanos{10}, EventKind::kQueueTimeout, 6);
  std::vector<std::uint64_t> order;
  while (auto e = q.pop())
    order.push_back(e->a);
  EXPECT_EQ(order, (std::vector<std::uint64_t>{2, 6, 4, 1, 3, 5}));
  EXPECT_TRUE(q.empty());
}

TEST(EventQueue, ManySameTimeEventsKeepPushOrder) {
  EventQueue q;
  SeededRandom random(7);
  for (std::uint64_t i = 0; i < 1000; ++i)
    q.push(Nanos{static_cast<std::int64_t>(random.below(5))}, EventKind::kArrival, i);
  Nanos last{-1};
  std::uint64_t last_a = 0;
  while (auto e = q.pop()) {
    ASSERT_GE(e->at, last);
    if (e->at == last) {
      ASSERT_GT(e->a, last_a);
    }
    last = e->at;
    last_a = e->a;
  }
}

// ---------------------------------------------------------------- --event syntax

TEST(FleetEvents, ParsesTheThreeKinds) {
  auto outage = parse_fleet_event("outage:azure-h100@60-5m");
  ASSERT_TRUE(outage.ok()) << outage.error().message();
  EXPECT_EQ(outage->kind, FleetEventSpec::Kind::kOutage);
  EXPECT_EQ(outage->pool, "azure-h100");
  EXPECT_EQ(outage->start, seconds(60));
  EXPECT_EQ(outage->end, seconds(300));
  auto crash = parse_fleet_event("crash:3@1.5");
  ASSERT_TRUE(crash.ok());
  EXPECT_EQ(crash->replica_index, 3);
  EXPECT_EQ(crash->start, milliseconds(1500));
  EXPECT_FALSE(crash->end);
  auto spot = parse_fleet_event("spot-preempt:west-spot@1h");
  ASSERT_TRUE(spot.ok());
  EXPECT_EQ(spot->start, seconds(3600));
}

TEST(FleetEvents, RejectsMalformed) {
  for (const char* bad : {"outage", "outage:@5", "flood:p@5", "outage:p@x", "outage:p@10-5",
                          "crash:-1@5", "crash:1@5-6", "outage:p@-3"}) {
    auto e = parse_fleet_event(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.error().code(), ErrorCode::kInvalidArgument);
  }
}

// ---------------------------------------------------------------- histogram

TEST(LatencyHistogram, QuantilesWithinStatedErrorAndExactMean) {
  LatencyHistogram h;
  std::vector<std::int64_t> values;
  SeededRandom random(3);
  long double sum = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto v = static_cast<std::int64_t>(random.exponential(5e7)) + 1;
    values.push_back(v);
    sum += v;
    h.add(Nanos{v});
  }
  std::sort(values.begin(), values.end());
  for (const double q : {0.01, 0.5, 0.9, 0.99, 1.0}) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
    const double exact = static_cast<double>(values[rank - 1]);
    const double got = static_cast<double>(h.quantile(q).count());
    EXPECT_NEAR(got, exact, exact * 0.002 + 1) << q;
  }
  EXPECT_NEAR(h.mean_s(), static_cast<double>(sum / values.size()) * 1e-9, 1e-12);
  EXPECT_EQ(h.count(), values.size());
}

// ---------------------------------------------------------------- whole runs

std::string write_file(const std::string& test, const std::string& name, const std::string& text) {
  const auto path = testing::temp_dir("simulator_" + test) / name;
  std::ofstream(path) << text;
  return path.string();
}

// An Azure-format trace: row i arrives at times_s[i] with the given lengths.
std::string azure_csv(const std::vector<double>& times_s, int prompt, int output) {
  std::string text = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n";
  for (const double t : times_s) {
    const int whole = static_cast<int>(t);
    const long frac = std::lround((t - whole) * 1e7);
    text += fmt::format("2023-11-16 18:{:02d}:{:02d}.{:07d},{},{}\r\n", whole / 60, whole % 60,
                        frac, prompt, output);
  }
  return text;
}

std::vector<double> evenly(int n, double rate) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i)
    t.push_back(i / rate);
  return t;
}

// Two providers, one pool each; azure reserved and cheap, oci on-demand.
std::string two_provider_fleet(const std::string& tenant_extra = "", int min_replicas = 2,
                               const std::string& routing = "spillway") {
  return fmt::format(R"(
[[providers]]
name = "azure"
  [[providers.regions]]
  name = "eastus"
  rtt_ms = 2.0
    [[providers.regions.pools]]
    name = "azure-h100"
    gpu = "H100"
    gpus = 4
    gpus_per_node = 1
    cost_per_gpu_hour = 2.0
    capacity = "reserved"
    workloads = ["inference"]
[[providers]]
name = "oci"
  [[providers.regions]]
  name = "ashburn"
  rtt_ms = 12.0
    [[providers.regions.pools]]
    name = "oci-h100"
    gpu = "H100"
    gpus = 4
    gpus_per_node = 1
    cost_per_gpu_hour = 3.0
    capacity = "on-demand"
    workloads = ["inference"]
[[models]]
name = "llama-3-8b"
path = "no-such-file.gguf"
gpus_per_replica = 1
min_replicas = {}
max_replicas = 4
context_tokens = 4096
slo_ttft_ms = 1000
slo_tpot_ms = 100
[[tenants]]
name = "app"
priority = "interactive"
{}
[gateway]
routing = "{}"
)",
                     min_replicas, tenant_extra, routing);
}

fleet::FleetSpec parse(const std::string& toml) {
  auto spec = fleet::parse_fleet_spec(toml, "test.toml");
  EXPECT_TRUE(spec.ok()) << spec.error().message();
  return *spec;
}

WorkloadSpec trace_workload(const std::string& path) {
  auto spec = parse_workload_spec("trace:" + path);
  EXPECT_TRUE(spec.ok()) << spec.error().message();
  return *spec;
}

SimOptions quiet_options() {
  SimOptions o;
  o.autoscale = false;
  o.replica_model = "exact";
  return o;
}

SimReport run_ok(const fleet::FleetSpec& fleet, const WorkloadSpec& workload,
                 const SimOptions& options) {
  auto report = run_simulation(fleet, workload, options);
  EXPECT_TRUE(report.ok()) << report.error().message();
  return report.ok() ? std::move(*report) : SimReport{};
}

void expect_accounted(const SimReport& r) {
  EXPECT_EQ(r.all.offered, r.all.finished + r.all.rejected + r.all.failed + r.unfinished);
}

TEST(Simulator, OneRequestOnAnIdleReplicaTakesRttPlusThePrefillStep) {
  const auto fleet = parse(two_provider_fleet("", 1));
  const std::string trace = write_file("tiny", "t.csv", azure_csv({0.0}, 300, 1));
  SimOptions options = quiet_options();
  const SimReport r = run_ok(fleet, trace_workload(trace), options);
  ASSERT_EQ(r.all.finished, 1u);
  // The one replica is in the first pool placement picks: azure (reserved), RTT 2 ms.
  ASSERT_EQ(r.pools[0].served, 1u);

  // The same request alone on a replica of the same shape, driven by hand.
  auto gpu = builtin_gpu_profile("H100");
  auto model = builtin_model_profile("llama-3-8b");
  ASSERT_TRUE(gpu.ok() && model.ok());
  const PerfModel perf(*gpu, *model, 1);
  ReplicaConfig config;
  config.kv_blocks = perf.kv_cache_blocks(config.block_tokens, options.kv_memory_fraction);
  config.max_context = 4096;
  auto replica = make_replica_model("exact", perf, config);
  ASSERT_TRUE(replica.ok()) << replica.error().message();
  SimRequest req;
  req.id = 1;
  req.tenant = "app";
  req.model = "llama-3-8b";
  req.prompt_tokens = 300;
  req.output_tokens = 1;
  ASSERT_TRUE((*replica)->submit(req, Nanos{0}).ok());
  const std::optional<Nanos> step_end = (*replica)->next_event_time();
  ASSERT_TRUE(step_end.has_value());
  // One prefill step of the whole prompt (it fits the step budget): 300 tokens attending to
  // positions 1..300, reading 300 positions of KV.
  StepShape shape;
  shape.prefill_tokens = 300;
  shape.attended_positions = 300 * 301 / 2;
  shape.kv_positions = 300;
  EXPECT_EQ(*step_end, perf.step_time(shape));

  const double rtt_s = 0.002;
  EXPECT_NEAR(r.all.ttft.mean_s(), rtt_s + to_seconds(perf.step_time(shape)), 1e-9);
  EXPECT_NEAR(r.all.e2e.mean_s(), r.all.ttft.mean_s(), 1e-9);
  EXPECT_EQ(r.all.tpot.count(), 0u);  // One output token: no TPOT.
}

TEST(Simulator, SameSeedSameJsonOtherSeedDiffers) {
  // Two tenants: which one each request belongs to is drawn from the seed.
  const auto fleet = parse(two_provider_fleet(R"(
[[tenants]]
name = "batch"
priority = "batch")"));
  const std::string trace = write_file("determinism", "t.csv", azure_csv(evenly(120, 20), 200, 20));
  SimOptions options = quiet_options();
  options.seed = 11;
  const std::string a = run_ok(fleet, trace_workload(trace), options).to_json(false);
  const std::string b = run_ok(fleet, trace_workload(trace), options).to_json(false);
  EXPECT_EQ(a, b);
  options.seed = 12;
  const std::string c = run_ok(fleet, trace_workload(trace), options).to_json(false);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.find("wall_s"), std::string::npos);
}

TEST(Simulator, QuotaRejectionsFollowTokenQuota) {
  // 10 requests per minute: of 30 requests in 6 s, the first 10 pass.
  const auto fleet = parse(two_provider_fleet("requests_per_minute = 10"));
  const std::string trace = write_file("quota", "t.csv", azure_csv(evenly(30, 5), 100, 4));
  const SimReport r = run_ok(fleet, trace_workload(trace), quiet_options());
  EXPECT_EQ(r.rejected_quota, 20u);
  EXPECT_EQ(r.all.finished, 10u);
  EXPECT_EQ(r.tenants.at("app").rejected, 20u);
  expect_accounted(r);

  // Tokens: each request's worst case is 100 + 4 = 104 tokens; 520 per minute admit 5.
  const auto by_tokens = parse(two_provider_fleet("tokens_per_minute = 520"));
  const SimReport t = run_ok(by_tokens, trace_workload(trace), quiet_options());
  EXPECT_EQ(t.rejected_quota, 25u);
  EXPECT_EQ(t.all.finished, 5u);

  // The same sequence through a TokenQuota directly gives the same count.
  ManualClock clock;
  fleet::TokenQuota quota({520, 0}, clock);
  int admitted = 0;
  for (int i = 0; i < 30; ++i) {
    clock.set(TimePoint{milliseconds(200 * i)});
    if (quota.reserve(104).ok()) ++admitted;
  }
  EXPECT_EQ(admitted, 5);
}

TEST(Simulator, OutageMovesTrafficToTheOtherProvider) {
  const auto fleet = parse(two_provider_fleet());
  const std::string trace = write_file("outage", "t.csv", azure_csv(evenly(200, 10), 200, 30));
  SimOptions options = quiet_options();
  const SimReport normal = run_ok(fleet, trace_workload(trace), options);
  ASSERT_EQ(normal.providers.size(), 2u);
  // The spillway policy keeps traffic on the reserved azure replica while it is not saturated.
  EXPECT_GT(normal.providers[0].served_share, 0.5);

  options.events.push_back(*parse_fleet_event("outage:azure-h100@5"));
  const SimReport outage = run_ok(fleet, trace_workload(trace), options);
  EXPECT_EQ(outage.replicas_lost, 1u);
  EXPECT_GT(outage.providers[1].served_share, normal.providers[1].served_share);
  EXPECT_GT(outage.providers[1].served, outage.providers[0].served);
  // Requests on the lost replica were retried (before their first token) or failed.
  EXPECT_GT(outage.failovers + outage.failed_lost, 0u);
  expect_accounted(outage);
  // The replacement for the lost replica went to oci: its pool peaked at 2 replicas.
  EXPECT_EQ(outage.pools[1].peak_replicas, 2);
}

TEST(Simulator, CrashIsReplacedAndCounted) {
  const auto fleet = parse(two_provider_fleet());
  const std::string trace = write_file("crash", "t.csv", azure_csv(evenly(100, 10), 200, 30));
  SimOptions options = quiet_options();
  options.events.push_back(*parse_fleet_event("crash:0@3"));
  options.cold_start = seconds(1);
  const SimReport r = run_ok(fleet, trace_workload(trace), options);
  EXPECT_EQ(r.crashes, 1u);
  expect_accounted(r);
  EXPECT_EQ(r.all.finished + r.failed_lost, r.all.offered);
}

TEST(Simulator, RoutingPolicyChangesTheResult) {
  const auto fleet = parse(two_provider_fleet());
  const std::string trace = write_file("compare", "t.csv", azure_csv(evenly(100, 4), 200, 10));
  SimOptions options = quiet_options();
  options.policy = "round-robin";
  const SimReport rr = run_ok(fleet, trace_workload(trace), options);
  options.policy = "spillway";
  const SimReport sw = run_ok(fleet, trace_workload(trace), options);
  EXPECT_EQ(rr.policy, "round-robin");
  // Round-robin alternates between the two replicas; spillway fills the reserved one.
  EXPECT_LE(std::max(rr.pools[0].served, rr.pools[1].served) -
                std::min(rr.pools[0].served, rr.pools[1].served),
            1u);
  EXPECT_GT(sw.pools[0].served, sw.pools[1].served + 50);
  EXPECT_NE(rr.to_json(false), sw.to_json(false));
}

TEST(Simulator, AdmissionQueueRejectsWhenEveryReplicaRefuses) {
  const auto fleet = parse(two_provider_fleet("", 1));
  const std::string trace = write_file("queue", "t.csv", azure_csv(evenly(40, 1000), 2000, 200));
  SimOptions options = quiet_options();
  options.replica.max_waiting = 2;
  options.replica.max_running = 2;
  options.queue_capacity = 3;
  const SimReport r = run_ok(fleet, trace_workload(trace), options);
  EXPECT_GT(r.replica_refusals, 0u);
  EXPECT_GT(r.rejected_queue, 0u);
  expect_accounted(r);
}

TEST(Simulator, BadInputIsAnError) {
  const auto fleet = parse(two_provider_fleet());
  const std::string trace = write_file("bad", "t.csv", azure_csv(evenly(5, 1), 100, 4));
  SimOptions options = quiet_options();
  options.policy = "random";
  EXPECT_EQ(run_simulation(fleet, trace_workload(trace), options).error().code(),
            ErrorCode::kInvalidArgument);
  options = quiet_options();
  options.events.push_back(*parse_fleet_event("outage:nowhere@1"));
  EXPECT_EQ(run_simulation(fleet, trace_workload(trace), options).error().code(),
            ErrorCode::kInvalidArgument);
  options = quiet_options();
  options.events.push_back(*parse_fleet_event("spot-preempt:azure-h100@1"));
  EXPECT_EQ(run_simulation(fleet, trace_workload(trace), options).error().code(),
            ErrorCode::kInvalidArgument);
  auto unknown_model = parse(two_provider_fleet());
  unknown_model.models[0].name = "mystery-model";
  EXPECT_EQ(run_simulation(unknown_model, trace_workload(trace), quiet_options()).error().code(),
            ErrorCode::kNotFound);
}

}  // namespace
}  // namespace spillway::sim
