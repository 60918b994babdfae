#include "openai/completion_request.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "openai_test_support.h"

namespace spillway::openai {
namespace {

using testing::completion_body;
using testing::fails_with;
using Tokens = std::vector<std::int32_t>;

Result<CompletionRequest> parse(const std::string& body, const ApiLimits& limits = {}) {
  return parse_completion_request(body, limits);
}

std::string with_prompt(std::string_view prompt, std::string_view extra = {}) {
  std::string body = fmt::format(R"({{"model":"m","prompt":{})", prompt);
  if (!extra.empty()) body += fmt::format(",{}", extra);
  return body + "}";
}

TEST(OpenaiCompletionRequest, MinimalRequestGetsOpenAIDefaults) {
  auto r = parse(completion_body());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(r->prompts[0]), "Once upon a time");
  EXPECT_EQ(r->sampling.max_tokens, kDefaultCompletionMaxTokens);
  EXPECT_EQ(r->sampling.n, 1);
  EXPECT_FALSE(r->echo);
  EXPECT_FALSE(r->logprobs.has_value());
  EXPECT_FALSE(r->stream.stream);
}

TEST(OpenaiCompletionRequest, FullRequest) {
  auto r = parse(R"({"model":"m","prompt":["a","b"],"max_tokens":5,"temperature":0,"top_p":0.5,)"
                 R"("n":2,"best_of":2,"stop":"\n","seed":7,"echo":true,"logprobs":5,"user":"u",)"
                 R"("suffix":null,"presence_penalty":1,"frequency_penalty":1,"logit_bias":{},)"
                 R"("stream":true,"stream_options":{"include_usage":true},"top_k":5,)"
                 R"("min_p":0.1,"repetition_penalty":1.2,"max_completion_tokens":"ignored"})");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->prompts.size(), 2u);
  EXPECT_EQ(std::get<std::string>(r->prompts[1]), "b");
  EXPECT_EQ(r->sampling.max_tokens, 5);
  EXPECT_EQ(r->sampling.temperature, 0.0f);
  EXPECT_EQ(r->sampling.n, 2);
  EXPECT_EQ(r->sampling.stop, (std::vector<std::string>{"\n"}));
  EXPECT_EQ(r->sampling.seed, 7);
  EXPECT_TRUE(r->echo);
  EXPECT_EQ(r->logprobs, 5);
  EXPECT_EQ(r->user, "u");
  EXPECT_TRUE(r->stream.include_usage);
  EXPECT_EQ(r->sampling.top_k, 5);
}

TEST(OpenaiCompletionRequest, PromptForms) {
  auto text = parse(with_prompt(R"("")"));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(std::get<std::string>(text->prompts[0]), "");

  auto tokens = parse(with_prompt("[1, 2, 2147483647, 0]"));
  ASSERT_TRUE(tokens.ok()) << tokens.error().to_string();
  ASSERT_EQ(tokens->prompts.size(), 1u);
  EXPECT_EQ(std::get<Tokens>(tokens->prompts[0]), (Tokens{1, 2, 2147483647, 0}));

  auto batches = parse(with_prompt("[[1, 2], [3]]"));
  ASSERT_TRUE(batches.ok()) << batches.error().to_string();
  ASSERT_EQ(batches->prompts.size(), 2u);
  EXPECT_EQ(std::get<Tokens>(batches->prompts[0]), (Tokens{1, 2}));
  EXPECT_EQ(std::get<Tokens>(batches->prompts[1]), (Tokens{3}));

  auto strings = parse(with_prompt(R"(["x", "", "z"])"));
  ASSERT_TRUE(strings.ok());
  ASSERT_EQ(strings->prompts.size(), 3u);
  EXPECT_EQ(std::get<std::string>(strings->prompts[2]), "z");
}

TEST(OpenaiCompletionRequest, InvalidPrompts) {
  EXPECT_TRUE(fails_with(parse(R"({"model":"m"})"), ErrorCode::kInvalidArgument, "prompt"));
  EXPECT_TRUE(fails_with(parse(with_prompt("null")), ErrorCode::kInvalidArgument, "prompt"));
  EXPECT_TRUE(fails_with(parse(with_prompt("5")), ErrorCode::kInvalidArgument, "prompt"));
  EXPECT_TRUE(fails_with(parse(with_prompt("{}")), ErrorCode::kInvalidArgument, "prompt"));
  EXPECT_TRUE(fails_with(parse(with_prompt("[]")), ErrorCode::kInvalidArgument, "prompt"));
  EXPECT_TRUE(
      fails_with(parse(with_prompt(R"(["a", 1])")), ErrorCode::kInvalidArgument, "prompt[1]"));
  EXPECT_TRUE(
      fails_with(parse(with_prompt(R"([[1], "a"])")), ErrorCode::kInvalidArgument, "prompt[1]"));
  EXPECT_TRUE(
      fails_with(parse(with_prompt(R"([1, "a"])")), ErrorCode::kInvalidArgument, "prompt[1]"));
  EXPECT_TRUE(fails_with(parse(with_prompt("[1, -1]")), ErrorCode::kInvalidArgument, "prompt[1]"));
  EXPECT_TRUE(
      fails_with(parse(with_prompt("[2147483648]")), ErrorCode::kInvalidArgument, "prompt[0]"));
  EXPECT_TRUE(fails_with(parse(with_prompt("[1.5]")), ErrorCode::kInvalidArgument, "prompt[0]"));
  EXPECT_TRUE(
      fails_with(parse(with_prompt("[[1], []]")), ErrorCode::kInvalidArgument, "prompt[1]"));
  EXPECT_TRUE(fails_with(parse(with_prompt("[[1], [2, null]]")), ErrorCode::kInvalidArgument,
                         "prompt[1][1]"));
  EXPECT_TRUE(
      fails_with(parse(with_prompt("[[[1]]]")), ErrorCode::kInvalidArgument, "prompt[0][0]"));
  EXPECT_TRUE(fails_with(parse(with_prompt("[null]")), ErrorCode::kInvalidArgument, "prompt[0]"));
}

