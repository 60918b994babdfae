#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/clock.h"
#include "core/random.h"

namespace spillway {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock;
  const TimePoint t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(milliseconds(250));
  EXPECT_EQ(clock.now() - t0, milliseconds(250));
  clock.set(t0 + seconds(10));
  EXPECT_EQ(clock.now() - t0, seconds(10));
  EXPECT_DOUBLE_EQ(to_seconds(clock.now() - t0), 10.0);
}

TEST(ManualClock, UsableThroughInterface) {
  ManualClock manual(TimePoint(seconds(5)));
  Clock& clock = manual;
  EXPECT_EQ(clock.now().time_since_epoch(), seconds(5));
  manual.advance(seconds(1));
  EXPECT_EQ(clock.now().time_since_epoch(), seconds(6));
}

TEST(SteadyClock, IsMonotonic) {
  const TimePoint a = SteadyClock::instance().now();
  const TimePoint b = SteadyClock::instance().now();
  EXPECT_LE(a, b);
}

TEST(SeededRandom, SameSeedSameSequence) {
  SeededRandom a(42), b(42), c(43);
  std::vector<std::uint64_t> va, vb, vc;
  for (int i = 0; i < 100; ++i) {
    va.push_back(a.next_u64());
    vb.push_back(b.next_u64());
    vc.push_back(c.next_u64());
  }
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
}

TEST(SeededRandom, UniformAndBelowStayInRange) {
  SeededRandom r(7);
  std::vector<int> hist(10, 0);
  double sum = 0;
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    const std::uint64_t k = r.below(10);
    ASSERT_LT(k, 10u);
    ++hist[k];
  }
  EXPECT_NEAR(sum / kN, 0.5, 0.01);
  for (int count : hist)
    EXPECT_NEAR(count, kN / 10, kN / 100);  // ±10%: far beyond noise.
}

TEST(SeededRandom, ExponentialHasRequestedMean) {
  SeededRandom r(3);
  double sum = 0;
  constexpr int kN = 200000;
  for (int i = 0; i < kN; ++i) {
    const double x = r.exponential(2.0);
    ASSERT_TRUE(std::isfinite(x));
    ASSERT_GE(x, 0.0);
    sum += x;
  }
  EXPECT_NEAR(sum / kN, 2.0, 0.05);
}

}  // namespace
}  // namespace spillway
