#include "core/log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace spillway {
namespace {

TEST(Log, TextLineQuotesAndEscapes) {
  // 2023-11-14T22:13:20.123Z
  const std::string line =
      format_log_line(LogFormat::kText, 1700000000123, LogLevel::kWarn, "queue full",
                      {kv("request_id", "req-1"), kv("reason", "said \"no\"\nbye"), kv("n", 3)});
  EXPECT_EQ(line,
            "2023-11-14T22:13:20.123Z warn  queue full request_id=req-1 "
            "reason=\"said \\\"no\\\"\\nbye\" n=3");
}

TEST(Log, JsonLine) {
  const std::string line =
      format_log_line(LogFormat::kJson, 0, LogLevel::kError, "bad \"x\"", {kv("k", "a\\b")});
  EXPECT_EQ(line,
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"error\",\"msg\":\"bad \\\"x\\\"\","
            "\"k\":\"a\\\\b\"}");
}

TEST(Log, JsonLineStaysValidForUntrustedBytes) {
  // Controls and DEL become \u escapes, well-formed UTF-8 passes, a stray byte becomes U+FFFD.
  const std::string line = format_log_line(LogFormat::kJson, 0, LogLevel::kInfo, "m",
                                           {kv("v", std::string("\x01\x7f\xc3\xa9\xff", 5))});
  EXPECT_NE(line.find("\"v\":\"\\u0001\\u007f\xc3\xa9\\ufffd\""), std::string::npos) << line;
}

TEST(Log, LevelFiltersAndSinkReceives) {
  std::vector<std::string> lines;
  set_log_sink([&](std::string_view l) { lines.emplace_back(l); });
  set_log_level(LogLevel::kWarn);
  log_info("hidden");
  log_debug("hidden too");
  log_warn("shown", {kv("x", 1)});
  log_error("also shown");
  set_log_level(LogLevel::kInfo);
  set_log_sink({});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("warn  shown x=1"), std::string::npos);
  EXPECT_NE(lines[1].find("error also shown"), std::string::npos);
}

TEST(Log, ParseLevel) {
  EXPECT_EQ(*parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_EQ(*parse_log_level("off"), LogLevel::kOff);
  auto bad = parse_log_level("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("verbose"), std::string::npos);
}

TEST(Log, RequestIdsAreUnique) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i)
    ids.insert(new_request_id());
  EXPECT_EQ(ids.size(), 1000u);
  // "req-" + the start time (12 hex digits) + "-" + the counter (at least 6 hex digits); the
  // start time is the same for every id and the counter goes up by one.
  const std::string a = new_request_id();
  const std::string b = new_request_id();
  ASSERT_EQ(a.size(), 23u) << a;
  EXPECT_EQ(a.rfind("req-", 0), 0u);
  EXPECT_EQ(a[16], '-');
  const auto hex = [](std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  };
  EXPECT_TRUE(hex(std::string_view(a).substr(4, 12))) << a;
  EXPECT_TRUE(hex(std::string_view(a).substr(17))) << a;
  EXPECT_EQ(a.substr(0, 17), b.substr(0, 17));
  EXPECT_EQ(std::stoull(b.substr(17), nullptr, 16), std::stoull(a.substr(17), nullptr, 16) + 1);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto start_ms = static_cast<std::int64_t>(std::stoull(a.substr(4, 12), nullptr, 16));
  EXPECT_LE(start_ms, now_ms);
  EXPECT_GT(start_ms, now_ms - 24LL * 3600 * 1000);  // This process's start, not garbage.
}

}  // namespace
}  // namespace spillway
