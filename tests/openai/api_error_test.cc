// Error values, their OpenAI body, malformed JSON and body-level limits, and ApiLimits from
// configuration.
#include "openai/api_error.h"

#include <gtest/gtest.h>

#include <string>

#include "core/config.h"

#include "openai/api_limits.h"
#include "openai/chat_request.h"
#include "openai/completion_request.h"

#include "openai_test_support.h"

namespace spillway::openai {
namespace {

using testing::chat_body;
using testing::fails_with;
using testing::keys_of;
using testing::parse_json;
using testing::str;

TEST(OpenaiParamPath, Grammar) {
  for (const char* ok : {"model", "stop[3]", "messages[0].content[12].type",
                         "stream_options.include_usage", "prompt[1][7]", "_x9"}) {
    EXPECT_TRUE(is_param_path(ok)) << ok;
  }
  for (const char* bad : {"", "invalid JSON at line 1", "9a", "a.", ".a", "a[", "a[]", "a[x]",
                          "a..b", "a b", "[0]", "a]"}) {
    EXPECT_FALSE(is_param_path(bad)) << bad;
  }
}

TEST(OpenaiApiError, ParamTravelsInTheMessage) {
  const Error e = request_error(ErrorCode::kInvalidArgument, "messages[2].role", "unknown role");
  EXPECT_EQ(e.message(), "messages[2].role: unknown role");
  EXPECT_EQ(error_param(e), "messages[2].role");
  EXPECT_EQ(error_param(with_param(make_error(ErrorCode::kInvalidArgument, "bad"), "stop[1]")),
            "stop[1]");
  EXPECT_EQ(error_param(make_error(ErrorCode::kInvalidArgument,
                                   "invalid JSON at line 1, "
                                   "column 2: syntax error")),
            std::nullopt);
  EXPECT_EQ(error_param(make_error(ErrorCode::kInternal, "no colon here")), std::nullopt);
}

TEST(OpenaiApiError, StatusAndTypeFollowTheCoreMapping) {
  const ApiError invalid = to_api_error(request_error(ErrorCode::kInvalidArgument, "n", "bad"));
  EXPECT_EQ(invalid.http_status, 400);
  EXPECT_EQ(invalid.type, "invalid_request_error");
  EXPECT_EQ(invalid.param, "n");
  EXPECT_EQ(invalid.message, "n: bad");
  EXPECT_FALSE(invalid.code.has_value());
  EXPECT_EQ(to_api_error(request_error(ErrorCode::kOutOfRange, "n", "x")).http_status, 400);
  EXPECT_EQ(to_api_error(request_error(ErrorCode::kPayloadTooLarge, "messages", "x")).http_status,
            413);
  const ApiError unimplemented =
      to_api_error(request_error(ErrorCode::kUnimplemented, "tools", "x"));
  EXPECT_EQ(unimplemented.http_status, 501);
  EXPECT_EQ(unimplemented.type, "not_implemented_error");
  const ApiError explicit_param = to_api_error(
      make_error(ErrorCode::kOutOfRange, "prompt is longer than the context"), "messages");
  EXPECT_EQ(explicit_param.param, "messages");
  EXPECT_EQ(to_api_error(make_error(ErrorCode::kInternal, "boom")).http_status, 500);
}

TEST(OpenaiApiError, BodyHasOpenAIShape) {
  ApiError e = to_api_error(
      request_error(ErrorCode::kInvalidArgument, "temperature", "must be in [0, 2], got \"3\"\n"));
  const auto v = parse_json(render_error_body(e));
  EXPECT_EQ(keys_of(v), (std::set<std::string>{"error"}));
  const auto& err = v.at("error");
  EXPECT_EQ(keys_of(err), (std::set<std::string>{"message", "type", "param", "code"}));
  EXPECT_EQ(str(err.at("message")), "temperature: must be in [0, 2], got \"3\"\n");
  EXPECT_EQ(str(err.at("type")), "invalid_request_error");
  EXPECT_EQ(str(err.at("param")), "temperature");
  EXPECT_TRUE(err.at("code").is_null());

  e.param.reset();
  e.code = "model_not_found";
  const auto v2 = parse_json(render_error_body(e));
  EXPECT_TRUE(v2.at("error").at("param").is_null());
  EXPECT_EQ(str(v2.at("error").at("code")), "model_not_found");
}

TEST(OpenaiRequestBody, MalformedJsonReportsThePosition) {
  auto r = parse_chat_completion_request("{\"model\": \"m\",\n  \"messages\": [}");
  ASSERT_TRUE(fails_with(r, ErrorCode::kInvalidArgument, std::nullopt));
  EXPECT_NE(r.error().message().find("line 2, column 16"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(to_api_error(r.error()).http_status, 400);

  for (const char* bad :
       {"", "   ", "{", "{\"model\":}", "{\"a\":1} x", "{'model':'m'}", "{\"a\":1,}",
        "{\"a\": tru}", "nul", "{\"a\":\"\\x\"}", "{\"a\": 01}", "/* c */ {}"}) {
    auto e = parse_chat_completion_request(bad);
    EXPECT_TRUE(fails_with(e, ErrorCode::kInvalidArgument, std::nullopt)) << bad;
    if (!e.ok()) {
      EXPECT_EQ(e.error().message().rfind("invalid JSON at line 1, column ", 0), 0u);
    }
  }
}

TEST(OpenaiRequestBody, InvalidUtf8IsMalformed) {
  const std::string body =
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\"}]}";
  EXPECT_TRUE(
      fails_with(parse_chat_completion_request(body), ErrorCode::kInvalidArgument, std::nullopt));
}

TEST(OpenaiRequestBody, TopLevelMustBeAnObject) {
  for (const char* body : {"[]", "\"x\"", "1", "null", "true"}) {
    auto r = parse_completion_request(body);
    EXPECT_TRUE(fails_with(r, ErrorCode::kInvalidArgument, std::nullopt)) << body;
    if (!r.ok()) {
      EXPECT_NE(r.error().message().find("must be a JSON object"), std::string::npos);
    }
  }
}

TEST(OpenaiRequestBody, SizeAndDepthLimits) {
  ApiLimits limits;
  const std::string body = chat_body();
  limits.max_body_bytes = body.size();
  EXPECT_TRUE(parse_chat_completion_request(body, limits).ok());
  limits.max_body_bytes = body.size() - 1;
  auto big = parse_chat_completion_request(body, limits);
  EXPECT_TRUE(fails_with(big, ErrorCode::kPayloadTooLarge, std::nullopt));
  EXPECT_EQ(to_api_error(big.error()).http_status, 413);

  limits = ApiLimits{};
  limits.max_json_depth = 5;
  const std::string parts =
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]})";
  EXPECT_TRUE(parse_chat_completion_request(parts, limits).ok());
  EXPECT_TRUE(fails_with(parse_chat_completion_request(chat_body(R"("x":[[[[[1]]]]])"), limits),
                         ErrorCode::kOutOfRange, std::nullopt));
  // The default limit stops a pathological nesting without recursion trouble.
  const std::string deep = "{\"x\":" + std::string(100000, '[');
  EXPECT_TRUE(
      fails_with(parse_chat_completion_request(deep), ErrorCode::kOutOfRange, std::nullopt));
}

TEST(OpenaiApiLimitsConfig, ReadsOverridesAndRejectsUnknownKeys) {
  auto doc = ConfigDocument::parse(
      "[api]\nmax_n = 4\nmax_stop_strings = 2\nmax_body_bytes = 1024\n", "test.toml");
  ASSERT_TRUE(doc.ok()) << doc.error().to_string();
  auto table = doc->root().table("api");
  ASSERT_TRUE(table.ok());
  auto limits = parse_api_limits(*table);
  ASSERT_TRUE(limits.ok()) << limits.error().to_string();
  EXPECT_EQ(limits->max_n, 4);
  EXPECT_EQ(limits->max_stop_strings, 2u);
  EXPECT_EQ(limits->max_body_bytes, 1024u);
  EXPECT_EQ(limits->max_messages, ApiLimits{}.max_messages);

  auto typo = ConfigDocument::parse("[api]\nmax_nn = 4\n", "test.toml");
  ASSERT_TRUE(typo.ok());
  auto typo_limits = parse_api_limits(*typo->root().table("api"));
  ASSERT_FALSE(typo_limits.ok());
  EXPECT_NE(typo_limits.error().message().find("max_nn"), std::string::npos);

  auto zero = ConfigDocument::parse("[api]\nmax_n = 0\n", "test.toml");
  ASSERT_TRUE(zero.ok());
  EXPECT_FALSE(parse_api_limits(*zero->root().table("api")).ok());
  auto shallow = ConfigDocument::parse("[api]\nmax_json_depth = 3\n", "test.toml");
  ASSERT_TRUE(shallow.ok());
  EXPECT_FALSE(parse_api_limits(*shallow->root().table("api")).ok());
}

TEST(OpenaiApiLimitsConfig, DefaultsAreValid) {
  EXPECT_TRUE(validate_api_limits(ApiLimits{}).ok());
  ApiLimits l;
  l.max_stop_bytes = 0;
  EXPECT_FALSE(validate_api_limits(l).ok());
}

}  // namespace
}  // namespace spillway::openai
