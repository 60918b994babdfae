#include "sim/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <optional>

namespace spillway::sim {

namespace {

// GPUs per pool of fleet.pools(), in fleet order (non-inference pools keep their size).
using Candidate = std::vector<std::int64_t>;

struct Evaluated {
  double attainment = 0;
  bool passed = false;
  std::shared_ptr<const SimReport> report;
};

class Planner {
 public:
  Planner(const fleet::FleetSpec& fleet, const WorkloadSpec& workload, const SimOptions& options,
          const PlanOptions& plan)
      : fleet_(fleet), workload_(workload), options_(options), plan_(plan), pools_(fleet.pools()) {
    options_.start = StartReplicas::kFill;
    options_.autoscale = false;
    if (options_.duration == Nanos{0}) options_.duration = plan.trial_duration;
    if (workload_.kind == WorkloadSpec::Kind::kMau) {
      workload_.mau =
          static_cast<std::int64_t>(static_cast<double>(workload_.mau) * (1 + plan.headroom));
    } else {
      workload_.rate *= 1 + plan.headroom;
    }
    for (const fleet::ModelSpec& m : fleet.models)
      replica_lcm_ = std::lcm(replica_lcm_, m.gpus_per_replica);
  }

  const std::vector<const fleet::PoolSpec*>& pools() const { return pools_; }
  const SimOptions& options() const { return options_; }
  std::int32_t trials() const { return static_cast<std::int32_t>(history_.size()); }
  bool budget_left() const { return trials() < plan_.max_trials; }
  std::vector<PlanTrial>& history() { return history_; }

  std::int64_t unit_of(std::size_t i) const {
    return std::lcm(pools_[i]->gpus_per_node, replica_lcm_);
  }
  std::int64_t max_units(std::size_t i) const {
    return std::max(pools_[i]->max_gpus, pools_[i]->gpus) / unit_of(i);
  }

  // Level k of plan.steps: ceil(max_units * k / steps) units in every inference pool.
  Candidate at_level(std::int32_t k) const {
    Candidate c;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      if (!pools_[i]->accepts_inference()) {
        c.push_back(pools_[i]->gpus);
        continue;
      }
      const std::int64_t units = (max_units(i) * k + plan_.steps - 1) / plan_.steps;
      c.push_back(units * unit_of(i));
    }
    return c;
  }

  double cost(const Candidate& c) const {
    double total = 0;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      if (pools_[i]->accepts_inference()) {
        total += static_cast<double>(c[i]) * pools_[i]->cost_per_gpu_hour;
      }
    }
    return total;
  }

  // The simulation of `c` (run once per distinct candidate).
  Result<Evaluated> evaluate(const Candidate& c, const char* phase) {
    if (auto it = seen_.find(c); it != seen_.end()) return it->second;
    SPW_ASSIGN_OR_RETURN(SimReport report, run_simulation(apply(c), workload_, options_));
    Evaluated e;
    e.attainment = plan_attainment(report, plan_.basis);
    e.passed = e.attainment >= plan_.target_attainment;
    e.report = std::make_shared<const SimReport>(std::move(report));
    PlanTrial trial;
    trial.phase = phase;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      if (pools_[i]->accepts_inference()) trial.gpus.push_back(c[i]);
    }
    trial.cost_per_hour = cost(c);
    trial.attainment = e.attainment;
    trial.passed = e.passed;
    history_.push_back(trial);
    if (plan_.on_trial) plan_.on_trial(trial);
    seen_.emplace(c, e);
    return e;
  }

  // `c` with each inference pool cut to the GPUs its replicas held in `report` (rounded up to
  // units), and to 0 when they served no request.
  Candidate fit(const Candidate& c, const SimReport& report) const {
    Candidate out = c;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      if (!pools_[i]->accepts_inference()) continue;
      auto it = std::find_if(report.pools.begin(), report.pools.end(),
                             [&](const PoolReport& p) { return p.name == pools_[i]->name; });
      if (it == report.pools.end()) continue;
      const std::int64_t unit = unit_of(i);
      const std::int64_t held = (it->peak_gpus + unit - 1) / unit * unit;
      out[i] = it->served == 0 ? 0 : std::min(c[i], held);
    }
    return out;
  }

 private:
  fleet::FleetSpec apply(const Candidate& c) const {
    fleet::FleetSpec out = fleet_;
    std::size_t i = 0;
    for (fleet::ProviderSpec& provider : out.providers) {
      for (fleet::RegionSpec& region : provider.regions) {
        for (fleet::PoolSpec& pool : region.pools) {
          pool.gpus = c[i++];
          pool.max_gpus = std::max(pool.max_gpus, pool.gpus);
        }
      }
    }
    return out;
  }

  const fleet::FleetSpec& fleet_;
  WorkloadSpec workload_;
  SimOptions options_;
  const PlanOptions& plan_;
  std::vector<const fleet::PoolSpec*> pools_;
  std::int64_t replica_lcm_ = 1;
  std::map<Candidate, Evaluated> seen_;
  std::vector<PlanTrial> history_;
};

}  // namespace

