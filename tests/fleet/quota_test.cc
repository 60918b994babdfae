#include "fleet/quota.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "core/random.h"

namespace spillway::fleet {
namespace {

using std::chrono::seconds;

TEST(Quota, RejectsOverBudgetWithRetryAfter) {
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 0}, clock);
  auto first = quota.reserve(600);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->tokens, 600);
  clock.advance(seconds(10));
  Nanos retry{0};
  auto second = quota.reserve(500, &retry);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kResourceExhausted);
  // The first charge sits in bucket [0 s, 1 s) and leaves the window at 61 s.
  EXPECT_EQ(retry, seconds(51));
  EXPECT_EQ(second.error().message(), "token quota exceeded (1000 per minute); retry after 51.0 s");
  EXPECT_TRUE(quota.reserve(400).ok());  // What fits is still admitted.
  clock.advance(seconds(50));
  EXPECT_FALSE(quota.reserve(1, &retry).ok());
  EXPECT_EQ(retry, seconds(1));
  clock.advance(seconds(1));
  EXPECT_EQ(quota.tokens_in_window(), 400);
  EXPECT_TRUE(quota.reserve(500).ok());
}

TEST(Quota, RetryAfterCountsOnlyTheChargesThatMustLeave) {
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 0}, clock);
  ASSERT_TRUE(quota.reserve(300).ok());  // t = 0
  clock.advance(seconds(20));
  ASSERT_TRUE(quota.reserve(300).ok());  // t = 20
  clock.advance(seconds(20));
  ASSERT_TRUE(quota.reserve(300).ok());  // t = 40
  Nanos retry{0};
  ASSERT_FALSE(quota.reserve(400, &retry).ok());
  EXPECT_EQ(retry, seconds(21));  // Only the t = 0 charge needs to go.
  ASSERT_FALSE(quota.reserve(700, &retry).ok());
  EXPECT_EQ(retry, seconds(41));  // The t = 0 and t = 20 charges.
  clock.advance(seconds(21));
  EXPECT_TRUE(quota.reserve(400).ok());
}

TEST(Quota, SettleReturnsTheUnusedPart) {
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 0}, clock);
  auto r = quota.reserve(600);
  ASSERT_TRUE(r.ok());
  auto unused = quota.settle(*r, 100);
  ASSERT_TRUE(unused.ok());
  EXPECT_EQ(*unused, 500);
  EXPECT_EQ(quota.tokens_in_window(), 100);
  EXPECT_TRUE(quota.reserve(900).ok());
  EXPECT_FALSE(quota.reserve(1).ok());
  // Settled twice, or released after settling: an error, and nothing changes.
  EXPECT_EQ(quota.settle(*r, 0).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(quota.release(*r).code(), ErrorCode::kNotFound);
  EXPECT_EQ(quota.tokens_in_window(), 1000);
}

TEST(Quota, SettleClampsToTheReservedAmount) {
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 0}, clock);
  auto r = quota.reserve(300);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*quota.settle(*r, 5000), 0);
  EXPECT_EQ(quota.tokens_in_window(), 300);
  auto s = quota.reserve(300);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*quota.settle(*s, -5), 300);
  EXPECT_EQ(quota.tokens_in_window(), 300);
}

TEST(Quota, ReleaseReturnsTokensAndTheRequest) {
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 1}, clock);
  auto r = quota.reserve(800);
  ASSERT_TRUE(r.ok());
  Nanos retry{0};
  auto refused = quota.reserve(1, &retry);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message(), "request quota exceeded (1 per minute); retry after 61.0 s");
  ASSERT_TRUE(quota.release(*r).ok());
  EXPECT_EQ(quota.requests_in_window(), 0);
  EXPECT_EQ(quota.tokens_in_window(), 0);
  EXPECT_TRUE(quota.reserve(1000).ok());
}

TEST(Quota, SettlingAfterTheChargeLeftTheWindowChangesNothing) {
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 0}, clock);
  auto r = quota.reserve(1000);
  ASSERT_TRUE(r.ok());
  clock.advance(seconds(61));
  auto fresh = quota.reserve(700);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(*quota.settle(*r, 10), 990);  // A long request; its charge already left.
  EXPECT_EQ(quota.tokens_in_window(), 700);
}

