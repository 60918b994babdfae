// `spillway sim --plan`: the smallest fleet, in GPUs per pool, that meets the SLOs at the
// workload's peak with headroom.
//
// The workload is run at (1 + headroom) times its load (trace: rate x; mau: users x). Each
// candidate fleet sets every inference-capable pool to a number of GPUs within [0, max_gpus]
// in whole units (unit = lcm(gpus_per_node, the largest gpus_per_replica)) and is simulated
// with the pools filled (StartReplicas::kFill) and autoscaling off. A candidate meets the
// target when its SLO attainment (requests finishing within both SLOs / requests offered) is
// at least target_attainment.
//
// Search: binary search on a fleet-wide fraction k / steps of every pool's max_gpus for the
// smallest passing k; then greedy trimming, most expensive GPU first: a pool loses a quarter of
// its GPUs (at least one unit) while the target still holds, until max_trials simulations in
// all. Pools that are not inference-capable keep their size and are not priced.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

#include "fleet/fleet_spec.h"

#include "sim/simulator.h"

namespace spillway::sim {

struct PlanOptions {
  double target_attainment = 0.99;  // (0, 1].
  double headroom = 0.2;            // >= 0.
  std::int32_t steps = 16;          // Binary-search resolution, [2, 1024].
  std::int32_t max_trials = 24;     // Simulations in all, >= 1.
  [[nodiscard]] Status validate() const;
};

struct PlannedPool {
  std::string name, provider, gpu;
  std::int64_t gpus = 0;
  double cost_per_gpu_hour = 0;
};

struct PlanResult {
  bool met = false;  // false: even every pool at max_gpus misses the target (the max is shown).
  std::vector<PlannedPool> pools;  // Inference-capable pools, fleet order.
  double cost_per_hour = 0;        // Sum of gpus x cost_per_gpu_hour over them.
  std::int32_t trials = 0;
  SimReport report;  // Of the chosen fleet.

  [[nodiscard]] std::string to_text() const;
  [[nodiscard]] std::string to_json() const;
};

// Errors as run_simulation.
[[nodiscard]] Result<PlanResult> plan_fleet(const fleet::FleetSpec& fleet,
                                            const WorkloadSpec& workload, const SimOptions& options,
                                            const PlanOptions& plan);

}  // namespace spillway::sim
