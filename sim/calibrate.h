// Calibration of the `cpu-local` profile: times real forward steps of the engine (the batch
// forward pass `spillway serve` runs, plus greedy sampling of each logits row) over a grid of
// step shapes, and fits the profile's free parameters so that PerfModel::step_time (tensor
// parallel 1) reproduces them:
//   step_overhead          the fixed cost of a step,
//   matrix FLOP/s          peak_flops * flops_efficiency,
//   attention FLOP/s       peak_flops * attention_efficiency (the faster of the two is the
//                          peak; on a CPU attention runs far below the matrix kernels' rate),
//   weight bytes/s         memory_bandwidth * bandwidth_efficiency,
//   KV-read bytes/s        memory_bandwidth * kv_bandwidth_efficiency (the faster of the two is
//                          the peak; on a CPU many sequences' KV reads miss the caches that the
//                          one weight stream per step is prefetched through).
// The fit minimizes the squared relative error over the grid: for given rates the best overhead
// has a closed form (a weighted mean of the residuals, clamped at 0), and the four rates are
// found by a coarse-to-fine search over log-spaced grids. Every grid point's measured
// and fitted times are reported, so the quality of the fit is visible.
//
// The grid: pure decode of 1..N sequences at a few context lengths, and single prefill chunks
// of a few sizes from position 0 and from the largest decode context. Each point is the fastest
// of `repetitions` timed runs after `warmup` untimed ones (on a shared machine, interference
// only adds time). The KV cache holds whatever the
// previous runs left (values do not change the cost of a step).
//
// Thread-safety: runs alone (it uses its own thread pool of `threads`); wall-clock timing, so
// results vary from run to run and machine to machine. Not for simulation hot paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "engine/model.h"

#include "sim/perf_model.h"

namespace spillway::sim {

struct CalibrationOptions {
  std::int32_t threads = 1;
  std::vector<std::int32_t> decode_batches = {1, 2, 4, 8, 16};
  std::vector<std::int32_t> decode_contexts = {64, 256, 1024};  // Clipped to the model's context.
  std::vector<std::int32_t> prefill_chunks = {16, 64, 256};     // Clipped likewise.
  std::int32_t repetitions = 5;  // Timed runs per grid point (the fastest counts); 1..1000.
  std::int32_t warmup = 1;       // Untimed runs per grid point; 0..1000.
  std::int32_t block_tokens = 16;
  // Time steps by the calling thread's CPU time instead of the wall clock; REQUIRES threads == 1.
  // On a busy machine the wall clock counts the time other processes hold the core; the CPU
  // time is what the step costs on an idle one.
  bool thread_cpu_time = false;
  double memory_bytes = 0;  // The profile's memory; 0 = this machine's physical memory.
  std::string name = "cpu-local";
};

// kInvalidArgument naming the field (empty grids, sizes < 1, too many repetitions, ...).
[[nodiscard]] Status validate_calibration_options(const CalibrationOptions& options);

// One timed step and the same step's time under the fitted profile.
struct StepMeasurement {
  std::string label;  // "decode b=4 ctx=256", "prefill 64 @0".
  StepShape shape;
  Nanos measured{0};
  Nanos fitted{0};
  [[nodiscard]] double relative_error() const;  // (fitted - measured) / measured.
};

struct CalibrationReport {
  GpuProfile profile;
  ModelProfile model;  // The model the steps ran (its hyper-parameters and weight bytes).
  std::vector<StepMeasurement> points;
  double mean_abs_error = 0;  // Mean |relative error| over the points.
  double max_abs_error = 0;
  [[nodiscard]] std::string to_text() const;  // One line per point, then the profile.
};

// The ModelProfile of a loaded model: its hyper-parameters, and the bytes per parameter of the
// matrices a step reads.
[[nodiscard]] ModelProfile model_profile_of(const engine::Model& model);

// Fits overhead and the two rates to measured steps (their `measured` field) of `model`; fills
// each point's `fitted`. `base` supplies the other fields (name, memory, source). Errors:
// kInvalidArgument for fewer than 3 points or a non-positive measurement.
[[nodiscard]] Result<CalibrationReport> fit_cpu_profile(const ModelProfile& model,
                                                        std::vector<StepMeasurement> points,
                                                        const GpuProfile& base);

// Measures the grid on `model` and fits. Errors: invalid options; engine failures (KV cache
// allocation) as the engine reports them.
[[nodiscard]] Result<CalibrationReport> calibrate_cpu_local(const engine::Model& model,
                                                            const CalibrationOptions& options);

}  // namespace spillway::sim
