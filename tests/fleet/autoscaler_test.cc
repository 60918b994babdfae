#include "fleet/autoscaler.h"

#include <gtest/gtest.h>

namespace spillway::fleet {
namespace {

using std::chrono::seconds;

ModelSpec model(std::int64_t min_replicas, std::int64_t max_replicas) {
  ModelSpec m;
  m.name = "m";
  m.min_replicas = min_replicas;
  m.max_replicas = max_replicas;
  m.slo_ttft_ms = 1000;
  return m;
}

AutoscaleSample busy(std::int64_t replicas) {
  return AutoscaleSample{
      .waiting = 10 * replicas, .kv_usage = 0.5, .ttft_p50_s = 0.5, .replicas = replicas};
}
AutoscaleSample idle(std::int64_t replicas) {
  return AutoscaleSample{.waiting = 0, .kv_usage = 0.1, .ttft_p50_s = 0.1, .replicas = replicas};
}
AutoscaleSample middling(std::int64_t replicas) {
  return AutoscaleSample{
      .waiting = replicas, .kv_usage = 0.6, .ttft_p50_s = 0.6, .replicas = replicas};
}

// Feeds `sample` every 5 s for `duration`; returns the last desired count.
std::int64_t feed(Autoscaler& scaler, ManualClock& clock, Nanos duration,
                  const AutoscaleSample& sample) {
  std::int64_t desired = scaler.desired();
  for (Nanos t{0}; t < duration; t += seconds(5)) {
    clock.advance(seconds(5));
    desired = scaler.observe(sample);
  }
  return desired;
}

TEST(Autoscaler, StartsAtMinReplicas) {
  ManualClock clock;
  Autoscaler scaler(model(2, 5), AutoscalerOptions{}, clock);
  EXPECT_EQ(scaler.desired(), 2);
}

TEST(Autoscaler, BriefSpikeDoesNotScale) {
  ManualClock clock;
  Autoscaler scaler(model(1, 5), AutoscalerOptions{}, clock);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(feed(scaler, clock, seconds(25), busy(1)), 1);  // Shorter than the 30 s window.
    EXPECT_EQ(feed(scaler, clock, seconds(5), middling(1)), 1);
  }
}

TEST(Autoscaler, ScalesOutAfterTheWindowOneStepAtATime) {
  ManualClock clock;
  Autoscaler scaler(model(1, 5), AutoscalerOptions{}, clock);
  clock.advance(seconds(1));
  EXPECT_EQ(scaler.observe(busy(1)), 1);
  clock.advance(seconds(29));
  EXPECT_EQ(scaler.observe(busy(1)), 1);
  clock.advance(seconds(1));
  EXPECT_EQ(scaler.observe(busy(1)), 2);  // 30 s of pressure.
  // The new replica has not landed: no further step, however long the pressure.
  EXPECT_EQ(feed(scaler, clock, seconds(200), busy(1)), 2);
  // Landed: the window restarts, and the 60 s cooldown has long passed.
  clock.advance(seconds(5));
  EXPECT_EQ(scaler.observe(busy(2)), 2);
  clock.advance(seconds(30));
  EXPECT_EQ(scaler.observe(busy(2)), 3);
}

TEST(Autoscaler, CooldownHoldsTheNextStep) {
  ManualClock clock;
  AutoscalerOptions options;
  options.scale_out_window = seconds(10);
  options.cooldown = seconds(60);
  Autoscaler scaler(model(1, 5), options, clock);
  scaler.observe(busy(1));
  clock.advance(seconds(10));
  EXPECT_EQ(scaler.observe(busy(1)), 2);
  // Replica arrives at once; pressure goes on. The window (10 s) passes but not the cooldown.
  clock.advance(seconds(5));
  EXPECT_EQ(scaler.observe(busy(2)), 2);
  clock.advance(seconds(30));
  EXPECT_EQ(scaler.observe(busy(2)), 2);
  clock.advance(seconds(25));  // 60 s after the change.
  EXPECT_EQ(scaler.observe(busy(2)), 3);
}

TEST(Autoscaler, EachSignalAloneIsPressure) {
  for (const AutoscaleSample& s :
       {AutoscaleSample{.waiting = 9, .kv_usage = 0, .ttft_p50_s = 0, .replicas = 2},
        AutoscaleSample{.waiting = 0, .kv_usage = 0.9, .ttft_p50_s = 0, .replicas = 2},
        AutoscaleSample{.waiting = 0, .kv_usage = 0, .ttft_p50_s = 1.2, .replicas = 2}}) {
    ManualClock clock;
    Autoscaler scaler(model(2, 5), AutoscalerOptions{}, clock);
    EXPECT_EQ(feed(scaler, clock, seconds(40), s), 3);
  }
}

TEST(Autoscaler, ScalesInOnlyAfterTheLongCalmWindow) {
  ManualClock clock;
  Autoscaler scaler(model(1, 5), AutoscalerOptions{}, clock);
  scaler.observe(busy(1));
  clock.advance(seconds(30));
  ASSERT_EQ(scaler.observe(busy(1)), 2);
  EXPECT_EQ(feed(scaler, clock, seconds(295), idle(2)), 2);
  // An interruption restarts the calm window.
  EXPECT_EQ(feed(scaler, clock, seconds(5), middling(2)), 2);
  EXPECT_EQ(feed(scaler, clock, seconds(295), idle(2)), 2);
  EXPECT_EQ(feed(scaler, clock, seconds(10), idle(2)), 1);
}

TEST(Autoscaler, StaysWithinBounds) {
  ManualClock clock;
  Autoscaler scaler(model(2, 3), AutoscalerOptions{}, clock);
  std::int64_t desired = 2;
  for (int i = 0; i < 20; ++i)
    desired = feed(scaler, clock, seconds(120), busy(desired));
  EXPECT_EQ(desired, 3);
  for (int i = 0; i < 20; ++i)
    desired = feed(scaler, clock, seconds(600), idle(desired));
  EXPECT_EQ(desired, 2);
}

TEST(Autoscaler, OptionsAreValidated) {
  EXPECT_TRUE(AutoscalerOptions{}.validate().ok());
  AutoscalerOptions bad;
  bad.scale_in_kv_usage = 0.9;
  EXPECT_EQ(bad.validate().code(), ErrorCode::kInvalidArgument);
  bad = AutoscalerOptions{};
  bad.scale_out_waiting_per_replica = -1;
  EXPECT_EQ(bad.validate().error().message(),
            "autoscaler.scale_out_waiting_per_replica: -1 is not a finite value >= 0");
  bad = AutoscalerOptions{};
  bad.cooldown = seconds(-1);
  EXPECT_FALSE(bad.validate().ok());
}

}  // namespace
}  // namespace spillway::fleet
