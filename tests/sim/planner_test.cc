#include "sim/planner.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "fleet/fleet_spec.h"

#include "sim/perf_model.h"
#include "sim/simulator.h"

#include "test_support.h"

namespace spillway::sim {
namespace {

using std::chrono::seconds;

// The time of one prefill step of `prompt` tokens of llama-3-8b on one H100 (how the exact
// replica computes a lone request's first step).
double prefill_ms(int prompt) {
  auto gpu = builtin_gpu_profile("H100");
  auto model = builtin_model_profile("llama-3-8b");
  EXPECT_TRUE(gpu.ok() && model.ok());
  const PerfModel perf(*gpu, *model, 1);
  StepShape shape;
  shape.prefill_tokens = prompt;
  shape.attended_positions = static_cast<std::int64_t>(prompt) * (prompt + 1) / 2;
  shape.kv_positions = prompt;
  return to_seconds(perf.step_time(shape)) * 1e3;
}

// One pool per entry of `pools` ("name:capacity:cost"), all in one provider and region with
// no round trip, H100s in nodes of 1 GPU, 0 GPUs listed and at most 8; llama-3-8b on 1 GPU
// per replica with the given TTFT SLO; one interactive tenant with `tenant_extra`.
std::string fleet_toml(const std::vector<std::string>& pools, double slo_ttft_ms,
                       const std::string& routing, const std::string& tenant_extra = "") {
  std::string text = R"(
[[providers]]
name = "cloud"
  [[providers.regions]]
  name = "east"
  rtt_ms = 0
)";
  for (const std::string& p : pools) {
    const auto a = p.find(':');
    const auto b = p.find(':', a + 1);
    text += fmt::format(R"(
    [[providers.regions.pools]]
    name = "{}"
    gpu = "H100"
    gpus = 1
    max_gpus = 8
    gpus_per_node = 1
    capacity = "{}"
    cost_per_gpu_hour = {}
    workloads = ["inference"]
)",
                        p.substr(0, a), p.substr(a + 1, b - a - 1), p.substr(b + 1));
  }
  text += fmt::format(R"(
[[models]]
name = "llama-3-8b"
path = "no-such-file.gguf"
gpus_per_replica = 1
min_replicas = 0
max_replicas = 16
context_tokens = 4096
slo_ttft_ms = {}
slo_tpot_ms = 1000
[[tenants]]
name = "app"
priority = "interactive"
{}
[gateway]
routing = "{}"
)",
                      slo_ttft_ms, tenant_extra, routing);
  return text;
}

fleet::FleetSpec parse(const std::string& toml) {
  auto spec = fleet::parse_fleet_spec(toml, "planner_test.toml");
  EXPECT_TRUE(spec.ok()) << spec.error().message();
  return spec.ok() ? *spec : fleet::FleetSpec{};
}

// An Azure-format trace: `per_burst` requests at each whole second 0 .. bursts-1, each with
// `prompt` prompt tokens and 1 output token.
WorkloadSpec burst_trace(const std::string& test, int bursts, int per_burst, int prompt) {
  std::string text = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n";
  for (int s = 0; s < bursts; ++s) {
    for (int i = 0; i < per_burst; ++i)
      text += fmt::format("2023-11-16 18:00:{:02d}.0000000,{},1\r\n", s, prompt);
  }
  const auto path = testing::temp_dir("planner_" + test) / "trace.csv";
  std::ofstream(path) << text;
  auto spec = parse_workload_spec("trace:" + path.string());
  EXPECT_TRUE(spec.ok()) << spec.error().message();
  return spec.ok() ? *spec : WorkloadSpec{};
}

// Exact replicas that run one sequence at a time: a request that arrives while its replica
// is busy waits a whole step.
SimOptions one_at_a_time() {
  SimOptions o;
  o.replica_model = "exact";
  o.replica.max_running = 1;
  o.duration = seconds(30);
  return o;
}

// Levels of 1/8 of max_gpus = 1 GPU per level; no extra load, so the trace replays as is.
PlanOptions exact_plan() {
  PlanOptions plan;
  plan.headroom = 0;
  plan.steps = 8;
  return plan;
}

PlanResult plan_ok(const fleet::FleetSpec& fleet, const WorkloadSpec& workload,
                   const SimOptions& options, const PlanOptions& plan) {
  auto result = plan_fleet(fleet, workload, options, plan);
  EXPECT_TRUE(result.ok()) << result.error().message();
  return result.ok() ? std::move(*result) : PlanResult{};
}

