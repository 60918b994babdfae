// `spillway sim --plan`: the smallest fleet, in GPUs per pool, that meets the SLOs at the
// workload's peak with headroom.
//
// The workload is run at (1 + headroom) times its load (trace: rate x; mau: users x) for
// SimOptions::duration of arrivals (PlanOptions::trial_duration when that is 0). Each candidate
// fleet sets every inference-capable pool to a number of GPUs within [0, max_gpus] in whole
// units (unit = lcm(gpus_per_node, the largest gpus_per_replica)) and is simulated with the
// pools filled (StartReplicas::kFill) and autoscaling off. A candidate passes when its SLO
// attainment is at least target_attainment, where attainment is (PlanBasis):
//   kAdmitted  requests finishing within both SLOs / (offered - rejected by tenant quota):
//              a quota refusal is the tenant's contract (a 429 by design), not missing
//              capacity, so it is neither a miss nor a hit. Queue rejections, failures and
//              unfinished requests are misses.
//   kOffered   requests finishing within both SLOs / offered (SimReport::slo_attainment):
//              every rejection is a miss; a fleet with rate-limited tenants over their quota
//              can then never reach a high target.
//
// Search (at most max_trials simulations; identical candidates are simulated once):
//   1. bracket  a fleet-wide level k of `steps`: every pool gets ceil(max_gpus / unit * k /
//               steps) units. k = 1, 2, 4, ... (doubling) until a level passes; small fleets
//               simulate fast, so the search climbs from below instead of starting at the
//               largest fleet. If k = steps fails the target is not met (result.met = false,
//               the largest fleet is shown). (A lower bound from the performance model alone
//               would need the prefix-cache hits and the quota-admitted load, which only the
//               simulation knows; doubling costs log2(k) trials, most of them small.)
//   2. bisect   binary search on k between the last failing and the first passing level.
//   3. fit      each pool shrinks to the GPUs its replicas held in the best trial (rounded up
//               to units), and a pool whose replicas served no request drops to 0: one trial.
//   4. trim     most expensive GPU first, one pool at a time (the others as in the best
//               fleet so far): try the pool at 0 (unless it is the only pool left), then
//               bisect its units between the largest size known to fail and the smallest
//               known to pass, at most trim_probes simulations per pool and pass; passes
//               repeat while one changes something (removing a pool of slow replicas can
//               raise attainment and let another pool shrink).
// Pools that are not inference-capable keep their size and are not priced.
//
// Thread-safety: reentrant. on_trial is called on the caller's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/fleet_spec.h"

#include "sim/simulator.h"

namespace spillway::sim {

enum class PlanBasis { kAdmitted, kOffered };

// "admitted", "offered".
[[nodiscard]] std::string_view plan_basis_name(PlanBasis basis);
[[nodiscard]] Result<PlanBasis> parse_plan_basis(std::string_view name);

// One simulated candidate.
struct PlanTrial {
  std::string phase;               // "bracket", "bisect", "fit", "trim".
  std::vector<std::int64_t> gpus;  // Per inference-capable pool, fleet order.
  double cost_per_hour = 0;        // Sum of gpus x cost_per_gpu_hour.
  double attainment = 0;           // On the plan's basis.
  bool passed = false;
};

struct PlanOptions {
  double target_attainment = 0.99;  // (0, 1].
  double headroom = 0.2;            // [0, 100].
  PlanBasis basis = PlanBasis::kAdmitted;
  std::int32_t steps = 1024;     // Resolution of the fleet-wide level, [2, 65536].
  std::int32_t max_trials = 32;  // Simulations in all, >= 1.
  std::int32_t trim_probes = 4;  // Trim simulations per pool and pass, >= 0.
  // Arrivals per trial when SimOptions::duration is 0 (> 0): a mau workload would otherwise
  // simulate its whole span (an hour by default) per trial.
  Nanos trial_duration = std::chrono::seconds(120);
  // Called after each simulation (progress; may be empty).
  std::function<void(const PlanTrial&)> on_trial;
  [[nodiscard]] Status validate() const;
};

// Attainment of `report` on `basis` (1 when no request counts: nothing to serve).
[[nodiscard]] double plan_attainment(const SimReport& report, PlanBasis basis);

struct PlannedPool {
  std::string name, provider, gpu;
  std::int64_t gpus = 0;
  double cost_per_gpu_hour = 0;
};

struct PlanResult {
  // false: no fleet tried met the target: the largest one tried is shown. That is every pool
  // at max_gpus unless out_of_trials.
  bool met = false;
  bool out_of_trials = false;      // max_trials ran out before any level passed.
  std::vector<PlannedPool> pools;  // Inference-capable pools, fleet order.
  double cost_per_hour = 0;        // Sum of gpus x cost_per_gpu_hour over them.
  double attainment = 0;           // Of the chosen fleet, on `basis`.
  PlanBasis basis = PlanBasis::kAdmitted;
  double target_attainment = 0;
  double headroom = 0;
  double trial_duration_s = 0;  // Arrivals simulated per trial.
  std::int32_t trials = 0;      // Simulations run (== history.size()).
  std::vector<PlanTrial> history;
  SimReport report;  // Of the chosen fleet.

  [[nodiscard]] std::string to_text() const;
  [[nodiscard]] std::string to_json() const;
};

// Errors as run_simulation, and kInvalidArgument for bad PlanOptions.
[[nodiscard]] Result<PlanResult> plan_fleet(const fleet::FleetSpec& fleet,
                                            const WorkloadSpec& workload, const SimOptions& options,
                                            const PlanOptions& plan);

}  // namespace spillway::sim
