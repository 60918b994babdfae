// cpu-local calibration: the fit recovers a known profile from its own step times, the
// statistics of timed runs by hand, option validation, and a short calibration of stories260K
// (decode, prefill, mixed steps and the idle wake-up) yields a valid profile that survives a
// TOML round trip.
#include "sim/calibrate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "test_support.h"

namespace spillway::sim {
namespace {

StepShape decode(std::int64_t batch, std::int64_t context) {
  StepShape s;
  s.decode_tokens = batch;
  s.attended_positions = batch * context;
  s.kv_positions = batch * context;
  return s;
}

StepShape prefill(std::int64_t count, std::int64_t start) {
  StepShape s;
  s.prefill_tokens = count;
  s.attended_positions = count * start + count * (count + 1) / 2;
  s.kv_positions = start + count;
  return s;
}

TEST(Calibrate, FitRecoversAKnownProfile) {
  auto model = builtin_model_profile("tinyllama-1.1b");
  ASSERT_TRUE(model.ok());
  GpuProfile truth;
  truth.name = "truth";
  truth.peak_flops = 3e14;
  truth.memory_bandwidth = 2e12;
  truth.memory_bytes = 16e9;
  truth.link_bandwidth = 1e10;
  truth.flops_efficiency = 1;
  truth.bandwidth_efficiency = 1;
  truth.step_overhead = Nanos{250'000};
  const PerfModel perf(truth, *model, 1);
  // Small decode batches are bandwidth-bound (long contexts make KV reads weigh), large ones
  // and long prefill compute-bound (late chunks make attention weigh): every rate and the
  // overhead are identifiable (each regime needs enough distinct points, or the overhead and
  // the weights' time, the same for every step, cannot be told apart).
  std::vector<StepMeasurement> points;
  for (const std::int64_t b : {1, 4, 16, 64, 256, 1024}) {
    for (const std::int64_t c : {64, 2048}) {
      points.push_back({"decode", decode(b, c), perf.step_time(decode(b, c)), Nanos{0}});
    }
  }
  for (const std::int64_t n : {16, 128, 512, 2048}) {
    for (const std::int64_t start : {0, 1536}) {
      points.push_back({"prefill", prefill(n, start), perf.step_time(prefill(n, start)), Nanos{0}});
    }
  }
  GpuProfile base = truth;
  base.name = "fitted";
  auto fit = fit_cpu_profile(*model, points, base);
  ASSERT_TRUE(fit.ok()) << fit.error().message();
  // The truth uses one FLOP rate and one bandwidth: the four fitted rates collapse onto them.
  const GpuProfile& g = fit->profile;
  EXPECT_NEAR(g.peak_flops * g.flops_efficiency / truth.peak_flops, 1, 0.02);
  EXPECT_NEAR(g.peak_flops * g.effective_attention_efficiency() / truth.peak_flops, 1, 0.02);
  EXPECT_NEAR(g.memory_bandwidth * g.bandwidth_efficiency / truth.memory_bandwidth, 1, 0.02);
  EXPECT_NEAR(g.memory_bandwidth * g.effective_kv_bandwidth_efficiency() / truth.memory_bandwidth,
              1, 0.02);
  EXPECT_NEAR(to_seconds(g.step_overhead), to_seconds(truth.step_overhead), 10e-6);
  EXPECT_EQ(g.name, "fitted");
  EXPECT_LT(fit->max_abs_error, 0.01);
  ASSERT_EQ(fit->points.size(), points.size());
  for (const StepMeasurement& p : fit->points)
    EXPECT_NEAR(p.relative_error(), 0, 0.01) << p.label;

  // Too few points, or a step without time, cannot be fitted.
  EXPECT_FALSE(fit_cpu_profile(*model, {points[0], points[1]}, base).ok());
  std::vector<StepMeasurement> zero = points;
  zero[3].measured = Nanos{0};
  EXPECT_FALSE(fit_cpu_profile(*model, zero, base).ok());
}

TEST(Calibrate, StatisticsOfTimedRuns) {
  using S = CalibrationStatistic;
  EXPECT_EQ(apply_statistic(S::kMin, {5, 3, 9}), 3);
  EXPECT_EQ(apply_statistic(S::kMedian, {5, 3, 9}), 5);
  // Even count: the mean of the two middle runs, (4 + 5) / 2.
  EXPECT_EQ(apply_statistic(S::kMedian, {9, 4, 1, 5}), 4.5);
  // One run stretched 100x by another process moves the mean, not the median.
  EXPECT_EQ(apply_statistic(S::kMedian, {10, 11, 1000, 12, 10}), 11);
  EXPECT_EQ(apply_statistic(S::kMean, {10, 11, 1000, 12, 10}), 1043.0 / 5);
  EXPECT_EQ(apply_statistic(S::kMedian, {}), 0);
  EXPECT_EQ(apply_statistic(S::kMedian, {7}), 7);

  for (const S s : {S::kMin, S::kMedian, S::kMean}) {
    auto back = parse_calibration_statistic(calibration_statistic_name(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  auto bad = parse_calibration_statistic("p90");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("p90"), std::string::npos);
}

TEST(Calibrate, OptionsAreValidated) {
  CalibrationOptions o;
  EXPECT_TRUE(validate_calibration_options(o).ok());
  o.threads = 0;
  EXPECT_NE(validate_calibration_options(o).error().message().find("threads"), std::string::npos);
  o = CalibrationOptions();
  o.decode_batches.clear();
  EXPECT_NE(validate_calibration_options(o).error().message().find("decode_batches"),
            std::string::npos);
  o = CalibrationOptions();
  o.prefill_chunks = {0};
  EXPECT_NE(validate_calibration_options(o).error().message().find("prefill_chunks"),
            std::string::npos);
  o = CalibrationOptions();
  o.repetitions = 0;
  EXPECT_NE(validate_calibration_options(o).error().message().find("repetitions"),
            std::string::npos);
  // Prefill may start at position 0, not before; mixed steps may be switched off (empty).
  o = CalibrationOptions();
  o.prefill_starts = {0};
  o.mixed_chunks.clear();
  EXPECT_TRUE(validate_calibration_options(o).ok());
  o.prefill_starts = {-1};
  EXPECT_NE(validate_calibration_options(o).error().message().find("prefill_starts"),
            std::string::npos);
  o = CalibrationOptions();
  o.mixed_batches = {0};
  EXPECT_NE(validate_calibration_options(o).error().message().find("mixed_batches"),
            std::string::npos);
  o = CalibrationOptions();
  o.idle_repetitions = -1;
  EXPECT_NE(validate_calibration_options(o).error().message().find("idle_repetitions"),
            std::string::npos);
  o = CalibrationOptions();
  o.idle_gap = Nanos{0};
  EXPECT_NE(validate_calibration_options(o).error().message().find("idle_gap"), std::string::npos);
  o = CalibrationOptions();
  o.idle_probe_tokens = 0;
  EXPECT_NE(validate_calibration_options(o).error().message().find("idle_probe_tokens"),
            std::string::npos);
}

TEST(Calibrate, Stories260KCalibratesAndRoundTrips) {
  const std::string path = testing::shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(path);
  engine::ModelLoadOptions load;
  load.path = path;
  auto model = engine::Model::load(load);
  ASSERT_TRUE(model.ok()) << model.error().message();
  CalibrationOptions o;
  o.threads = 1;
  o.decode_batches = {1, 4};
  o.decode_contexts = {16, 128};
  o.prefill_chunks = {8, 32};
  o.prefill_starts = {0, 128, 2040};  // 2040 + 32 is beyond the 2048-token context: skipped.
  o.mixed_chunks = {8};
  o.mixed_batches = {2};
  o.mixed_context = 16;
  o.repetitions = 3;
  o.idle_repetitions = 2;
  o.idle_gap = Nanos{1'000'000};
  o.idle_probe_tokens = 8;
  o.memory_bytes = 1e9;
  auto report = calibrate_cpu_local(**model, o);
  ASSERT_TRUE(report.ok()) << report.error().message();
  // 2 batches x 2 contexts of decode, 2 chunks x 2 starts of prefill (and 2040 + 8 only), one
  // mixed step.
  ASSERT_EQ(report->points.size(), 10u);
  for (const StepMeasurement& p : report->points) {
    EXPECT_GT(p.measured, Nanos{0}) << p.label;
    EXPECT_GT(p.fitted, Nanos{0}) << p.label;
  }
  // The mixed step: 8 prompt tokens from 0 (attending 36 positions) beside 2 sequences decoding
  // at position 16 (17 positions each); KV read: 8 + 2 * 17.
  const StepMeasurement& mixed = report->points.back();
  EXPECT_EQ(mixed.label, "mixed 8 + b=2 ctx=17");
  EXPECT_EQ(mixed.shape.prefill_tokens, 8);
  EXPECT_EQ(mixed.shape.decode_tokens, 2);
  EXPECT_EQ(mixed.shape.attended_positions, 36 + 34);
  EXPECT_EQ(mixed.shape.kv_positions, 8 + 34);
  EXPECT_EQ(report->points[4].label, "prefill 8 @0");
  EXPECT_EQ(report->points[8].label, "prefill 8 @2040");
  EXPECT_EQ(report->points[8].shape.attended_positions, 8 * 2040 + 36);
  // The idle wake-up was timed and is the cold step's excess over the warm one, or 0.
  EXPECT_GT(report->idle_cold, Nanos{0});
  EXPECT_GT(report->idle_warm, Nanos{0});
  EXPECT_EQ(report->profile.idle_wake, std::max(Nanos{0}, report->idle_cold - report->idle_warm));
  EXPECT_NE(report->to_text().find("idle wake-up"), std::string::npos);
  EXPECT_EQ(report->model.n_layer, 5);
  EXPECT_EQ(report->profile.name, "cpu-local");
  EXPECT_EQ(report->profile.memory_bytes, 1e9);
  EXPECT_TRUE(report->profile.validate().ok());
  EXPECT_NE(report->to_text().find("decode b=4 ctx=129"), std::string::npos);

  const auto dir = testing::temp_dir("calibrate_roundtrip");
  const std::string out = (dir / "cpu-local.toml").string();
  ASSERT_TRUE(write_gpu_profile(report->profile, out).ok());
  auto back = load_gpu_profile(out);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->peak_flops, report->profile.peak_flops);
  EXPECT_EQ(back->memory_bandwidth, report->profile.memory_bandwidth);
  EXPECT_EQ(back->step_overhead, report->profile.step_overhead);
  EXPECT_EQ(back->idle_wake, report->profile.idle_wake);
  EXPECT_EQ(back->source, report->profile.source);
  // The loaded profile predicts the same step times as the fitted one.
  const PerfModel a(report->profile, report->model, 1);
  const PerfModel b(*back, report->model, 1);
  for (const StepMeasurement& p : report->points)
    EXPECT_EQ(a.step_time(p.shape), b.step_time(p.shape)) << p.label;

  // Without idle wake-ups the term stays 0.
  o.idle_repetitions = 0;
  auto no_idle = calibrate_cpu_local(**model, o);
  ASSERT_TRUE(no_idle.ok()) << no_idle.error().message();
  EXPECT_EQ(no_idle->profile.idle_wake, Nanos{0});
  EXPECT_EQ(no_idle->idle_cold, Nanos{0});
}

}  // namespace
}  // namespace spillway::sim