std::string_view plan_basis_name(PlanBasis basis) {
  return basis == PlanBasis::kAdmitted ? "admitted" : "offered";
}

Result<PlanBasis> parse_plan_basis(std::string_view name) {
  if (name == "admitted") return PlanBasis::kAdmitted;
  if (name == "offered") return PlanBasis::kOffered;
  return make_error(ErrorCode::kInvalidArgument, "--plan-basis: '{}' is not admitted or offered",
                    name);
}

double plan_attainment(const SimReport& report, PlanBasis basis) {
  std::uint64_t counted = report.all.offered;
  if (basis == PlanBasis::kAdmitted) counted -= std::min(counted, report.rejected_quota);
  if (counted == 0) return 1;
  return static_cast<double>(report.all.slo_met) / static_cast<double>(counted);
}

Status PlanOptions::validate() const {
  if (!(target_attainment > 0 && target_attainment <= 1)) {
    return make_error(ErrorCode::kInvalidArgument, "--slo-target: {} is not in (0, 1]",
                      target_attainment);
  }
  if (!(headroom >= 0 && headroom <= 100)) {
    return make_error(ErrorCode::kInvalidArgument, "--headroom: {} is not in [0, 100]", headroom);
  }
  if (steps < 2 || steps > 65536) {
    return make_error(ErrorCode::kInvalidArgument, "--plan-steps: {} is not in [2, 65536]", steps);
  }
  if (max_trials < 1) {
    return make_error(ErrorCode::kInvalidArgument, "--plan-trials: {} is not >= 1", max_trials);
  }
  if (trim_probes < 0) {
    return make_error(ErrorCode::kInvalidArgument, "plan trim_probes: {} is not >= 0", trim_probes);
  }
  if (trial_duration <= Nanos{0}) {
    return Error(ErrorCode::kInvalidArgument, "plan trial_duration: not > 0");
  }
  return Status();
}

Result<PlanResult> plan_fleet(const fleet::FleetSpec& fleet, const WorkloadSpec& workload,
                              const SimOptions& options, const PlanOptions& plan) {
  SPW_TRY(plan.validate());
  Planner p(fleet, workload, options, plan);
  PlanResult result;
  result.basis = plan.basis;
  result.target_attainment = plan.target_attainment;
  result.headroom = plan.headroom;
  result.trial_duration_s = to_seconds(p.options().duration);

  // 1. Bracket: double the level from 1 until a level passes.
  std::int32_t lo = 0;  // Highest level known to fail (0: no GPUs).
  std::int32_t hi = 0;  // Lowest level known to pass (0: none yet).
  Candidate best;
  Evaluated best_eval;
  Candidate last;
  Evaluated last_eval;
  for (std::int32_t k = 1; p.budget_left(); k = std::min(2 * k, plan.steps)) {
    const Candidate c = p.at_level(k);
    SPW_ASSIGN_OR_RETURN(Evaluated e, p.evaluate(c, "bracket"));
    last = c;
    last_eval = e;
    if (e.passed) {
      hi = k;
      break;
    }
    lo = k;
    if (k == plan.steps) break;
  }
  result.met = hi > 0;
  result.out_of_trials = !result.met && lo < plan.steps;
  if (!result.met) {
    // Not met: show the largest fleet tried.
    best = last;
    best_eval = last_eval;
  } else {
    best = p.at_level(hi);
    best_eval = last_eval;
    // 2. Bisect between the last failing and the first passing level.
    while (hi - lo > 1 && p.budget_left()) {
      const std::int32_t mid = lo + (hi - lo) / 2;
      const Candidate c = p.at_level(mid);
      SPW_ASSIGN_OR_RETURN(Evaluated e, p.evaluate(c, "bisect"));
      if (e.passed) {
        hi = mid;
        best = c;
        best_eval = e;
      } else {
        lo = mid;
      }
    }
    // 3. Fit: only the GPUs the replicas held, none in pools that served nothing.
    if (p.budget_left()) {
      const Candidate c = p.fit(best, *best_eval.report);
      if (c != best) {
        SPW_ASSIGN_OR_RETURN(Evaluated e, p.evaluate(c, "fit"));
        if (e.passed) {
          best = c;
          best_eval = e;
        }
      }
    }
    // 4. Trim, most expensive GPUs first: each pool to the fewest units that still pass,
    // by bisection between 0 and its size, trying 0 first.
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < p.pools().size(); ++i) {
      if (p.pools()[i]->accepts_inference()) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return p.pools()[a]->cost_per_gpu_hour > p.pools()[b]->cost_per_gpu_hour;
    });
    // Passes until one changes nothing: cutting one pool can let another shrink further
    // (a pool of slow replicas can cost attainment rather than add to it).
    for (bool changed = true; changed && p.budget_left();) {
      changed = false;
      for (const std::size_t i : order) {
        const std::int64_t unit = p.unit_of(i);
        std::int64_t pass_units = best[i] / unit;  // Passes (the other pools as in best).
        // Highest size known to fail; 0 fails without a trial when no other pool has GPUs.
        std::int64_t fail_units = -1;
        bool others = false;
        for (const std::size_t j : order)
          others = others || (j != i && best[j] > 0);
        if (!others) fail_units = 0;
        for (std::int32_t probes = 0;
             pass_units - fail_units > 1 && probes < plan.trim_probes && p.budget_left();
             ++probes) {
          const std::int64_t units =
              fail_units < 0 ? 0 : fail_units + (pass_units - fail_units) / 2;
          Candidate c = best;
          c[i] = units * unit;
          SPW_ASSIGN_OR_RETURN(Evaluated e, p.evaluate(c, "trim"));
          if (e.passed) {
            pass_units = units;
            best = std::move(c);
            best_eval = e;
            changed = true;
          } else {
            fail_units = units;
          }
        }
      }
    }
  }
  for (std::size_t i = 0; i < p.pools().size(); ++i) {
    const fleet::PoolSpec& pool = *p.pools()[i];
    if (!pool.accepts_inference()) continue;
    result.pools.push_back(
        PlannedPool{pool.name, pool.provider, pool.gpu, best[i], pool.cost_per_gpu_hour});
    result.cost_per_hour += static_cast<double>(best[i]) * pool.cost_per_gpu_hour;
  }
  result.attainment = best_eval.attainment;
  result.trials = p.trials();
  result.history = std::move(p.history());
  result.report = *best_eval.report;
  return result;
}