TEST(Quota, ImpossibleAndInvalidRequests) {
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 0}, clock);
  auto huge = quota.reserve(1001);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(quota.reserve(-1).status().code(), ErrorCode::kInvalidArgument);
  TokenQuota unlimited({}, clock);
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(unlimited.reserve(1'000'000'000).ok());
}

TEST(Quota, OpenReservationsAreBounded) {
  ManualClock clock;
  TokenQuota quota({}, clock, {.granularity = seconds(1), .max_open_reservations = 3});
  std::vector<Reservation> open;
  for (int i = 0; i < 3; ++i)
    open.push_back(*quota.reserve(1));
  EXPECT_EQ(quota.reserve(1).status().code(), ErrorCode::kResourceExhausted);
  ASSERT_TRUE(quota.release(open[0]).ok());
  EXPECT_TRUE(quota.reserve(1).ok());
}

TEST(Quota, FiftyConcurrentReservationsNeverExceedTheBudget) {
  for (int round = 0; round < 20; ++round) {
    ManualClock clock;
    TokenQuota quota({.tokens_per_minute = 1000, .requests_per_minute = 0}, clock);
    std::atomic<bool> go{false};
    std::atomic<int> admitted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 50; ++t) {
      threads.emplace_back([&] {
        while (!go.load())
          std::this_thread::yield();
        if (quota.reserve(100).ok()) ++admitted;
      });
    }
    go = true;
    for (auto& th : threads)
      th.join();
    EXPECT_EQ(admitted.load(), 10);
    EXPECT_EQ(quota.tokens_in_window(), 1000);
  }
}

// Random interleavings of reserve/settle/release on 50 threads, with time moving: in every
// 60 s interval, admitted tokens (as finally settled) and requests stay within the budgets.
TEST(Quota, PropertyNoWindowEverExceedsTheBudget) {
  constexpr std::int64_t kTokens = 5000;
  constexpr std::int64_t kRequests = 40;
  ManualClock clock;
  TokenQuota quota({.tokens_per_minute = kTokens, .requests_per_minute = kRequests}, clock,
                   {.granularity = std::chrono::milliseconds(250), .max_open_reservations = 1000});
  struct Admitted {
    TimePoint at;
    std::int64_t tokens;
    std::int64_t requests;
  };
  std::vector<std::vector<Admitted>> logs(50);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 50; ++t) {
    threads.emplace_back([&, t] {
      SeededRandom random(static_cast<std::uint64_t>(t) + 1);
      std::vector<Reservation> open;
      for (int op = 0; op < 300; ++op) {
        const double u = random.uniform();
        if (u < 0.05) {
          clock.advance(std::chrono::milliseconds(random.below(3000)));
        } else if (u < 0.55 || open.empty()) {
          auto r = quota.reserve(static_cast<std::int64_t>(random.below(800)) + 1);
          if (r.ok()) open.push_back(*r);
        } else {
          const std::size_t i = random.below(open.size());
          const Reservation r = open[i];
          open.erase(open.begin() + static_cast<long>(i));
          if (random.uniform() < 0.3) {
            if (!quota.release(r).ok()) ++errors;
            logs[static_cast<std::size_t>(t)].push_back({r.at, 0, 0});
          } else {
            const auto actual = static_cast<std::int64_t>(random.below(900));
            if (!quota.settle(r, actual).ok()) ++errors;
            logs[static_cast<std::size_t>(t)].push_back({r.at, std::min(actual, r.tokens), 1});
          }
        }
      }
      for (const Reservation& r : open) {
        if (!quota.release(r).ok()) ++errors;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(errors.load(), 0);
  std::vector<Admitted> all;
  for (const auto& log : logs)
    all.insert(all.end(), log.begin(), log.end());
  std::sort(all.begin(), all.end(),
            [](const Admitted& a, const Admitted& b) { return a.at < b.at; });
  ASSERT_GT(all.size(), 300u);
  EXPECT_GT(to_seconds(all.back().at - all.front().at), 120.0);  // Many windows covered.
  std::size_t begin = 0;
  std::int64_t tokens = 0;
  std::int64_t requests = 0;
  std::int64_t max_tokens = 0;
  for (std::size_t end = 0; end < all.size(); ++end) {
    tokens += all[end].tokens;
    requests += all[end].requests;
    while (all[begin].at < all[end].at - kQuotaWindow) {
      tokens -= all[begin].tokens;
      requests -= all[begin].requests;
      ++begin;
    }
    ASSERT_LE(tokens, kTokens) << "window ending at entry " << end;
    ASSERT_LE(requests, kRequests) << "window ending at entry " << end;
    max_tokens = std::max(max_tokens, tokens);
  }
  EXPECT_GT(max_tokens, kTokens / 2);  // The budget was actually contended.
}

}  // namespace
}  // namespace spillway::fleet
