#include "openai/chat_request.h"

#include <gtest/gtest.h>

#include <string>

#include "openai_test_support.h"

namespace spillway::openai {
namespace {

using testing::chat_body;
using testing::fails_with;

Result<ChatCompletionRequest> parse(const std::string& body, const ApiLimits& limits = {}) {
  return parse_chat_completion_request(body, limits);
}

std::string with_messages(std::string_view messages, std::string_view extra = {}) {
  std::string body = fmt::format(R"({{"model":"m","messages":{})", messages);
  if (!extra.empty()) body += fmt::format(",{}", extra);
  return body + "}";
}

TEST(OpenaiChatRequest, MinimalRequestGetsOpenAIDefaults) {
  auto r = parse(chat_body());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0].role, ChatRole::kUser);
  EXPECT_EQ(r->messages[0].content, "hi");
  EXPECT_FALSE(r->messages[0].name.has_value());
  EXPECT_FALSE(r->sampling.max_tokens.has_value());
  EXPECT_EQ(r->sampling.n, 1);
  EXPECT_EQ(r->sampling.temperature, 1.0f);
  EXPECT_EQ(r->sampling.top_p, 1.0f);
  EXPECT_TRUE(r->sampling.stop.empty());
  EXPECT_FALSE(r->sampling.seed.has_value());
  EXPECT_FALSE(r->stream.stream);
  EXPECT_FALSE(r->stream.include_usage);
  EXPECT_FALSE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 0);
  EXPECT_FALSE(r->user.has_value());
}

TEST(OpenaiChatRequest, ADuplicatedParameterTakesItsLastValueInSmallAndLargeBodies) {
  // Fields are looked up by a scan in small objects and by the library's hash in large ones
  // (more than 16 keys); both must see the last of duplicated keys, as JSON parsers do.
  auto small = parse(with_messages(R"([{"role":"user","content":"hi"}])",
                                   R"("max_tokens":7,"model":"last","max_tokens":9)"));
  ASSERT_TRUE(small.ok()) << small.error().to_string();
  EXPECT_EQ(small->model, "last");
  EXPECT_EQ(small->sampling.max_tokens, 9);

  std::string padding;
  for (int i = 0; i < 20; ++i)
    padding += fmt::format(R"("x{}":{},)", i, i);
  auto large = parse(with_messages(R"([{"role":"user","content":"hi"}])",
                                   padding + R"("max_tokens":7,"model":"last","max_tokens":9)"));
  ASSERT_TRUE(large.ok()) << large.error().to_string();
  EXPECT_EQ(large->model, "last");
  EXPECT_EQ(large->sampling.max_tokens, 9);

  auto bad = parse(with_messages(R"([{"role":"user","content":"hi"}])",
                                 padding + R"("max_tokens":7,"max_tokens":"many")"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("max_tokens"), std::string::npos) << bad.error().to_string();
}

TEST(OpenaiChatRequest, FullRequestAsAnSdkSendsIt) {
  auto r = parse(R"({
    "model": "llama-3-8b",
    "messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "system", "content": "You are helpful.", "name": "sys"},
      {"role": "user", "content": [{"type": "text", "text": "Hello"},
                                   {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": "Hi!", "refusal": null},
      {"role": "user", "content": "Tell me a story", "name": "alice"}
    ],
    "max_tokens": 100, "max_completion_tokens": 50, "temperature": 0.7, "top_p": 0.9,
    "n": 2, "stop": ["\n\n", "THE END"], "seed": -42, "presence_penalty": 0.5,
    "frequency_penalty": -0.5, "logprobs": true, "top_logprobs": 3, "user": "user-1",
    "stream": true, "stream_options": {"include_usage": true},
    "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1,
    "tools": [], "tool_choice": "none", "response_format": {"type": "text"},
    "logit_bias": {}, "modalities": ["text"], "parallel_tool_calls": true, "store": false,
    "metadata": {"k": "v"}, "service_tier": "auto", "frequency": {"unknown": [1, {"x": null}]}
  })");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->model, "llama-3-8b");
  ASSERT_EQ(r->messages.size(), 5u);
  EXPECT_EQ(r->messages[0].role, ChatRole::kSystem);  // developer
  EXPECT_EQ(r->messages[1].role, ChatRole::kSystem);
  EXPECT_EQ(r->messages[1].name, "sys");
  EXPECT_EQ(r->messages[2].content, "Hello\nthere");
  EXPECT_EQ(r->messages[3].role, ChatRole::kAssistant);
  EXPECT_EQ(r->messages[4].name, "alice");
  EXPECT_EQ(r->sampling.max_tokens, 50);  // max_completion_tokens wins.
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_EQ(r->sampling.n, 2);
  EXPECT_EQ(r->sampling.stop, (std::vector<std::string>{"\n\n", "THE END"}));
  EXPECT_EQ(r->sampling.seed, -42);
  EXPECT_FLOAT_EQ(r->sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r->sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r->sampling.repetition_penalty, 1.1f);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 3);
  EXPECT_EQ(r->user, "user-1");
  EXPECT_TRUE(r->stream.stream);
  EXPECT_TRUE(r->stream.include_usage);
}

TEST(OpenaiChatRequest, NullMeansUnset) {
  auto r = parse(chat_body(
      R"("temperature":null,"top_p":null,"n":null,"stop":null,"seed":null,"max_tokens":null,)"
      R"("max_completion_tokens":null,"logprobs":null,"top_logprobs":null,"user":null,)"
      R"("stream":null,"stream_options":null,"tools":null,"response_format":null)"));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->sampling.temperature, 1.0f);
  EXPECT_FALSE(r->sampling.max_tokens.has_value());
  EXPECT_FALSE(r->stream.stream);
}