std::string PlanResult::to_text() const {
  const char* outcome = met             ? "smallest fleet meeting the target"
                        : out_of_trials ? "target NOT met by any fleet tried (out of trials)"
                                        : "target NOT met even at every pool's max_gpus";
  std::string out =
      fmt::format("plan: {} after {} simulations of {:.0f} s at the peak load +{:.0f}%\n", outcome,
                  trials, trial_duration_s, headroom * 100);
  out += fmt::format(
      "  SLO attainment {:.2f}% of {} requests (target {:.2f}%); {:.2f}% of all offered, {} "
      "rejected by tenant quota\n",
      attainment * 100, plan_basis_name(basis), target_attainment * 100,
      report.slo_attainment() * 100, report.rejected_quota);
  std::map<std::string, std::pair<std::int64_t, double>> per_provider;
  for (const PlannedPool& p : pools) {
    out += fmt::format("  {:<28} {:<10} {:<6} {:>7} GPUs  {:>10.2f} /h\n", p.name, p.provider,
                       p.gpu, p.gpus, static_cast<double>(p.gpus) * p.cost_per_gpu_hour);
    per_provider[p.provider].first += p.gpus;
    per_provider[p.provider].second += static_cast<double>(p.gpus) * p.cost_per_gpu_hour;
  }
  for (const auto& [name, v] : per_provider) {
    out += fmt::format("  provider {:<19} {:>7} GPUs  {:>10.2f} /h\n", name, v.first, v.second);
  }
  out += fmt::format("  total cost {:.2f} per hour\n", cost_per_hour);
  out += "trials (GPUs per pool in the order above)\n";
  for (std::size_t t = 0; t < history.size(); ++t) {
    const PlanTrial& trial = history[t];
    out += fmt::format("  {:>3} {:<8} [{}] {:>10.2f} /h  {:>7.3f}%  {}\n", t + 1, trial.phase,
                       fmt::join(trial.gpus, " "), trial.cost_per_hour, trial.attainment * 100,
                       trial.passed ? "pass" : "fail");
  }
  return out;
}

std::string PlanResult::to_json() const {
  std::string out = fmt::format(
      R"({{"met":{},"out_of_trials":{},"trials":{},"basis":{},"target_attainment":{:.6f},"headroom":{:.6f},)"
      R"("trial_duration_s":{:.3f},"attainment":{:.6f},"cost_per_hour":{:.4f},"pools":[)",
      met ? "true" : "false", out_of_trials ? "true" : "false", trials,
      json_string(plan_basis_name(basis)), target_attainment, headroom, trial_duration_s,
      attainment, cost_per_hour);
  for (std::size_t i = 0; i < pools.size(); ++i) {
    const PlannedPool& p = pools[i];
    out +=
        fmt::format(R"({}{{"name":{},"provider":{},"gpu":{},"gpus":{},"cost_per_hour":{:.4f}}})",
                    i == 0 ? "" : ",", json_string(p.name), json_string(p.provider),
                    json_string(p.gpu), p.gpus, static_cast<double>(p.gpus) * p.cost_per_gpu_hour);
  }
  out += R"(],"history":[)";
  for (std::size_t t = 0; t < history.size(); ++t) {
    const PlanTrial& trial = history[t];
    out += fmt::format(
        R"({}{{"phase":{},"gpus":[{}],"cost_per_hour":{:.4f},"attainment":{:.6f},"passed":{}}})",
        t == 0 ? "" : ",", json_string(trial.phase), fmt::join(trial.gpus, ","),
        trial.cost_per_hour, trial.attainment, trial.passed ? "true" : "false");
  }
  return out + R"(],"report":)" + report.to_json(false) + "}";
}

}  // namespace spillway::sim
