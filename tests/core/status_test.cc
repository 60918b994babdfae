#include "core/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

namespace spillway {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0) return make_error(ErrorCode::kInvalidArgument, "{} is not positive", x);
  return x;
}

Result<int> doubled(int x) {
  SPW_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

Status check_both(int a, int b) {
  SPW_TRY(parse_positive(a));
  SPW_TRY(parse_positive(b));
  return Status();
}

Result<std::unique_ptr<int>> make_owned(bool ok) {
  if (!ok) return Error(ErrorCode::kNotFound, "nothing");
  return std::make_unique<int>(7);
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kOk);
}

TEST(Status, ErrorPropagatesThroughAssignOrReturn) {
  Result<int> good = doubled(21);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 42);

  Result<int> bad = doubled(-3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "-3 is not positive");
}

TEST(Status, TryStopsAtFirstFailure) {
  EXPECT_TRUE(check_both(1, 2).ok());
  Status s = check_both(1, -5);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "-5 is not positive");
  Status first = check_both(-1, -5);
  EXPECT_EQ(first.error().message(), "-1 is not positive");
}

TEST(Status, MoveOnlyValues) {
  auto r = make_owned(true);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
  EXPECT_EQ(make_owned(false).error().code(), ErrorCode::kNotFound);
}

TEST(Status, ContextPrefixesMessage) {
  Error e = make_error(ErrorCode::kDataLoss, "truncated at byte {}", 12);
  Error with = e.with_context("model.gguf");
  EXPECT_EQ(with.message(), "model.gguf: truncated at byte 12");
  EXPECT_EQ(with.code(), ErrorCode::kDataLoss);
  EXPECT_EQ(e.to_string(), "data_loss: truncated at byte 12");
}

TEST(Status, ResultStatusConversion) {
  Result<int> bad = parse_positive(0);
  Status s = bad.status();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(parse_positive(1).status().ok());
}

TEST(Status, CodesHaveStableDistinctNamesAndHttpMappings) {
  std::set<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(ErrorCode::kPayloadTooLarge); ++c) {
    const auto code = static_cast<ErrorCode>(c);
    EXPECT_TRUE(names.insert(error_code_name(code)).second) << c;
    EXPECT_NE(error_code_name(code), "unknown");
  }
  // The stable numbers that logs and clients see.
  EXPECT_EQ(static_cast<int>(ErrorCode::kInvalidArgument), 1);
  EXPECT_EQ(static_cast<int>(ErrorCode::kResourceExhausted), 4);
  EXPECT_EQ(http_error_mapping(ErrorCode::kInvalidArgument).http_status, 400);
  EXPECT_EQ(http_error_mapping(ErrorCode::kInvalidArgument).openai_type, "invalid_request_error");
  EXPECT_EQ(http_error_mapping(ErrorCode::kUnauthenticated).http_status, 401);
  EXPECT_EQ(http_error_mapping(ErrorCode::kNotFound).http_status, 404);
  EXPECT_EQ(http_error_mapping(ErrorCode::kPayloadTooLarge).http_status, 413);
  EXPECT_EQ(http_error_mapping(ErrorCode::kResourceExhausted).http_status, 429);
  EXPECT_EQ(http_error_mapping(ErrorCode::kUnavailable).http_status, 503);
  EXPECT_EQ(http_error_mapping(ErrorCode::kInternal).http_status, 500);
}

}  // namespace
}  // namespace spillway
