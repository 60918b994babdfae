#include "core/clock.h"

#include <cassert>

namespace spillway {

TimePoint SteadyClock::now() const {
  return TimePoint(
      std::chrono::duration_cast<Nanos>(std::chrono::steady_clock::now().time_since_epoch()));
}

SteadyClock& SteadyClock::instance() {
  static SteadyClock clock;
  return clock;
}

TimePoint ManualClock::now() const {
  return TimePoint(Nanos(now_ns_.load(std::memory_order_acquire)));
}

void ManualClock::advance(Nanos delta) {
  assert(delta.count() >= 0);
  now_ns_.fetch_add(delta.count(), std::memory_order_acq_rel);
}

void ManualClock::set(TimePoint t) {
  assert(t >= now());
  now_ns_.store(t.time_since_epoch().count(), std::memory_order_release);
}

}  // namespace spillway