TEST(OpenaiChatRequest, Model) {
  EXPECT_TRUE(fails_with(parse(R"({"messages":[{"role":"user","content":"x"}]})"),
                         ErrorCode::kInvalidArgument, "model"));
  EXPECT_TRUE(fails_with(parse(R"({"model":null,"messages":[{"role":"user","content":"x"}]})"),
                         ErrorCode::kInvalidArgument, "model"));
  EXPECT_TRUE(fails_with(parse(R"({"model":7,"messages":[{"role":"user","content":"x"}]})"),
                         ErrorCode::kInvalidArgument, "model"));
  EXPECT_TRUE(fails_with(parse(R"({"model":"","messages":[{"role":"user","content":"x"}]})"),
                         ErrorCode::kInvalidArgument, "model"));
  ApiLimits limits;
  limits.max_model_name_bytes = 3;
  EXPECT_TRUE(parse(R"({"model":"abc","messages":[{"role":"user","content":"x"}]})", limits).ok());
  EXPECT_TRUE(
      fails_with(parse(R"({"model":"abcd","messages":[{"role":"user","content":"x"}]})", limits),
                 ErrorCode::kOutOfRange, "model"));
}

TEST(OpenaiChatRequest, MessagesMustBeANonEmptyArrayOfObjects) {
  EXPECT_TRUE(fails_with(parse(R"({"model":"m"})"), ErrorCode::kInvalidArgument, "messages"));
  EXPECT_TRUE(fails_with(parse(with_messages("[]")), ErrorCode::kInvalidArgument, "messages"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"("hi")")), ErrorCode::kInvalidArgument, "messages"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":"a"}, "b"])")),
                         ErrorCode::kInvalidArgument, "messages[1]"));
}

TEST(OpenaiChatRequest, MessageCountLimit) {
  ApiLimits limits;
  limits.max_messages = 2;
  const std::string two = R"([{"role":"user","content":"a"},{"role":"assistant","content":"b"}])";
  const std::string three = R"([{"role":"user","content":"a"},{"role":"assistant","content":"b"},)"
                            R"({"role":"user","content":"c"}])";
  EXPECT_TRUE(parse(with_messages(two), limits).ok());
  EXPECT_TRUE(fails_with(parse(with_messages(three), limits), ErrorCode::kOutOfRange, "messages"));
}