std::vector<std::int64_t> trial_gpus(const PlanResult& r) {
  std::vector<std::int64_t> out;
  for (const PlanTrial& t : r.history)
    out.push_back(t.gpus.at(0));
  return out;
}

// ---------------------------------------------------------------- attainment basis

TEST(PlanAttainment, AdmittedExcludesQuotaRejectionsOfferedCountsThem) {
  SimReport r;
  r.all.offered = 100;
  r.rejected_quota = 20;
  r.rejected_queue = 5;
  r.all.slo_met = 72;
  EXPECT_DOUBLE_EQ(plan_attainment(r, PlanBasis::kAdmitted), 72.0 / 80.0);
  EXPECT_DOUBLE_EQ(plan_attainment(r, PlanBasis::kOffered), 0.72);
  // Nothing admitted: nothing to serve, any fleet will do.
  r.rejected_quota = 100;
  r.all.slo_met = 0;
  EXPECT_DOUBLE_EQ(plan_attainment(r, PlanBasis::kAdmitted), 1.0);
  EXPECT_DOUBLE_EQ(plan_attainment(r, PlanBasis::kOffered), 0.0);
}

TEST(PlanOptionsTest, ValidateNamesTheBadField) {
  EXPECT_TRUE(PlanOptions{}.validate().ok());
  auto bad = [](auto mutate) {
    PlanOptions o;
    mutate(o);
    return o.validate();
  };
  EXPECT_FALSE(bad([](PlanOptions& o) { o.target_attainment = 0; }).ok());
  EXPECT_FALSE(bad([](PlanOptions& o) { o.target_attainment = 1.5; }).ok());
  EXPECT_FALSE(bad([](PlanOptions& o) { o.headroom = -0.1; }).ok());
  EXPECT_FALSE(bad([](PlanOptions& o) { o.steps = 1; }).ok());
  EXPECT_FALSE(bad([](PlanOptions& o) { o.steps = 65537; }).ok());
  EXPECT_FALSE(bad([](PlanOptions& o) { o.max_trials = 0; }).ok());
  EXPECT_FALSE(bad([](PlanOptions& o) { o.trim_probes = -1; }).ok());
  EXPECT_FALSE(bad([](PlanOptions& o) { o.trial_duration = Nanos{0}; }).ok());
  const Status s = bad([](PlanOptions& o) { o.steps = 1; });
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message().find("--plan-steps"), std::string::npos);
}

TEST(PlanOptionsTest, BasisNamesRoundTrip) {
  for (const PlanBasis b : {PlanBasis::kAdmitted, PlanBasis::kOffered}) {
    auto parsed = parse_plan_basis(plan_basis_name(b));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, b);
  }
  auto bad = parse_plan_basis("served");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------- search

// Bursts of 3 simultaneous requests, one step each, a TTFT SLO of 1.5 steps and one sequence
// per replica: 3 replicas meet it (each request of a burst gets its own), 2 miss one request
// in 3 (it waits a step). least-loaded sends each request of a burst to an idle replica.
TEST(Planner, FindsTheSmallestPoolByBracketAndBisection) {
  const int prompt = 300;
  const auto fleet =
      parse(fleet_toml({"p:reserved:2.0"}, 1.5 * prefill_ms(prompt), "least-loaded"));
  const WorkloadSpec workload = burst_trace("smallest", 10, 3, prompt);
  std::vector<PlanTrial> seen;
  PlanOptions plan = exact_plan();
  plan.on_trial = [&](const PlanTrial& t) { seen.push_back(t); };
  const PlanResult r = plan_ok(fleet, workload, one_at_a_time(), plan);

  ASSERT_TRUE(r.met);
  EXPECT_FALSE(r.out_of_trials);
  ASSERT_EQ(r.pools.size(), 1u);
  EXPECT_EQ(r.pools[0].gpus, 3);
  EXPECT_DOUBLE_EQ(r.cost_per_hour, 6.0);
  EXPECT_DOUBLE_EQ(r.attainment, 1.0);
  EXPECT_EQ(r.report.all.offered, 30u);
  EXPECT_EQ(r.report.all.slo_met, 30u);
  // Levels 1, 2, 4 (bracket), 3 (bisect); the trim reuses the known failures at 1 and 2.
  EXPECT_EQ(trial_gpus(r), (std::vector<std::int64_t>{1, 2, 4, 3}));
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_EQ(r.history[0].phase, "bracket");
  EXPECT_EQ(r.history[3].phase, "bisect");
  EXPECT_EQ(r.trials, 4);
  // The next smaller fleet tried: 2 GPUs, one request in three waits.
  EXPECT_FALSE(r.history[1].passed);
  EXPECT_NEAR(r.history[1].attainment, 2.0 / 3.0, 1e-12);
  EXPECT_TRUE(r.history[2].passed);
  // on_trial saw every simulation, in order.
  ASSERT_EQ(seen.size(), r.history.size());
  EXPECT_EQ(seen.back().gpus, r.history.back().gpus);
}

