#include "sim/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>

namespace spillway::sim {

namespace {

struct Candidate {
  std::vector<std::int64_t> gpus;  // Per pool of fleet.pools(), in fleet order.
};

struct Planner {
  const fleet::FleetSpec& fleet;
  WorkloadSpec workload;
  SimOptions options;
  PlanOptions plan;
  std::vector<const fleet::PoolSpec*> pools;
  std::int64_t unit_per_pool_max = 1;  // gpus_per_replica lcm part
  std::int32_t trials = 0;

  std::int64_t unit_of(const fleet::PoolSpec& p) const {
    return std::lcm(p.gpus_per_node, unit_per_pool_max);
  }

  fleet::FleetSpec apply(const Candidate& c) const {
    fleet::FleetSpec out = fleet;
    std::size_t i = 0;
    for (fleet::ProviderSpec& provider : out.providers) {
      for (fleet::RegionSpec& region : provider.regions) {
        for (fleet::PoolSpec& pool : region.pools) {
          pool.gpus = c.gpus[i++];
          pool.max_gpus = std::max(pool.max_gpus, pool.gpus);
        }
      }
    }
    return out;
  }

  Result<SimReport> simulate(const Candidate& c) {
    ++trials;
    const fleet::FleetSpec candidate = apply(c);
    return run_simulation(candidate, workload, options);
  }

  bool passes(const SimReport& r) const { return r.slo_attainment() >= plan.target_attainment; }

  Candidate at_fraction(std::int32_t k) const {
    Candidate c;
    for (const fleet::PoolSpec* p : pools) {
      if (!p->accepts_inference()) {
        c.gpus.push_back(p->gpus);
        continue;
      }
      const std::int64_t unit = unit_of(*p);
      const std::int64_t max_units = std::max<std::int64_t>(p->max_gpus, p->gpus) / unit;
      const std::int64_t units = (max_units * k + plan.steps - 1) / plan.steps;
      c.gpus.push_back(units * unit);
    }
    return c;
  }

  double cost(const Candidate& c) const {
    double total = 0;
    for (std::size_t i = 0; i < pools.size(); ++i) {
      if (pools[i]->accepts_inference()) {
        total += static_cast<double>(c.gpus[i]) * pools[i]->cost_per_gpu_hour;
      }
    }
    return total;
  }
};

}  // namespace

Status PlanOptions::validate() const {
  if (!(target_attainment > 0 && target_attainment <= 1)) {
    return make_error(ErrorCode::kInvalidArgument, "--slo-target: {} is not in (0, 1]",
                      target_attainment);
  }
  if (!(headroom >= 0 && headroom <= 100)) {
    return make_error(ErrorCode::kInvalidArgument, "--headroom: {} is not in [0, 100]", headroom);
  }
  if (steps < 2 || steps > 1024) {
    return make_error(ErrorCode::kInvalidArgument, "plan steps: {} is not in [2, 1024]", steps);
  }
  if (max_trials < 1) return Error(ErrorCode::kInvalidArgument, "plan max_trials: not >= 1");
  return Status();
}

Result<PlanResult> plan_fleet(const fleet::FleetSpec& fleet, const WorkloadSpec& workload,
                              const SimOptions& options, const PlanOptions& plan) {
  SPW_TRY(plan.validate());
  Planner p{fleet, workload, options, plan, fleet.pools()};
  p.options.start = StartReplicas::kFill;
  p.options.autoscale = false;
  if (p.workload.kind == WorkloadSpec::Kind::kMau) {
    p.workload.mau =
        static_cast<std::int64_t>(static_cast<double>(p.workload.mau) * (1 + plan.headroom));
  } else {
    p.workload.rate *= 1 + plan.headroom;
  }
  for (const fleet::ModelSpec& m : fleet.models) {
    p.unit_per_pool_max = std::lcm(p.unit_per_pool_max, m.gpus_per_replica);
  }

  // Binary search on the fleet-wide fraction.
  std::int32_t lo = 0;  // Known to fail (no GPUs).
  std::int32_t hi = plan.steps;
  Candidate best = p.at_fraction(hi);
  SPW_ASSIGN_OR_RETURN(SimReport best_report, p.simulate(best));
  PlanResult result;
  result.met = p.passes(best_report);
  if (result.met) {
    while (hi - lo > 1 && p.trials < plan.max_trials) {
      const std::int32_t mid = (lo + hi) / 2;
      const Candidate c = p.at_fraction(mid);
      SPW_ASSIGN_OR_RETURN(SimReport r, p.simulate(c));
      if (p.passes(r)) {
        hi = mid;
        best = c;
        best_report = std::move(r);
      } else {
        lo = mid;
      }
    }
    // Greedy trimming, most expensive GPUs first.
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < p.pools.size(); ++i) {
      if (p.pools[i]->accepts_inference()) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return p.pools[a]->cost_per_gpu_hour > p.pools[b]->cost_per_gpu_hour;
    });
    for (const std::size_t i : order) {
      while (p.trials < plan.max_trials && best.gpus[i] > 0) {
        const std::int64_t unit = p.unit_of(*p.pools[i]);
        const std::int64_t cut = std::max(unit, (best.gpus[i] / 4) / unit * unit);
        Candidate c = best;
        c.gpus[i] = std::max<std::int64_t>(0, c.gpus[i] - cut);
        SPW_ASSIGN_OR_RETURN(SimReport r, p.simulate(c));
        if (!p.passes(r)) break;
        best = std::move(c);
        best_report = std::move(r);
      }
    }
  }
  for (std::size_t i = 0; i < p.pools.size(); ++i) {
    if (!p.pools[i]->accepts_inference()) continue;
    result.pools.push_back(PlannedPool{p.pools[i]->name, p.pools[i]->provider, p.pools[i]->gpu,
                                       best.gpus[i], p.pools[i]->cost_per_gpu_hour});
  }
  result.cost_per_hour = p.cost(best);
  result.trials = p.trials;
  result.report = std::move(best_report);
  return result;
}

std::string PlanResult::to_text() const {
  std::string out = fmt::format(
      "plan: {} after {} simulations; SLO attainment {:.2f}% at peak with headroom\n",
      met ? "smallest fleet meeting the target" : "target NOT met even at every pool's max_gpus",
      trials, report.slo_attainment() * 100);
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
  return out;
}

std::string PlanResult::to_json() const {
  std::string out = fmt::format(R"({{"met":{},"trials":{},"cost_per_hour":{:.4f},"pools":[)",
                                met ? "true" : "false", trials, cost_per_hour);
  for (std::size_t i = 0; i < pools.size(); ++i) {
    const PlannedPool& p = pools[i];
    out +=
        fmt::format(R"({}{{"name":{},"provider":{},"gpu":{},"gpus":{},"cost_per_hour":{:.4f}}})",
                    i == 0 ? "" : ",", json_string(p.name), json_string(p.provider),
                    json_string(p.gpu), p.gpus, static_cast<double>(p.gpus) * p.cost_per_gpu_hour);
  }
  return out + R"(],"report":)" + report.to_json(false) + "}";
}

}  // namespace spillway::sim