TEST(OpenaiChatRequest, Roles) {
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"content":"a"}])")), ErrorCode::kInvalidArgument,
                         "messages[0].role"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"robot","content":"a"}])")),
                         ErrorCode::kInvalidArgument, "messages[0].role"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":1,"content":"a"}])")),
                         ErrorCode::kInvalidArgument, "messages[0].role"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":"a"},)"
                                             R"({"role":"tool","content":"42",)"
                                             R"("tool_call_id":"c1"}])")),
                         ErrorCode::kUnimplemented, "messages[1].role"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"function","name":"f","content":"1"}])")),
                         ErrorCode::kUnimplemented, "messages[0].role"));
}

TEST(OpenaiChatRequest, Content) {
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user"}])")), ErrorCode::kInvalidArgument,
                         "messages[0].content"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":null}])")),
                         ErrorCode::kInvalidArgument, "messages[0].content"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":5}])")),
                         ErrorCode::kInvalidArgument, "messages[0].content"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":{"text":"a"}}])")),
                         ErrorCode::kInvalidArgument, "messages[0].content"));
  // An empty string and an empty part list are valid (empty) contents.
  auto empty =
      parse(with_messages(R"([{"role":"user","content":""},{"role":"user","content":[]}])"));
  ASSERT_TRUE(empty.ok()) << empty.error().to_string();
  EXPECT_EQ(empty->messages[0].content, "");
  EXPECT_EQ(empty->messages[1].content, "");
  // Assistant turns with tool calls instead of content.
  EXPECT_TRUE(fails_with(
      parse(with_messages(R"([{"role":"assistant","content":null,"tool_calls":[{"id":"c"}]}])")),
      ErrorCode::kUnimplemented, "messages[0].tool_calls"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"assistant","content":null}])")),
                         ErrorCode::kInvalidArgument, "messages[0].content"));
}

TEST(OpenaiChatRequest, ContentParts) {
  auto r = parse(with_messages(
      R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":""},)"
      R"({"type":"text","text":"b","cache_control":{"type":"ephemeral"}}]}])"));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->messages[0].content, "a\n\nb");

  EXPECT_TRUE(fails_with(
      parse(with_messages(R"([{"role":"user","content":[{"type":"text","text":"a"},)"
                          R"({"type":"image_url","image_url":{"url":"http://x/y.png"}}]}])")),
      ErrorCode::kInvalidArgument, "messages[0].content[1].type"));
  const auto bad = parse(
      with_messages(R"([{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}])"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("input_audio"), std::string::npos);
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":[{"text":"a"}]}])")),
                         ErrorCode::kInvalidArgument, "messages[0].content[0].type"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":[{"type":"text"}]}])")),
                         ErrorCode::kInvalidArgument, "messages[0].content[0].text"));
  EXPECT_TRUE(
      fails_with(parse(with_messages(R"([{"role":"user","content":[{"type":"text","text":1}]}])")),
                 ErrorCode::kInvalidArgument, "messages[0].content[0].text"));
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":["a"]}])")),
                         ErrorCode::kInvalidArgument, "messages[0].content[0]"));
}

