#pragma once

#include <chrono>

namespace spillway::net {

// How long an event loop that has run out of ready work polls before it sleeps in the kernel
// (HttpServerOptions::busy_poll), adapted to the gaps the loop sees, after KVM's halt polling.
//
// Polling only pays when the next event comes within the window: then it saves the wake-up of
// a sleeping thread (tens of microseconds on a VM, twice per proxied request). When the next
// event comes later, every microsecond polled was burnt for nothing. So the window follows the
// gaps it sees:
//   - a gap the window caught leaves it as it is;
//   - a gap within the cap grows it (twice as long, at least kGrowStart, at most the cap),
//     since polling a little longer would have caught it;
//   - kShrinkAfter gaps in a row longer than the cap halve it (to 0 below kGrowStart), since
//     no allowed window would have caught them. One stray long gap (a descheduled peer) among
//     short ones does not: it would cost the next short gaps a wake-up each.
// A loop in front of LLM replicas, whose answers take milliseconds, closes its window after a
// few such gaps and then sleeps at once; one in front of a fast upstream settles at the window
// its gaps need.
//
// The clock is the caller's: slept() takes the measured gap. Not thread-safe: one per loop.
class PollWindow {
 public:
  static constexpr std::chrono::microseconds kGrowStart{10};
  static constexpr int kShrinkAfter = 2;

  // REQUIRES: cap >= 0. A cap of 0 never polls.
  explicit PollWindow(std::chrono::microseconds cap) : cap_(cap) {}

  // How long to poll at the next idle moment: 0 (sleep at once) to cap.
  [[nodiscard]] std::chrono::nanoseconds window() const { return window_; }

  // After an idle moment that polling ended: the window stays; a run of long gaps is broken.
  void caught() { long_in_a_row_ = 0; }

  // After an idle moment whose polling ran out of window, so that the loop slept: `gap` is how
  // long it waited for its next event, polling and sleeping.
  void slept(std::chrono::nanoseconds gap);

 private:
  std::chrono::nanoseconds cap_;
  std::chrono::nanoseconds window_{0};
  int long_in_a_row_ = 0;
};

}  // namespace spillway::net