TEST(OpenaiCompletionRequest, PromptLimits) {
  ApiLimits limits;
  limits.max_prompts = 2;
  limits.max_total_content_bytes = 6;
  limits.max_prompt_token_ids = 3;
  EXPECT_TRUE(parse(with_prompt(R"(["abc", "def"])"), limits).ok());
  EXPECT_TRUE(fails_with(parse(with_prompt(R"(["a", "b", "c"])"), limits), ErrorCode::kOutOfRange,
                         "prompt"));
  EXPECT_TRUE(fails_with(parse(with_prompt(R"(["abc", "defg"])"), limits),
                         ErrorCode::kPayloadTooLarge, "prompt"));
  EXPECT_TRUE(fails_with(parse(with_prompt(R"("abcdefg")"), limits), ErrorCode::kPayloadTooLarge,
                         "prompt"));
  // A single token prompt is one prompt, however long; its ids count against the id limit.
  EXPECT_TRUE(parse(with_prompt("[1, 2, 3]"), limits).ok());
  EXPECT_TRUE(fails_with(parse(with_prompt("[1, 2, 3, 4]"), limits), ErrorCode::kPayloadTooLarge,
                         "prompt"));
  EXPECT_TRUE(fails_with(parse(with_prompt("[[1, 2], [3, 4]]"), limits),
                         ErrorCode::kPayloadTooLarge, "prompt"));
}

TEST(OpenaiCompletionRequest, MaxTokens) {
  EXPECT_EQ(parse(completion_body(R"("max_tokens": 1)"))->sampling.max_tokens, 1);
  EXPECT_TRUE(fails_with(parse(completion_body(R"("max_tokens": 0)")), ErrorCode::kInvalidArgument,
                         "max_tokens"));
  EXPECT_EQ(parse(completion_body(R"("max_tokens": 0, "echo": true)"))->sampling.max_tokens, 0);
  EXPECT_TRUE(fails_with(parse(completion_body(R"("max_tokens": -1, "echo": true)")),
                         ErrorCode::kInvalidArgument, "max_tokens"));
  EXPECT_TRUE(fails_with(parse(completion_body(R"("max_tokens": "16")")),
                         ErrorCode::kInvalidArgument, "max_tokens"));
  ApiLimits limits;
  limits.max_output_tokens = 8;
  EXPECT_EQ(parse(completion_body(), limits)->sampling.max_tokens, 8)
      << "the default of 16 is capped by the limit";
  EXPECT_TRUE(fails_with(parse(completion_body(R"("max_tokens": 9)"), limits),
                         ErrorCode::kOutOfRange, "max_tokens"));
}

TEST(OpenaiCompletionRequest, EchoAndLogprobs) {
  EXPECT_TRUE(
      fails_with(parse(completion_body(R"("echo": "yes")")), ErrorCode::kInvalidArgument, "echo"));
  EXPECT_EQ(parse(completion_body(R"("logprobs": 0)"))->logprobs, 0);
  EXPECT_EQ(parse(completion_body(R"("logprobs": 5)"))->logprobs, 5);
  EXPECT_TRUE(fails_with(parse(completion_body(R"("logprobs": 6)")), ErrorCode::kInvalidArgument,
                         "logprobs"));
  EXPECT_TRUE(fails_with(parse(completion_body(R"("logprobs": -1)")), ErrorCode::kInvalidArgument,
                         "logprobs"));
  EXPECT_TRUE(fails_with(parse(completion_body(R"("logprobs": true)")), ErrorCode::kInvalidArgument,
                         "logprobs"));
  ApiLimits limits;
  limits.max_completion_logprobs = 20;
  EXPECT_EQ(parse(completion_body(R"("logprobs": 20)"), limits)->logprobs, 20);
}

TEST(OpenaiCompletionRequest, UnsupportedLegacyFeatures) {
  EXPECT_TRUE(parse(completion_body(R"("suffix": "")")).ok());
  EXPECT_TRUE(fails_with(parse(completion_body(R"("suffix": "end")")), ErrorCode::kUnimplemented,
                         "suffix"));
  EXPECT_TRUE(
      fails_with(parse(completion_body(R"("suffix": 1)")), ErrorCode::kInvalidArgument, "suffix"));
  EXPECT_TRUE(parse(completion_body(R"("best_of": 3, "n": 3)")).ok());
  EXPECT_TRUE(
      fails_with(parse(completion_body(R"("best_of": 3)")), ErrorCode::kUnimplemented, "best_of"));
  EXPECT_TRUE(fails_with(parse(completion_body(R"("best_of": 1, "n": 2)")),
                         ErrorCode::kInvalidArgument, "best_of"));
  EXPECT_TRUE(fails_with(parse(completion_body(R"("best_of": 0)")), ErrorCode::kInvalidArgument,
                         "best_of"));
  EXPECT_TRUE(fails_with(parse(completion_body(R"("logit_bias": {"1": 5})")),
                         ErrorCode::kUnimplemented, "logit_bias"));
}

TEST(OpenaiCompletionRequest, UnknownFieldsAreIgnored) {
  EXPECT_TRUE(parse(completion_body(R"("messages": 5, "tools": "x", "foo": [[[]]])")).ok());
}

}  // namespace
}  // namespace spillway::openai
