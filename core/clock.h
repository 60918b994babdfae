// Time behind an interface, so that policy code (routing, admission, autoscaling) runs
// unchanged on real time in production and on simulated time in `spillway sim` and in tests.
// Policy code never calls std::chrono clocks directly; it takes a `Clock&`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace spillway {

// Monotonic time in nanoseconds since an arbitrary, per-clock epoch.
using Nanos = std::chrono::nanoseconds;
using TimePoint = std::chrono::time_point<struct ClockTag, Nanos>;

// Safe for concurrent use (all implementations).
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint now() const = 0;
};

// The process's monotonic clock (std::chrono::steady_clock).
class SteadyClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const override;
  // A process-wide instance.
  static SteadyClock& instance();
};

// A clock that moves only when told to: for tests and the simulator.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{}) : now_ns_(start.time_since_epoch().count()) {}

  [[nodiscard]] TimePoint now() const override;
  // REQUIRES: delta >= 0 (time never goes backwards).
  void advance(Nanos delta);
  // REQUIRES: t >= now().
  void set(TimePoint t);

 private:
  std::atomic<std::int64_t> now_ns_;
};

[[nodiscard]] inline double to_seconds(Nanos d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace spillway
