// The sampling, stop and stream fields that chat and completions share: every valid and
// invalid value, checked through both endpoints.
#include "openai/common_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "openai/chat_request.h"
#include "openai/completion_request.h"

#include "openai_test_support.h"

namespace spillway::openai {
namespace {

using testing::chat_body;
using testing::completion_body;
using testing::fails_with;

// Parses `extra` with both endpoints; both must agree.
Result<SamplingOptions> sampling(std::string_view extra, const ApiLimits& limits = {}) {
  auto chat = parse_chat_completion_request(chat_body(extra), limits);
  auto completion = parse_completion_request(completion_body(extra), limits);
  EXPECT_EQ(chat.ok(), completion.ok()) << extra;
  if (!chat.ok()) {
    if (!completion.ok()) {
      EXPECT_EQ(chat.error(), completion.error()) << extra;
    }
    return chat.error();
  }
  return chat->sampling;
}

Result<StreamOptions> stream(std::string_view extra) {
  auto chat = parse_chat_completion_request(chat_body(extra));
  auto completion = parse_completion_request(completion_body(extra));
  EXPECT_EQ(chat.ok(), completion.ok()) << extra;
  if (!chat.ok()) return chat.error();
  return chat->stream;
}

struct InvalidCase {
  std::string extra;
  ErrorCode code;
  std::string param;
};

TEST(OpenaiCommonOptions, ValidNumbers) {
  EXPECT_EQ(sampling(R"("temperature": 0)")->temperature, 0.0f);
  EXPECT_EQ(sampling(R"("temperature": 2)")->temperature, 2.0f);
  EXPECT_FLOAT_EQ(sampling(R"("temperature": 0.25)")->temperature, 0.25f);
  EXPECT_EQ(sampling(R"("top_p": 1)")->top_p, 1.0f);
  EXPECT_FLOAT_EQ(sampling(R"("top_p": 1e-3)")->top_p, 0.001f);
  EXPECT_EQ(sampling(R"("n": 16)")->n, 16);
  EXPECT_EQ(sampling(R"("n": 3.0)")->n, 3);
  EXPECT_EQ(sampling(R"("presence_penalty": -2)")->presence_penalty, -2.0f);
  EXPECT_EQ(sampling(R"("presence_penalty": 2)")->presence_penalty, 2.0f);
  EXPECT_EQ(sampling(R"("frequency_penalty": -2.0)")->frequency_penalty, -2.0f);
  EXPECT_EQ(sampling(R"("frequency_penalty": 2.0)")->frequency_penalty, 2.0f);
  EXPECT_EQ(sampling(R"("seed": 0)")->seed, 0);
  EXPECT_EQ(sampling(R"("seed": -9223372036854775808)")->seed,
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(sampling(R"("seed": 9223372036854775807)")->seed,
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(sampling(R"("top_k": -1)")->top_k, 0);
  EXPECT_EQ(sampling(R"("top_k": 0)")->top_k, 0);
  EXPECT_EQ(sampling(R"("top_k": 50)")->top_k, 50);
  EXPECT_EQ(sampling(R"("min_p": 0)")->min_p, 0.0f);
  EXPECT_FLOAT_EQ(sampling(R"("min_p": 0.999)")->min_p, 0.999f);
  EXPECT_FLOAT_EQ(sampling(R"("repetition_penalty": 0.5)")->repetition_penalty, 0.5f);
  EXPECT_FLOAT_EQ(sampling(R"("repetition_penalty": 3)")->repetition_penalty, 3.0f);
}

TEST(OpenaiCommonOptions, InvalidValuesNameTheParam) {
  const std::vector<InvalidCase> cases = {
      {R"("temperature": -0.01)", ErrorCode::kInvalidArgument, "temperature"},
      {R"("temperature": 2.01)", ErrorCode::kInvalidArgument, "temperature"},
      {R"("temperature": "0.5")", ErrorCode::kInvalidArgument, "temperature"},
      {R"("temperature": true)", ErrorCode::kInvalidArgument, "temperature"},
      {R"("temperature": 1e400)", ErrorCode::kInvalidArgument, "temperature"},
      {R"("top_p": 0)", ErrorCode::kInvalidArgument, "top_p"},
      {R"("top_p": 1.0001)", ErrorCode::kInvalidArgument, "top_p"},
      {R"("top_p": -1)", ErrorCode::kInvalidArgument, "top_p"},
      {R"("top_p": [1])", ErrorCode::kInvalidArgument, "top_p"},
      {R"("n": 0)", ErrorCode::kInvalidArgument, "n"},
      {R"("n": -3)", ErrorCode::kInvalidArgument, "n"},
      {R"("n": 17)", ErrorCode::kOutOfRange, "n"},
      {R"("n": 1.5)", ErrorCode::kInvalidArgument, "n"},
      {R"("n": "2")", ErrorCode::kInvalidArgument, "n"},
      {R"("presence_penalty": -2.1)", ErrorCode::kInvalidArgument, "presence_penalty"},
      {R"("presence_penalty": 2.1)", ErrorCode::kInvalidArgument, "presence_penalty"},
      {R"("presence_penalty": {})", ErrorCode::kInvalidArgument, "presence_penalty"},
      {R"("frequency_penalty": -3)", ErrorCode::kInvalidArgument, "frequency_penalty"},
      {R"("frequency_penalty": 2.5)", ErrorCode::kInvalidArgument, "frequency_penalty"},
      {R"("seed": 1.5)", ErrorCode::kInvalidArgument, "seed"},
      {R"("seed": "42")", ErrorCode::kInvalidArgument, "seed"},
      {R"("seed": 9223372036854775808)", ErrorCode::kInvalidArgument, "seed"},
      {R"("seed": 1e30)", ErrorCode::kInvalidArgument, "seed"},
      {R"("top_k": -2)", ErrorCode::kInvalidArgument, "top_k"},
      {R"("top_k": 2.5)", ErrorCode::kInvalidArgument, "top_k"},
      {R"("top_k": 4294967296)", ErrorCode::kInvalidArgument, "top_k"},
      {R"("min_p": 1)", ErrorCode::kInvalidArgument, "min_p"},
      {R"("min_p": -0.1)", ErrorCode::kInvalidArgument, "min_p"},
      {R"("repetition_penalty": 0)", ErrorCode::kInvalidArgument, "repetition_penalty"},
      {R"("repetition_penalty": -1)", ErrorCode::kInvalidArgument, "repetition_penalty"},
      {R"("repetition_penalty": "1")", ErrorCode::kInvalidArgument, "repetition_penalty"},
      {R"("user": 5)", ErrorCode::kInvalidArgument, "user"},
      {R"("user": ["a"])", ErrorCode::kInvalidArgument, "user"},
      {R"("stream": "true")", ErrorCode::kInvalidArgument, "stream"},
      {R"("stream": 1)", ErrorCode::kInvalidArgument, "stream"},
  };
  for (const InvalidCase& c : cases) {
    EXPECT_TRUE(fails_with(sampling(c.extra), c.code, c.param)) << c.extra;
  }
}

TEST(OpenaiCommonOptions, RangeErrorsSayWhatIsAllowed) {
  auto r = sampling(R"("temperature": 3)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "temperature: must be in [0, 2], got 3");
  r = sampling(R"("top_p": 0)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "top_p: must be in (0, 1], got 0");
  r = sampling(R"("repetition_penalty": 0)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "repetition_penalty: must be greater than 0, got 0");
  r = sampling(R"("seed": "x")");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "seed: expected an integer, got a string");
}

TEST(OpenaiCommonOptions, MaxNIsConfigurable) {
  ApiLimits limits;
  limits.max_n = 4;
  EXPECT_EQ(sampling(R"("n": 4)", limits)->n, 4);
  EXPECT_TRUE(fails_with(sampling(R"("n": 5)", limits), ErrorCode::kOutOfRange, "n"));
}

TEST(OpenaiCommonOptions, Stop) {
  EXPECT_EQ(sampling(R"("stop": "###")")->stop, (std::vector<std::string>{"###"}));
  EXPECT_EQ(sampling(R"("stop": ["a", "b", "c", "d"])")->stop,
            (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(sampling(R"("stop": [])")->stop.empty());
  EXPECT_EQ(sampling(R"("stop": ["\u00e9t\u00e9", "\n"])")->stop,
            (std::vector<std::string>{"\xC3\xA9t\xC3\xA9", "\n"}));

  EXPECT_TRUE(fails_with(sampling(R"("stop": ["a", "b", "c", "d", "e"])"),
                         ErrorCode::kInvalidArgument, "stop"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": "")"), ErrorCode::kInvalidArgument, "stop"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": ["a", ""])"), ErrorCode::kInvalidArgument, "stop[1]"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": ["a", 1])"), ErrorCode::kInvalidArgument, "stop[1]"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": [null])"), ErrorCode::kInvalidArgument, "stop[0]"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": 5)"), ErrorCode::kInvalidArgument, "stop"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": {"a": 1})"), ErrorCode::kInvalidArgument, "stop"));

  ApiLimits limits;
  limits.max_stop_bytes = 4;
  limits.max_stop_strings = 2;
  EXPECT_EQ(sampling(R"("stop": ["abcd", "x"])", limits)->stop.size(), 2u);
  EXPECT_TRUE(
      fails_with(sampling(R"("stop": ["x", "abcde"])", limits), ErrorCode::kOutOfRange, "stop[1]"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": "abcde")", limits), ErrorCode::kOutOfRange, "stop"));
  EXPECT_TRUE(fails_with(sampling(R"("stop": ["a", "b", "c"])", limits),
                         ErrorCode::kInvalidArgument, "stop"));
}

TEST(OpenaiCommonOptions, StreamAndStreamOptions) {
  EXPECT_FALSE(stream(R"("stream": false)")->stream);
  auto plain = stream(R"("stream": true)");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->stream);
  EXPECT_FALSE(plain->include_usage);
  auto usage = stream(R"("stream": true, "stream_options": {"include_usage": true})");
  ASSERT_TRUE(usage.ok());
  EXPECT_TRUE(usage->include_usage);
  auto no_usage = stream(R"("stream": true, "stream_options": {"include_usage": false,)"
                         R"( "continuous_usage_stats": true})");
  ASSERT_TRUE(no_usage.ok());
  EXPECT_FALSE(no_usage->include_usage);
  EXPECT_TRUE(stream(R"("stream": true, "stream_options": {})").ok());
  EXPECT_TRUE(stream(R"("stream_options": null)").ok());

  EXPECT_TRUE(fails_with(stream(R"("stream_options": {"include_usage": true})"),
                         ErrorCode::kInvalidArgument, "stream_options"));
  EXPECT_TRUE(fails_with(stream(R"("stream": false, "stream_options": {"include_usage": true})"),
                         ErrorCode::kInvalidArgument, "stream_options"));
  EXPECT_TRUE(fails_with(stream(R"("stream": true, "stream_options": true)"),
                         ErrorCode::kInvalidArgument, "stream_options"));
  EXPECT_TRUE(fails_with(stream(R"("stream": true, "stream_options": {"include_usage": "yes"})"),
                         ErrorCode::kInvalidArgument, "stream_options.include_usage"));
}

}  // namespace
}  // namespace spillway::openai
