#include "net/poll_window.h"

#include <algorithm>

namespace spillway::net {

void PollWindow::slept(std::chrono::nanoseconds gap) {
  if (gap <= cap_) {
    long_in_a_row_ = 0;
    window_ = std::min(cap_, std::max(window_ * 2, std::chrono::nanoseconds(kGrowStart)));
  } else if (++long_in_a_row_ >= kShrinkAfter) {
    long_in_a_row_ = 0;
    window_ /= 2;
    if (window_ < kGrowStart) window_ = std::chrono::nanoseconds(0);
  }
}

}  // namespace spillway::net