TEST(OpenaiChatRequest, ErrorsQuoteOnlyAnExcerptOfClientValues) {
  const std::string huge(100000, 'x');
  auto r = parse(with_messages(fmt::format(R"([{{"role":"{}","content":"a"}}])", huge)));
  ASSERT_TRUE(fails_with(r, ErrorCode::kInvalidArgument, "messages[0].role"));
  EXPECT_LT(r.error().message().size(), 200u);
  EXPECT_NE(r.error().message().find("'xxxx"), std::string::npos);
  EXPECT_NE(r.error().message().find("...'"), std::string::npos);
  // The cut never splits a character: 47 ASCII bytes then a 2-byte character at the limit.
  const std::string accented = std::string(47, 'a') + "\u00e9" + std::string(10, 'b');
  auto cut = parse(
      with_messages(fmt::format(R"([{{"role":"user","content":[{{"type":"{}"}}]}}])", accented)));
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().message().find("'" + std::string(47, 'a') + "...'"), std::string::npos)
      << cut.error().message();
}

TEST(OpenaiChatRequest, Name) {
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":"a","name":3}])")),
                         ErrorCode::kInvalidArgument, "messages[0].name"));
}

TEST(OpenaiChatRequest, TotalContentLimitCountsEveryMessageAndName) {
  ApiLimits limits;
  limits.max_total_content_bytes = 10;
  EXPECT_TRUE(parse(with_messages(R"([{"role":"user","content":"12345"},)"
                                  R"({"role":"user","content":"678","name":"ab"}])"),
                    limits)
                  .ok());
  EXPECT_TRUE(fails_with(parse(with_messages(R"([{"role":"user","content":"12345"},)"
                                             R"({"role":"user","content":"678","name":"abc"}])"),
                               limits),
                         ErrorCode::kPayloadTooLarge, "messages"));
  // Parts count their joining newlines.
  EXPECT_TRUE(fails_with(
      parse(with_messages(R"([{"role":"user","content":[{"type":"text","text":"12345"},)"
                          R"({"type":"text","text":"6789"},{"type":"text","text":""}]}])"),
            limits),
      ErrorCode::kPayloadTooLarge, "messages"));
}

TEST(OpenaiChatRequest, MaxTokensFields) {
  auto only_old = parse(chat_body(R"("max_tokens": 10)"));
  ASSERT_TRUE(only_old.ok());
  EXPECT_EQ(only_old->sampling.max_tokens, 10);
  auto only_new = parse(chat_body(R"("max_completion_tokens": 20)"));
  ASSERT_TRUE(only_new.ok());
  EXPECT_EQ(only_new->sampling.max_tokens, 20);
  auto both = parse(chat_body(R"("max_tokens": 10, "max_completion_tokens": 20)"));
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->sampling.max_tokens, 20);
  auto integral_double = parse(chat_body(R"("max_tokens": 12.0)"));
  ASSERT_TRUE(integral_double.ok());
  EXPECT_EQ(integral_double->sampling.max_tokens, 12);

  for (const std::string_view key : {"max_tokens", "max_completion_tokens"}) {
    SCOPED_TRACE(key);
    for (const std::string_view bad : {"0", "-1", "1.5", "\"10\"", "true", "[1]"}) {
      EXPECT_TRUE(fails_with(parse(chat_body(fmt::format(R"("{}": {})", key, bad))),
                             ErrorCode::kInvalidArgument, std::string(key)))
          << bad;
    }
    ApiLimits limits;
    limits.max_output_tokens = 100;
    EXPECT_TRUE(parse(chat_body(fmt::format(R"("{}": 100)", key)), limits).ok());
    EXPECT_TRUE(fails_with(parse(chat_body(fmt::format(R"("{}": 101)", key)), limits),
                           ErrorCode::kOutOfRange, std::string(key)));
    EXPECT_TRUE(fails_with(parse(chat_body(fmt::format(R"("{}": 99999999999)", key))),
                           ErrorCode::kInvalidArgument, std::string(key)));
  }
  // An invalid max_tokens is an error even when max_completion_tokens is valid.
  EXPECT_TRUE(fails_with(parse(chat_body(R"("max_tokens": -5, "max_completion_tokens": 20)")),
                         ErrorCode::kInvalidArgument, "max_tokens"));
}

