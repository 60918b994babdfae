#include "net/poll_window.h"

#include <gtest/gtest.h>

namespace spillway::net {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST(PollWindow, StartsClosedAndAZeroCapNeverPolls) {
  PollWindow off(microseconds(0));
  EXPECT_EQ(off.window(), nanoseconds(0));
  for (int i = 0; i < 10; ++i)
    off.slept(microseconds(1));
  EXPECT_EQ(off.window(), nanoseconds(0));
  EXPECT_EQ(PollWindow(microseconds(50)).window(), nanoseconds(0));
}

// Gaps a longer window would have caught open it: from kGrowStart, doubling, up to the cap.
TEST(PollWindow, ShortGapsGrowTheWindowUpToTheCap) {
  PollWindow w(microseconds(50));
  w.slept(microseconds(30));
  EXPECT_EQ(w.window(), PollWindow::kGrowStart);
  w.slept(microseconds(30));
  EXPECT_EQ(w.window(), microseconds(20));
  w.slept(microseconds(30));
  EXPECT_EQ(w.window(), microseconds(40));
  w.slept(microseconds(50));  // The cap itself still counts as catchable.
  EXPECT_EQ(w.window(), microseconds(50));
  w.slept(microseconds(50));
  EXPECT_EQ(w.window(), microseconds(50));
}

// A cap below kGrowStart opens straight to the cap.
TEST(PollWindow, ACapBelowTheGrowStartOpensToTheCap) {
  PollWindow w(microseconds(4));
  w.slept(microseconds(3));
  EXPECT_EQ(w.window(), microseconds(4));
  for (int i = 0; i < PollWindow::kShrinkAfter; ++i)
    w.slept(microseconds(5));
  EXPECT_EQ(w.window(), nanoseconds(0));  // Halved, and below kGrowStart that is closed.
}

// Gaps no allowed window would catch (an LLM replica's answer, milliseconds away) halve the
// window, kShrinkAfter in a row at a time, and below kGrowStart close it: the loop then sleeps
// at once, burning nothing.
TEST(PollWindow, GapsBeyondTheCapCloseTheWindow) {
  static_assert(PollWindow::kShrinkAfter == 2);
  PollWindow w(microseconds(100));
  for (int i = 0; i < 4; ++i)
    w.slept(microseconds(90));
  ASSERT_EQ(w.window(), microseconds(80));
  const auto llm = std::chrono::milliseconds(3);
  w.slept(llm);
  EXPECT_EQ(w.window(), microseconds(80));
  w.slept(llm);
  EXPECT_EQ(w.window(), microseconds(40));
  w.slept(llm);
  w.slept(llm);
  EXPECT_EQ(w.window(), microseconds(20));
  w.slept(llm);
  w.slept(llm);
  EXPECT_EQ(w.window(), microseconds(10));
  w.slept(llm);
  w.slept(llm);
  EXPECT_EQ(w.window(), nanoseconds(0));
  for (int i = 0; i < 10; ++i)
    w.slept(llm);
  EXPECT_EQ(w.window(), nanoseconds(0));
}

// A stray long gap among short ones (a peer descheduled for a moment) leaves the window open;
// long gaps count only in a row, and a gap polling caught breaks the row.
TEST(PollWindow, LongGapsCountOnlyInARow) {
  PollWindow w(microseconds(64));
  for (int i = 0; i < 5; ++i)
    w.slept(microseconds(60));
  ASSERT_EQ(w.window(), microseconds(64));
  for (int i = 0; i < 10; ++i) {
    w.slept(std::chrono::seconds(1));
    w.slept(microseconds(60));
  }
  EXPECT_EQ(w.window(), microseconds(64));
  for (int i = 0; i < 10; ++i) {
    w.slept(std::chrono::seconds(1));
    w.caught();
  }
  EXPECT_EQ(w.window(), microseconds(64));
  w.slept(std::chrono::seconds(1));
  w.slept(std::chrono::seconds(1));
  EXPECT_EQ(w.window(), microseconds(32));
  w.slept(microseconds(60));
  EXPECT_EQ(w.window(), microseconds(64));
}

}  // namespace
}  // namespace spillway::net
