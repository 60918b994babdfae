// spillway sim: the fleet simulator (docs/SIMULATOR.md).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/model.h"

#include "fleet/fleet_spec.h"
#include "fleet/routing.h"

#include "sim/calibrate.h"
#include "sim/fleet_events.h"
#include "sim/perf_model.h"
#include "sim/planner.h"
#include "sim/simulator.h"
#include "sim/workload.h"

#include "cli/commands.h"

namespace spillway::cli {
namespace {

struct SimFlags {
  std::string fleet;
  std::string workload;
  double duration_s = 0;
  std::string policy;
  std::uint64_t seed = 1;
  bool json = false;
  bool timing = false;
  std::string timeseries;
  std::string compare;
  bool plan = false;
  sim::PlanOptions plan_options;
  std::string plan_basis = "admitted";
  std::vector<std::string> events;
  std::vector<std::string> gpu_profiles;
  std::string replica_model = "auto";
  std::string start = "min";
  bool no_autoscale = false;
  double cold_start_s = -1;
  std::string primary_provider;
  std::int32_t system_prompt_tokens = 0;
  double conversation_turns = 1;
  sim::SimOptions options;
};

int fail(const Error& e) {
  std::fprintf(stderr, "spillway sim: %s\n", e.message().c_str());
  return e.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    out.push_back(item);
  return out;
}

double wall_seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct CalibrateFlags {
  std::string model;
  std::string out;
  std::string statistic = "median";
  double idle_gap_ms = 50;
  sim::CalibrationOptions options;
};

// spillway sim calibrate: times real engine steps on this machine and writes the fitted
// cpu-local profile (sim/calibrate.h), for `spillway sim --gpu-profile FILE`.
int run_calibrate(CalibrateFlags& f) {
  auto statistic = sim::parse_calibration_statistic(f.statistic);
  if (!statistic.ok()) return fail(statistic.error());
  f.options.statistic = *statistic;
  f.options.idle_gap = Nanos{std::llround(f.idle_gap_ms * 1e6)};
  if (auto s = sim::validate_calibration_options(f.options); !s.ok()) return fail(s.error());
  engine::ModelLoadOptions load;
  load.path = f.model;
  auto model = engine::Model::load(load);
  if (!model.ok()) return fail(model.error());
  auto report = sim::calibrate_cpu_local(**model, f.options);
  if (!report.ok()) return fail(report.error());
  std::fputs(report->to_text().c_str(), stdout);
  if (!f.out.empty()) {
    if (auto s = sim::write_gpu_profile(report->profile, f.out); !s.ok()) return fail(s.error());
    std::printf("wrote %s (use: spillway sim --gpu-profile %s ...)\n", f.out.c_str(),
                f.out.c_str());
  }
  return 0;
}

int run_sim(SimFlags& f) {
  if (f.fleet.empty() || f.workload.empty()) {
    return fail(make_error(ErrorCode::kInvalidArgument,
                           "--fleet and --workload are required (or use `sim calibrate`)"));
  }
  auto fleet = fleet::load_fleet_spec(f.fleet);
  if (!fleet.ok()) return fail(fleet.error());
  auto workload = sim::parse_workload_spec(f.workload);
  if (!workload.ok()) return fail(workload.error());

  sim::SimOptions& o = f.options;
  o.policy = f.policy;
  o.seed = f.seed;
  o.duration = Nanos{static_cast<std::int64_t>(f.duration_s * 1e9)};
  o.replica_model = f.replica_model;
  o.autoscale = !f.no_autoscale;
  o.routing.primary_provider = f.primary_provider;
  o.tenant_mix.system_prompt_tokens = f.system_prompt_tokens;
  o.tenant_mix.conversation_turns = f.conversation_turns;
  if (f.cold_start_s >= 0) o.cold_start = Nanos{static_cast<std::int64_t>(f.cold_start_s * 1e9)};
  if (f.start == "fill") {
    o.start = sim::StartReplicas::kFill;
  } else if (f.start != "min") {
    return fail(make_error(ErrorCode::kInvalidArgument, "--start-replicas: '{}' is not min or fill",
                           f.start));
  }
  for (const std::string& text : f.events) {
    auto event = sim::parse_fleet_event(text);
    if (!event.ok()) return fail(event.error());
    o.events.push_back(*event);
  }
  for (const std::string& path : f.gpu_profiles) {
    auto profile = sim::load_gpu_profile(path);
    if (!profile.ok()) return fail(profile.error());
    o.gpu_profiles.push_back(*profile);
  }
  std::ofstream timeseries;
  if (!f.timeseries.empty()) {
    timeseries.open(f.timeseries);
    if (!timeseries) {
      return fail(
          make_error(ErrorCode::kNotFound, "--timeseries: cannot write '{}'", f.timeseries));
    }
    o.timeseries = &timeseries;
  }
  if (auto s = o.validate(); !s.ok()) return fail(s.error());

  const auto start = std::chrono::steady_clock::now();
  if (f.plan) {
    auto basis = sim::parse_plan_basis(f.plan_basis);
    if (!basis.ok()) return fail(basis.error());
    f.plan_options.basis = *basis;
    // Progress on stderr (stdout stays reproducible): one line per simulated candidate.
    auto last = std::chrono::steady_clock::now();
    std::int32_t trial = 0;
    f.plan_options.on_trial = [&](const sim::PlanTrial& t) {
      std::fprintf(stderr, "plan: trial %d (%s) %.2f /h: %.3f%% %s (%.1f s)\n", ++trial,
                   t.phase.c_str(), t.cost_per_hour, t.attainment * 100, t.passed ? "pass" : "fail",
                   wall_seconds_since(last));
      last = std::chrono::steady_clock::now();
    };
    auto plan = sim::plan_fleet(*fleet, *workload, o, f.plan_options);
    if (!plan.ok()) return fail(plan.error());
    const std::string out = f.json ? plan->to_json() + "\n" : plan->to_text();
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  if (!f.compare.empty()) {
    std::vector<sim::SimReport> runs;
    for (const std::string& name : split(f.compare)) {
      if (!fleet::is_routing_policy_name(name)) {
        return fail(make_error(ErrorCode::kInvalidArgument,
                               "--compare: unknown routing policy '{}'", name));
      }
      o.policy = name;
      const auto one = std::chrono::steady_clock::now();
      auto report = sim::run_simulation(*fleet, *workload, o);
      if (!report.ok()) return fail(report.error());
      report->wall_s = wall_seconds_since(one);
      runs.push_back(std::move(*report));
    }
    const std::string out =
        f.json ? sim::compare_to_json(runs, f.timing) + "\n" : sim::compare_to_text(runs);
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  auto report = sim::run_simulation(*fleet, *workload, o);
  if (!report.ok()) return fail(report.error());
  report->wall_s = wall_seconds_since(start);
  const std::string out = f.json ? report->to_json(f.timing) + "\n" : report->to_text();
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

Command add_sim_command(CLI::App& root) {
  auto f = std::make_shared<SimFlags>();
  CLI::App* app = root.add_subcommand(
      "sim",
      "Simulate a fleet (the same TOML as `spillway up`) under a workload with the production "
      "placement, routing, quota, admission and autoscaling policies (docs/SIMULATOR.md)");
  app->add_option("--fleet", f->fleet, "Fleet description (TOML); required");
  app->add_option("--workload", f->workload,
                  "trace:PATH[,scale=S][,rate=R][,length=L] or mau:N[,hours=H][,start_hour=T]; "
                  "required");
  app->add_option(
         "--duration", f->duration_s,
         "Simulated seconds of arrivals (0 = the workload's own end; with --plan, 120 s per "
         "trial)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  app->add_option("--policy", f->policy,
                  "Routing policy: round-robin, least-loaded or spillway (default: the fleet's)");
  app->add_option("--primary-provider", f->primary_provider,
                  "The spillway policy's preferred provider (default: none)");
  app->add_option("--seed", f->seed, "Seed of the workload and the routing ties")
      ->capture_default_str();
  app->add_flag("--json", f->json, "Print one JSON object");
  app->add_flag("--timing", f->timing,
                "With --json: include wall_s and events_per_wall_s (not reproducible)");
  app->add_option("--timeseries", f->timeseries, "Write one CSV row per 10 s of simulated time");
  app->add_option("--compare", f->compare,
                  "Run each routing policy of a comma-separated list on the same workload");
  app->add_flag("--plan", f->plan, "Search the smallest fleet meeting the SLOs at peak");
  app->add_option("--headroom", f->plan_options.headroom, "--plan: extra load, e.g. 0.2 = 20%")
      ->capture_default_str();
  app->add_option("--slo-target", f->plan_options.target_attainment,
                  "--plan: SLO attainment to reach (share of requests within both SLOs)")
      ->capture_default_str();
  app->add_option("--plan-trials", f->plan_options.max_trials, "--plan: simulations at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app->add_option("--plan-basis", f->plan_basis,
                  "--plan: attainment over 'admitted' requests (tenant-quota rejections "
                  "excluded) or all 'offered' ones")
      ->capture_default_str();
  app->add_option("--plan-steps", f->plan_options.steps,
                  "--plan: resolution of the fleet-wide level (a level is k/steps of max_gpus)")
      ->capture_default_str()
      ->check(CLI::Range(2, 65536));
  app->add_option("--plan-trim-probes", f->plan_options.trim_probes,
                  "--plan: simulations per pool when trimming the fleet found")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app->add_option("--event", f->events,
                  "outage:POOL@START[-END], crash:INDEX@T or spot-preempt:POOL@T[-END] "
                  "(repeatable; times in s, or with unit s/m/h)");
  app->add_option("--gpu-profile", f->gpu_profiles,
                  "GPU profile TOML (e.g. from `spillway sim calibrate`) replacing the built-in "
                  "profile of the same name (repeatable)");
  app->add_option("--replica-model", f->replica_model,
                  "exact (engine::Scheduler), fast (aggregated steps) or auto")
      ->capture_default_str();
  app->add_option("--start-replicas", f->start,
                  "min (each model's min_replicas) or fill (as many as the pools hold)")
      ->capture_default_str();
  app->add_flag("--no-autoscale", f->no_autoscale, "Keep each model's initial replica count");
  app->add_option("--cold-start", f->cold_start_s,
                  "Seconds from scale-out to serving (default: 20 s + weights at 2 GB/s per GPU)")
      ->check(CLI::Range(0.0, 1e5));
  app->add_option("--queue", f->options.queue_capacity,
                  "Admission queue per model (requests waiting when every replica refuses)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  app->add_option("--max-batch-tokens", f->options.replica.max_batch_tokens,
                  "Tokens computed per replica step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--max-running", f->options.replica.max_running, "Sequences per replica batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--system-prompt-tokens", f->system_prompt_tokens,
                  "Every tenant's shared system prompt (tokens)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app->add_option("--conversation-turns", f->conversation_turns,
                  "Mean turns per conversation (1 = independent requests)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1000.0));
  auto c = std::make_shared<CalibrateFlags>();
  CLI::App* cal = app->add_subcommand(
      "calibrate",
      "Time real engine steps of a model on this machine and fit the cpu-local profile");
  cal->add_option("--model", c->model, "GGUF model to run")->required();
  cal->add_option("--out", c->out, "Write the fitted profile here (TOML)");
  cal->add_option("--threads", c->options.threads, "Engine threads")->capture_default_str();
  cal->add_option("--repetitions", c->options.repetitions, "Timed runs per step shape")
      ->capture_default_str();
  cal->add_option("--warmup", c->options.warmup, "Untimed runs per step shape first")
      ->capture_default_str();
  cal->add_option("--statistic", c->statistic,
                  "What the timed runs of a step shape count as: min, median or mean")
      ->capture_default_str();
  cal->add_option("--idle-repetitions", c->options.idle_repetitions,
                  "Wake-ups of an idle engine thread to time (0 = do not measure idle_wake)")
      ->capture_default_str();
  cal->add_option("--idle-gap-ms", c->idle_gap_ms, "Sleep before each timed wake-up")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 10000.0));
  cal->add_flag("--cpu-time", c->options.thread_cpu_time,
                "Time by the thread's CPU time (1 thread; for a busy machine)");
  app->require_subcommand(0, 1);
  return {app, [f, c, cal] { return cal->parsed() ? run_calibrate(*c) : run_sim(*f); }};
}

}  // namespace spillway::cli
