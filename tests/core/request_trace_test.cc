#include "core/request_trace.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"

namespace spillway {
namespace {

TEST(RequestTrace, ParsesAzureRowsWithCrlfAndNoTrailingNewline) {
  const auto t = parse_request_trace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
      "2023-11-16 18:17:03.9799600,4808,10\r\n"
      "2023-11-16 18:17:04.0319600,3180,8\r\n"
      "2023-11-17 00:00:00,5,1",
      "t.csv");
  ASSERT_TRUE(t.ok()) << t.error().message();
  ASSERT_TRUE(t->has_times);
  ASSERT_EQ(t->requests.size(), 3u);
  EXPECT_DOUBLE_EQ(t->requests[0].arrival_s, 0.0);
  EXPECT_NEAR(t->requests[1].arrival_s, 0.052, 1e-6);
  EXPECT_NEAR(t->requests[2].arrival_s, 5 * 3600 + 42 * 60 + 56.02004, 1e-4);  // Across midnight.
  EXPECT_EQ(t->requests[0].context_tokens, 4808);
  EXPECT_EQ(t->requests[1].generated_tokens, 8);
}

TEST(RequestTrace, ParsesLengthDistributionsWithoutTimes) {
  const auto t = parse_request_trace(
      "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n3772,54,3826,69.8\n",
      "x.csv");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->has_times);
  ASSERT_EQ(t->requests.size(), 1u);
  EXPECT_EQ(t->requests[0].context_tokens, 3772);
  EXPECT_EQ(t->requests[0].generated_tokens, 54);
}

TEST(RequestTrace, ErrorsNameTheLineAndField) {
  auto msg = [](std::string_view text) {
    const auto t = parse_request_trace(text, "t.csv");
    EXPECT_FALSE(t.ok());
    return t.ok() ? std::string() : t.error().message();
  };
  EXPECT_EQ(msg("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,x,1\n"),
            "t.csv:2: context tokens: expected an integer in [0, 2^24], got 'x'");
  EXPECT_EQ(msg("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:17:03,1,1\n"),
            "t.csv:2: TIMESTAMP: expected 'YYYY-MM-DD HH:MM:SS.fraction', got "
            "'2023-11-16T18:17:03'");
  EXPECT_EQ(msg("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,1\n"),
            "t.csv:2: expected 3 columns, got 2");
  EXPECT_EQ(msg("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,1,1\n"
                "2023-11-16 18:17:02,1,1\n"),
            "t.csv:3: rows are not in time order");
  EXPECT_NE(msg("a,b\n1,2\n").find("unknown trace header"), std::string::npos);
  EXPECT_EQ(msg(""), "t.csv: empty trace");
  const auto big = parse_request_trace("num_prefill_tokens,num_decode_tokens\n1,1\n2,2\n", "t.csv",
                                       {.max_rows = 1, .max_bytes = 1000});
  EXPECT_EQ(big.error().code(), ErrorCode::kOutOfRange);
}

TEST(RequestTrace, LoadsTheSharedAzureTraces) {
  const std::string path = testing::shared_path("traces/AzureLLMInferenceTrace_conv.csv");
  SPW_REQUIRE_SHARED_FILE(path);
  const auto t = load_request_trace(path);
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->requests.size(), 19366u);  // SOURCES.md
  EXPECT_NEAR(t->requests.back().arrival_s, 3502, 1.0);
  EXPECT_EQ(load_request_trace("/nonexistent.csv").error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace spillway