// Quota rejections: the tenant may send 15 requests a minute; 30 arrive. On the admitted
// basis the 15 admitted ones set the fleet (3 GPUs again); on the offered basis no fleet can
// reach 99% (at most 50%), so the largest is shown.
TEST(Planner, QuotaRejectionsCountOnlyOnTheOfferedBasis) {
  const int prompt = 300;
  const auto fleet = parse(fleet_toml({"p:reserved:2.0"}, 1.5 * prefill_ms(prompt), "least-loaded",
                                      "requests_per_minute = 15"));
  const WorkloadSpec workload = burst_trace("quota", 10, 3, prompt);

  const PlanResult admitted = plan_ok(fleet, workload, one_at_a_time(), exact_plan());
  ASSERT_TRUE(admitted.met);
  EXPECT_EQ(admitted.pools[0].gpus, 3);
  EXPECT_EQ(admitted.report.rejected_quota, 15u);
  EXPECT_DOUBLE_EQ(admitted.attainment, 1.0);

  PlanOptions offered_plan = exact_plan();
  offered_plan.basis = PlanBasis::kOffered;
  const PlanResult offered = plan_ok(fleet, workload, one_at_a_time(), offered_plan);
  EXPECT_FALSE(offered.met);
  EXPECT_FALSE(offered.out_of_trials);
  EXPECT_EQ(offered.pools[0].gpus, 8);  // Every level up to max_gpus was tried.
  EXPECT_EQ(trial_gpus(offered), (std::vector<std::int64_t>{1, 2, 4, 8}));
  EXPECT_DOUBLE_EQ(offered.attainment, 0.5);
}

