// Calibration of the `cpu-local` profile: times real steps of the engine (the batch forward
// pass `spillway serve` runs, plus the work on each sampled row; below) over a grid of step
// shapes, and fits the profile's free parameters so that PerfModel::step_time (tensor
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
// What a step costs here is what the serving engine's step costs: the forward pass, then for
// every sampled row what ServingEngine::on_logits does (sampling with the engine's Sampler,
// streaming detokenization, pushing the token to a RequestStream whose listener drains it).
//
// The grid: pure decode of 1..N sequences at several context lengths, single prefill chunks of
// several sizes from several start positions, and mixed steps (a prompt chunk from position 0
// beside decoding sequences, as continuous batching runs them). Each point is the `statistic`
// (median by default: robust to a few runs stretched by other processes) of `repetitions`
// timed runs after `warmup` untimed ones. The KV cache holds whatever the previous runs left
// (values do not change the cost of a step).
//
// Idle wake-up (GpuProfile::idle_wake): the serving engine's thread sleeps while no request is
// in flight; a request arriving then waits for the thread to wake, and the first step runs with
// caches that other work has refilled in the meantime. Measured as the engine does it: a
// worker thread waits on a condition variable; after `idle_gap` of sleep the calibration
// notifies it and times until the worker has run one step (a prefill chunk of
// `idle_probe_tokens` from position 0, plus its sampled row); the same step timed back to back
// on the awake worker is subtracted. idle_wake = statistic(cold) - statistic(warm), at least 0.
//
// Thread-safety: runs alone (it uses its own thread pool of `threads`, and one worker thread
// for the idle wake-up); wall-clock timing by default, so results vary from run to run and
// machine to machine. Not for simulation hot paths.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "engine/model.h"

#include "sim/perf_model.h"

namespace spillway::sim {

// How the timed runs of one grid point become its measurement.
enum class CalibrationStatistic {
  kMin,     // The fastest run: what a step costs with no interference at all.
  kMedian,  // The middle run (the mean of the two middle ones): the typical step, robust to a
            // minority of runs stretched by other processes.
  kMean,    // Every run counts, interference included.
};
// "min", "median", "mean"; kInvalidArgument otherwise.
[[nodiscard]] Result<CalibrationStatistic> parse_calibration_statistic(std::string_view name);
[[nodiscard]] std::string_view calibration_statistic_name(CalibrationStatistic statistic);
// The statistic of `values`; 0 when empty. Not sorted in place.
[[nodiscard]] double apply_statistic(CalibrationStatistic statistic, std::vector<double> values);

struct CalibrationOptions {
  std::int32_t threads = 1;
  // Decode: every batch at every context (the decoding token's position; clipped to the
  // model's context).
  std::vector<std::int32_t> decode_batches = {1, 2, 4, 8, 16};
  std::vector<std::int32_t> decode_contexts = {32, 64, 128, 256, 512, 1024};
  // Prefill: every chunk from every start position (pairs beyond the context are skipped).
  std::vector<std::int32_t> prefill_chunks = {16, 32, 64, 128, 256};
  std::vector<std::int32_t> prefill_starts = {0, 256, 1024};
  // Mixed steps: every chunk (from position 0) beside every batch of sequences decoding at
  // mixed_context. Empty = none.
  std::vector<std::int32_t> mixed_chunks = {32, 128};
  std::vector<std::int32_t> mixed_batches = {1, 4};
  std::int32_t mixed_context = 128;
  std::int32_t repetitions = 9;  // Timed runs per grid point; 1..1000.
  std::int32_t warmup = 1;       // Untimed runs per grid point; 0..1000.
  CalibrationStatistic statistic = CalibrationStatistic::kMedian;
  // Idle wake-up: idle_repetitions cold wake-ups (0 = do not measure; idle_wake stays 0), each
  // after idle_gap of sleep, on a prefill chunk of idle_probe_tokens.
  std::int32_t idle_repetitions = 15;  // 0..1000.
  Nanos idle_gap{50'000'000};          // (0, 10 s].
  std::int32_t idle_probe_tokens = 64;
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
  // The idle wake-up measurement (0 when not measured): the probe step after idle_gap of sleep,
  // counted from the notification, and the same step on an awake thread.
  Nanos idle_cold{0};
  Nanos idle_warm{0};
  [[nodiscard]] std::string to_text() const;  // One line per point, then the profile.
};

// The ModelProfile of a loaded model: its hyper-parameters, and the bytes per parameter of the
// matrices a step reads.
[[nodiscard]] ModelProfile model_profile_of(const engine::Model& model);

// Fits the overhead and the four rates to measured steps (their `measured` field) of `model`; fills
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