TEST(OpenaiChatRequest, Logprobs) {
  auto on = parse(chat_body(R"("logprobs": true)"));
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on->logprobs);
  EXPECT_EQ(on->top_logprobs, 0);
  auto top = parse(chat_body(R"("logprobs": true, "top_logprobs": 20)"));
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->top_logprobs, 20);
  EXPECT_TRUE(parse(chat_body(R"("logprobs": false)")).ok());
  EXPECT_TRUE(
      fails_with(parse(chat_body(R"("logprobs": 1)")), ErrorCode::kInvalidArgument, "logprobs"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("logprobs": true, "top_logprobs": 21)")),
                         ErrorCode::kInvalidArgument, "top_logprobs"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("logprobs": true, "top_logprobs": -1)")),
                         ErrorCode::kInvalidArgument, "top_logprobs"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("logprobs": true, "top_logprobs": "3")")),
                         ErrorCode::kInvalidArgument, "top_logprobs"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("top_logprobs": 3)")), ErrorCode::kInvalidArgument,
                         "top_logprobs"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("logprobs": false, "top_logprobs": 0)")),
                         ErrorCode::kInvalidArgument, "top_logprobs"));
  ApiLimits limits;
  limits.max_top_logprobs = 5;
  EXPECT_TRUE(fails_with(parse(chat_body(R"("logprobs": true, "top_logprobs": 6)"), limits),
                         ErrorCode::kInvalidArgument, "top_logprobs"));
}

TEST(OpenaiChatRequest, KnownButUnsupportedFeaturesAreRefused) {
  const std::string tool =
      R"([{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])";
  EXPECT_TRUE(fails_with(parse(chat_body(fmt::format(R"("tools": {})", tool))),
                         ErrorCode::kUnimplemented, "tools"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("functions": [{"name":"f"}])")),
                         ErrorCode::kUnimplemented, "functions"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("tools": {})")), ErrorCode::kInvalidArgument, "tools"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("tool_choice": "required")")),
                         ErrorCode::kUnimplemented, "tool_choice"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("tool_choice": {"type":"function"})")),
                         ErrorCode::kUnimplemented, "tool_choice"));
  EXPECT_TRUE(parse(chat_body(R"("tool_choice": "auto")")).ok());
  EXPECT_TRUE(fails_with(parse(chat_body(R"("response_format": {"type":"json_object"})")),
                         ErrorCode::kUnimplemented, "response_format.type"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("response_format": {})")), ErrorCode::kInvalidArgument,
                         "response_format.type"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("response_format": "json")")),
                         ErrorCode::kInvalidArgument, "response_format"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("logit_bias": {"50256": -100})")),
                         ErrorCode::kUnimplemented, "logit_bias"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("logit_bias": [1])")), ErrorCode::kInvalidArgument,
                         "logit_bias"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("audio": {"voice":"alloy","format":"wav"})")),
                         ErrorCode::kUnimplemented, "audio"));
  EXPECT_TRUE(fails_with(parse(chat_body(R"("modalities": ["text","audio"])")),
                         ErrorCode::kUnimplemented, "modalities"));
}

TEST(OpenaiChatRequest, UnknownFieldsAreIgnored) {
  auto r = parse(chat_body(
      R"("x_custom": {"deep": [1, 2, {"a": null}]}, "reasoning_effort": "low", "prediction": 5,)"
      R"("web_search_options": {}, "": 1, "temperature_typo": "hot")"));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->sampling.temperature, 1.0f);
}

TEST(OpenaiChatRequest, ErrorsAreReportedInFieldOrderDeterministically) {
  // model is checked before messages, messages before sampling fields.
  EXPECT_TRUE(fails_with(parse(R"({"model":1,"messages":[],"temperature":9})"),
                         ErrorCode::kInvalidArgument, "model"));
  EXPECT_TRUE(fails_with(parse(R"({"model":"m","messages":[],"temperature":9})"),
                         ErrorCode::kInvalidArgument, "messages"));
}

}  // namespace
}  // namespace spillway::openai