// Light load (one request a second): the cheap reserved pool takes all of it under the
// spillway policy (the on-demand pool's static cost is beyond the slack), so the fit step
// drops the expensive pool, which served nothing.
TEST(Planner, FitDropsAPoolThatServedNothing) {
  const int prompt = 300;
  const auto fleet = parse(fleet_toml({"dear:on-demand:5.0", "cheap:reserved:1.0"},
                                      1.5 * prefill_ms(prompt), "spillway"));
  const WorkloadSpec workload = burst_trace("fit", 10, 1, prompt);
  const PlanResult r = plan_ok(fleet, workload, one_at_a_time(), exact_plan());
  ASSERT_TRUE(r.met);
  ASSERT_EQ(r.pools.size(), 2u);
  EXPECT_EQ(r.pools[0].name, "dear");
  EXPECT_EQ(r.pools[0].gpus, 0);
  EXPECT_EQ(r.pools[1].name, "cheap");
  EXPECT_EQ(r.pools[1].gpus, 1);
  EXPECT_DOUBLE_EQ(r.cost_per_hour, 1.0);
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_EQ(r.history[0].gpus, (std::vector<std::int64_t>{1, 1}));
  EXPECT_EQ(r.history[1].phase, "fit");
  EXPECT_EQ(r.history[1].gpus, (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(r.report.pools[0].served, 0u);
}

// Light load under least-loaded: idle replicas tie, so both pools serve and the fit step
// keeps both; the trim then tries the expensive pool at 0, which still passes.
TEST(Planner, TrimDropsAnExpensivePoolThatIsNotNeeded) {
  const int prompt = 300;
  const auto fleet = parse(fleet_toml({"dear:on-demand:5.0", "cheap:reserved:1.0"},
                                      1.5 * prefill_ms(prompt), "least-loaded"));
  const WorkloadSpec workload = burst_trace("trim", 10, 1, prompt);
  const PlanResult r = plan_ok(fleet, workload, one_at_a_time(), exact_plan());
  ASSERT_TRUE(r.met);
  ASSERT_EQ(r.pools.size(), 2u);
  EXPECT_EQ(r.pools[0].gpus, 0);
  EXPECT_EQ(r.pools[1].gpus, 1);
  EXPECT_DOUBLE_EQ(r.cost_per_hour, 1.0);
  // Level 1 passes with both pools serving; no fit trial (nothing to cut); one trim.
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_EQ(r.history[0].gpus, (std::vector<std::int64_t>{1, 1}));
  EXPECT_EQ(r.history[1].phase, "trim");
  EXPECT_EQ(r.history[1].gpus, (std::vector<std::int64_t>{0, 1}));
}

TEST(Planner, UnmeetableTargetShowsTheLargestFleet) {
  const int prompt = 300;
  // A TTFT SLO shorter than one step: no fleet meets it.
  const auto fleet =
      parse(fleet_toml({"p:reserved:2.0"}, 0.5 * prefill_ms(prompt), "least-loaded"));
  const WorkloadSpec workload = burst_trace("unmeetable", 5, 1, prompt);
  const PlanResult r = plan_ok(fleet, workload, one_at_a_time(), exact_plan());
  EXPECT_FALSE(r.met);
  EXPECT_FALSE(r.out_of_trials);
  EXPECT_EQ(r.pools[0].gpus, 8);
  EXPECT_EQ(r.trials, 4);
  EXPECT_DOUBLE_EQ(r.attainment, 0.0);
  EXPECT_NE(r.to_text().find("NOT met even at every pool's max_gpus"), std::string::npos);

  PlanOptions two = exact_plan();
  two.max_trials = 2;
  const PlanResult cut = plan_ok(fleet, workload, one_at_a_time(), two);
  EXPECT_FALSE(cut.met);
  EXPECT_TRUE(cut.out_of_trials);
  EXPECT_EQ(cut.trials, 2);
  EXPECT_EQ(cut.pools[0].gpus, 2);  // The largest fleet tried.
  EXPECT_NE(cut.to_text().find("out of trials"), std::string::npos);
}

TEST(Planner, TrialDurationAppliesWhenTheRunHasNone) {
  const int prompt = 300;
  const auto fleet =
      parse(fleet_toml({"p:reserved:2.0"}, 1.5 * prefill_ms(prompt), "least-loaded"));
  const WorkloadSpec workload = burst_trace("duration", 10, 3, prompt);
  SimOptions options = one_at_a_time();
  options.duration = Nanos{0};
  PlanOptions plan = exact_plan();
  plan.trial_duration = std::chrono::milliseconds(3500);
  const PlanResult r = plan_ok(fleet, workload, options, plan);
  EXPECT_DOUBLE_EQ(r.trial_duration_s, 3.5);
  // Arrivals at 0, 1, 2 and 3 s only: 12 requests.
  EXPECT_EQ(r.report.all.offered, 12u);
}

TEST(Planner, SameInputsSameOutputAndJsonCarriesTheHistory) {
  const int prompt = 300;
  const auto fleet =
      parse(fleet_toml({"p:reserved:2.0"}, 1.5 * prefill_ms(prompt), "least-loaded"));
  const WorkloadSpec workload = burst_trace("determinism", 10, 3, prompt);
  const PlanResult a = plan_ok(fleet, workload, one_at_a_time(), exact_plan());
  const PlanResult b = plan_ok(fleet, workload, one_at_a_time(), exact_plan());
  EXPECT_EQ(a.to_json(), b.to_json());
  EXPECT_EQ(a.to_text(), b.to_text());
  const std::string json = a.to_json();
  EXPECT_NE(json.find(R"("basis":"admitted")"), std::string::npos);
  EXPECT_NE(json.find(R"("history":[{"phase":"bracket","gpus":[1])"), std::string::npos);
  EXPECT_NE(json.find(R"("pools":[{"name":"p","provider":"cloud","gpu":"H100","gpus":3)"),
            std::string::npos);
}

TEST(Planner, BadOptionsAreRejectedBeforeAnySimulation) {
  const auto fleet = parse(fleet_toml({"p:reserved:2.0"}, 100, "least-loaded"));
  const WorkloadSpec workload = burst_trace("bad", 1, 1, 10);
  PlanOptions plan = exact_plan();
  plan.target_attainment = 2;
  std::int32_t calls = 0;
  plan.on_trial = [&](const PlanTrial&) { ++calls; };
  auto r = plan_fleet(fleet, workload, one_at_a_time(), plan);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace spillway::sim
