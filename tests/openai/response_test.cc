// Response rendering: every object is parsed back and its exact structure checked.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/random.h"

#include "openai/chat_response.h"
#include "openai/completion_response.h"
#include "openai/models_response.h"
#include "openai/response_types.h"

#include "openai_test_support.h"

namespace spillway::openai {
namespace {

namespace json = boost::json;
using testing::keys_of;
using testing::parse_json;
using testing::str;
using Keys = std::set<std::string>;

ResponseMeta meta(std::string id = "chatcmpl-abc") {
  return ResponseMeta{std::move(id), 1700000000, "llama-3", ""};
}

void expect_usage(const json::value& usage, std::int64_t prompt, std::int64_t completion) {
  EXPECT_EQ(keys_of(usage), (Keys{"prompt_tokens", "completion_tokens", "total_tokens"}));
  EXPECT_EQ(usage.at("prompt_tokens").as_int64(), prompt);
  EXPECT_EQ(usage.at("completion_tokens").as_int64(), completion);
  EXPECT_EQ(usage.at("total_tokens").as_int64(), prompt + completion);
}

TEST(OpenaiResponseTypes, FinishReasons) {
  EXPECT_EQ(finish_reason_name(FinishReason::kStop), "stop");
  EXPECT_EQ(finish_reason_name(FinishReason::kLength), "length");
}

TEST(OpenaiResponseTypes, TokenDisplayText) {
  EXPECT_EQ(token_display_text(" Hello"), " Hello");
  EXPECT_EQ(token_display_text("\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(token_display_text("\xE2\x80"), "bytes:\\xe2\\x80");
  EXPECT_EQ(token_display_text("a\xFF"), "bytes:\\x61\\xff");
}

TEST(OpenaiResponseTypes, ResponseIdsAreRandomAlphanumericAndSeeded) {
  SeededRandom a(7);
  SeededRandom b(7);
  const std::string id = new_response_id(kChatCompletionIdPrefix, a);
  EXPECT_EQ(id, new_response_id(kChatCompletionIdPrefix, b));
  EXPECT_NE(id, new_response_id(kChatCompletionIdPrefix, a));
  ASSERT_EQ(id.size(), std::string_view("chatcmpl-").size() + 24);
  EXPECT_EQ(id.rfind("chatcmpl-", 0), 0u);
  for (const char c : id.substr(9))
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << id;
  EXPECT_EQ(new_response_id(kCompletionIdPrefix, a).rfind("cmpl-", 0), 0u);
}

TEST(OpenaiChatCompletion, ExactShapeWithoutLogprobs) {
  std::vector<ChatChoice> choices(2);
  choices[0] = {0, "Hello \"world\"\n", FinishReason::kStop, std::nullopt};
  choices[1] = {1, "Hi", FinishReason::kLength, std::nullopt};
  const auto v = parse_json(render_chat_completion(meta(), choices, Usage{12, 7, std::nullopt}));
  EXPECT_EQ(keys_of(v), (Keys{"id", "object", "created", "model", "choices", "usage"}));
  EXPECT_EQ(str(v.at("id")), "chatcmpl-abc");
  EXPECT_EQ(str(v.at("object")), "chat.completion");
  EXPECT_EQ(v.at("created").as_int64(), 1700000000);
  EXPECT_EQ(str(v.at("model")), "llama-3");
  const auto& arr = v.at("choices").as_array();
  ASSERT_EQ(arr.size(), 2u);
  EXPECT_EQ(keys_of(arr[0]), (Keys{"index", "message", "logprobs", "finish_reason"}));
  EXPECT_EQ(arr[0].at("index").as_int64(), 0);
  EXPECT_EQ(keys_of(arr[0].at("message")), (Keys{"role", "content"}));
  EXPECT_EQ(str(arr[0].at("message").at("role")), "assistant");
  EXPECT_EQ(str(arr[0].at("message").at("content")), "Hello \"world\"\n");
  EXPECT_TRUE(arr[0].at("logprobs").is_null());
  EXPECT_EQ(str(arr[0].at("finish_reason")), "stop");
  EXPECT_EQ(arr[1].at("index").as_int64(), 1);
  EXPECT_EQ(str(arr[1].at("finish_reason")), "length");
  expect_usage(v.at("usage"), 12, 7);
}

TEST(OpenaiChatCompletion, SystemFingerprintAndCachedTokensWhenSet) {
  ResponseMeta m = meta();
  m.system_fingerprint = "fp_spillway";
  const std::vector<ChatChoice> choices{{0, "x", FinishReason::kStop, std::nullopt}};
  const auto v = parse_json(render_chat_completion(m, choices, Usage{10, 1, 8}));
  EXPECT_EQ(str(v.at("system_fingerprint")), "fp_spillway");
  const auto& usage = v.at("usage");
  EXPECT_EQ(usage.at("total_tokens").as_int64(), 11);
  EXPECT_EQ(keys_of(usage.at("prompt_tokens_details")), (Keys{"cached_tokens"}));
  EXPECT_EQ(usage.at("prompt_tokens_details").at("cached_tokens").as_int64(), 8);
}

TEST(OpenaiChatCompletion, LogprobsFormat) {
  std::vector<TokenLogprob> tokens;
  tokens.push_back({"Hi", -0.25f, {{"Hi", -0.25f}, {"Hello", -1.5f}}});
  tokens.push_back({"\xE2\x80", -0.5f, {}});  // Part of a character.
  tokens.push_back({"!", -std::numeric_limits<float>::infinity(), {}});
  const std::vector<ChatChoice> choices{{0, "Hi\xE2\x80!", FinishReason::kStop, tokens}};
  const auto v = parse_json(render_chat_completion(meta(), choices, Usage{1, 3, std::nullopt}));
  const auto& choice = v.at("choices").at(0);
  // The partial character in the content becomes U+FFFD; the JSON stays valid.
  EXPECT_EQ(str(choice.at("message").at("content")), "Hi\xEF\xBF\xBD\xEF\xBF\xBD!");
  const auto& logprobs = choice.at("logprobs");
  EXPECT_EQ(keys_of(logprobs), (Keys{"content"}));
  const auto& content = logprobs.at("content").as_array();
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(keys_of(content[0]), (Keys{"token", "logprob", "bytes", "top_logprobs"}));
  EXPECT_EQ(str(content[0].at("token")), "Hi");
  EXPECT_EQ(content[0].at("logprob").to_number<double>(), -0.25);
  EXPECT_EQ(json::serialize(content[0].at("bytes")), "[72,105]");
  const auto& top = content[0].at("top_logprobs").as_array();
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(keys_of(top[1]), (Keys{"token", "logprob", "bytes"}));
  EXPECT_EQ(str(top[1].at("token")), "Hello");
  EXPECT_EQ(top[1].at("logprob").to_number<double>(), -1.5);
  EXPECT_EQ(str(content[1].at("token")), "bytes:\\xe2\\x80");
  EXPECT_EQ(json::serialize(content[1].at("bytes")), "[226,128]");
  EXPECT_TRUE(content[1].at("top_logprobs").as_array().empty());
  EXPECT_EQ(content[2].at("logprob").to_number<double>(), -9999.0);
}

TEST(OpenaiChatStream, ChunkSequence) {
  ChatChunkWriter writer(meta("chatcmpl-s"), /*include_usage=*/false);
  const auto role = parse_json(writer.role_chunk(0));
  EXPECT_EQ(keys_of(role), (Keys{"id", "object", "created", "model", "choices"}));
  EXPECT_EQ(str(role.at("id")), "chatcmpl-s");
  EXPECT_EQ(str(role.at("object")), "chat.completion.chunk");
  EXPECT_EQ(role.at("created").as_int64(), 1700000000);
  const auto& role_choice = role.at("choices").at(0);
  EXPECT_EQ(keys_of(role_choice), (Keys{"index", "delta", "logprobs", "finish_reason"}));
  EXPECT_EQ(json::serialize(role_choice.at("delta")), R"({"role":"assistant","content":""})");
  EXPECT_TRUE(role_choice.at("logprobs").is_null());
  EXPECT_TRUE(role_choice.at("finish_reason").is_null());

  const auto content = parse_json(writer.content_chunk(0, "Once \"upon\"\n"));
  const auto& content_choice = content.at("choices").at(0);
  EXPECT_EQ(keys_of(content_choice.at("delta")), (Keys{"content"}));
  EXPECT_EQ(str(content_choice.at("delta").at("content")), "Once \"upon\"\n");
  EXPECT_TRUE(content_choice.at("finish_reason").is_null());

  const auto finish = parse_json(writer.finish_chunk(0, FinishReason::kLength));
  const auto& finish_choice = finish.at("choices").at(0);
  EXPECT_EQ(json::serialize(finish_choice.at("delta")), "{}");
  EXPECT_EQ(str(finish_choice.at("finish_reason")), "length");
  EXPECT_EQ(kStreamDone, "[DONE]");
}

TEST(OpenaiChatStream, IncludeUsageAddsNullUsageAndAFinalUsageChunk) {
  ResponseMeta m = meta();
  m.system_fingerprint = "fp_1";
  ChatChunkWriter writer(m, /*include_usage=*/true);
  for (const std::string& chunk : {writer.role_chunk(1), writer.content_chunk(1, "x"),
                                   writer.finish_chunk(1, FinishReason::kStop)}) {
    const auto v = parse_json(chunk);
    EXPECT_EQ(keys_of(v),
              (Keys{"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}));
    EXPECT_TRUE(v.at("usage").is_null());
    EXPECT_EQ(v.at("choices").at(0).at("index").as_int64(), 1);
  }
  const auto usage = parse_json(writer.usage_chunk(Usage{5, 2, std::nullopt}));
  EXPECT_EQ(keys_of(usage),
            (Keys{"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}));
  EXPECT_EQ(str(usage.at("object")), "chat.completion.chunk");
  EXPECT_TRUE(usage.at("choices").as_array().empty());
  expect_usage(usage.at("usage"), 5, 2);
}

TEST(OpenaiChatStream, ContentChunkWithLogprobs) {
  ChatChunkWriter writer(meta(), false);
  const std::vector<TokenLogprob> tokens{{" the", -0.125f, {{" the", -0.125f}}}};
  const auto v = parse_json(writer.content_chunk(0, " the", tokens));
  const auto& logprobs = v.at("choices").at(0).at("logprobs");
  ASSERT_TRUE(logprobs.is_object());
  EXPECT_EQ(str(logprobs.at("content").at(0).at("token")), " the");
  EXPECT_EQ(logprobs.at("content").at(0).at("top_logprobs").as_array().size(), 1u);
  // Requested but empty (e.g. a chunk flushed by the stop matcher): an empty content list.
  const auto empty = parse_json(writer.content_chunk(0, "", std::span<const TokenLogprob>()));
  EXPECT_EQ(json::serialize(empty.at("choices").at(0).at("logprobs")), R"({"content":[]})");
}

TEST(OpenaiCompletion, ExactShape) {
  const std::vector<CompletionChoice> choices{
      {0, " there was", FinishReason::kLength, std::nullopt},
      {1, " a cat", FinishReason::kStop, std::nullopt}};
  const auto v = parse_json(render_completion(meta("cmpl-1"), choices, Usage{4, 6, std::nullopt}));
  EXPECT_EQ(keys_of(v), (Keys{"id", "object", "created", "model", "choices", "usage"}));
  EXPECT_EQ(str(v.at("object")), "text_completion");
  EXPECT_EQ(str(v.at("id")), "cmpl-1");
  const auto& arr = v.at("choices").as_array();
  ASSERT_EQ(arr.size(), 2u);
  EXPECT_EQ(keys_of(arr[0]), (Keys{"text", "index", "logprobs", "finish_reason"}));
  EXPECT_EQ(str(arr[0].at("text")), " there was");
  EXPECT_TRUE(arr[0].at("logprobs").is_null());
  EXPECT_EQ(str(arr[0].at("finish_reason")), "length");
  EXPECT_EQ(arr[1].at("index").as_int64(), 1);
  expect_usage(v.at("usage"), 4, 6);
}

TEST(OpenaiCompletion, LegacyLogprobsWithEcho) {
  std::vector<TokenLogprob> tokens;
  tokens.push_back({"Once", std::nullopt, {}});  // First prompt token: no logprob.
  tokens.push_back({" upon", -1.0f, {{" upon", -1.0f}, {" a", -2.0f}}});
  tokens.push_back({" a", -0.5f, {{" a", -0.5f}, {"\xE2\x80", -3.0f}, {" a", -4.0f}}});
  const std::vector<CompletionChoice> choices{{0, "Once upon a", FinishReason::kLength, tokens}};
  const std::string body = render_completion(meta("cmpl-2"), choices, Usage{2, 1, std::nullopt});
  EXPECT_NE(body.find(R"("token_logprobs":[null,-1,-0.5])"), std::string::npos) << body;
  const auto v = parse_json(body);
  const auto& logprobs = v.at("choices").at(0).at("logprobs");
  EXPECT_EQ(keys_of(logprobs), (Keys{"tokens", "token_logprobs", "top_logprobs", "text_offset"}));
  EXPECT_EQ(json::serialize(logprobs.at("tokens")), R"(["Once"," upon"," a"])");
  const auto& top = logprobs.at("top_logprobs").as_array();
  ASSERT_EQ(top.size(), 3u);
  EXPECT_TRUE(top[0].is_null());
  EXPECT_EQ(keys_of(top[1]), (Keys{" upon", " a"}));
  EXPECT_EQ(top[1].at(" a").to_number<double>(), -2.0);
  // Equal texts keep the first (most likely); partial characters use the bytes: form.
  EXPECT_EQ(keys_of(top[2]), (Keys{" a", "bytes:\\xe2\\x80"}));
  EXPECT_EQ(top[2].at(" a").to_number<double>(), -0.5);
  EXPECT_EQ(json::serialize(logprobs.at("text_offset")), "[0,4,9]");
}

TEST(OpenaiCompletionStream, ChunksCarryRunningTextOffsets) {
  CompletionChunkWriter writer(meta("cmpl-3"), /*include_usage=*/true, /*choice_count=*/2);
  const std::vector<TokenLogprob> first{{"ab", -0.5f, {}}, {"c", -1.0f, {}}};
  const std::vector<TokenLogprob> second{{"de", -0.25f, {}}};
  const auto a = parse_json(writer.text_chunk(0, "abc", first));
  EXPECT_EQ(keys_of(a), (Keys{"id", "object", "created", "model", "choices", "usage"}));
  EXPECT_EQ(str(a.at("object")), "text_completion");
  EXPECT_TRUE(a.at("usage").is_null());
  const auto& choice = a.at("choices").at(0);
  EXPECT_EQ(keys_of(choice), (Keys{"text", "index", "logprobs", "finish_reason"}));
  EXPECT_EQ(str(choice.at("text")), "abc");
  EXPECT_TRUE(choice.at("finish_reason").is_null());
  EXPECT_EQ(json::serialize(choice.at("logprobs").at("text_offset")), "[0,2]");
  // Choice 1 has its own offsets; choice 0 continues where it stopped.
  const auto other = parse_json(writer.text_chunk(1, "de", second));
  EXPECT_EQ(json::serialize(other.at("choices").at(0).at("logprobs").at("text_offset")), "[0]");
  const auto b = parse_json(writer.text_chunk(0, "de", second));
  EXPECT_EQ(json::serialize(b.at("choices").at(0).at("logprobs").at("text_offset")), "[3]");
  const auto plain = parse_json(writer.text_chunk(0, "x"));
  EXPECT_TRUE(plain.at("choices").at(0).at("logprobs").is_null());

  const auto finish = parse_json(writer.finish_chunk(0, FinishReason::kStop));
  EXPECT_EQ(str(finish.at("choices").at(0).at("text")), "");
  EXPECT_EQ(str(finish.at("choices").at(0).at("finish_reason")), "stop");
  const auto usage = parse_json(writer.usage_chunk(Usage{3, 4, std::nullopt}));
  EXPECT_TRUE(usage.at("choices").as_array().empty());
  expect_usage(usage.at("usage"), 3, 4);
}

TEST(OpenaiCompletionStream, NoUsageFieldWithoutIncludeUsage) {
  CompletionChunkWriter writer(meta("cmpl-4"), false, 1);
  const auto v = parse_json(writer.text_chunk(0, "x"));
  EXPECT_EQ(keys_of(v), (Keys{"id", "object", "created", "model", "choices"}));
}

TEST(OpenaiModels, ListAndSingleModel) {
  const std::vector<ModelCard> models{{"llama-3-8b", 1700000000, "spillway"},
                                      {"qwen2-7b", 1700000001, "tenant-a"}};
  const auto v = parse_json(render_model_list(models));
  EXPECT_EQ(keys_of(v), (Keys{"object", "data"}));
  EXPECT_EQ(str(v.at("object")), "list");
  const auto& data = v.at("data").as_array();
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(keys_of(data[0]), (Keys{"id", "object", "created", "owned_by"}));
  EXPECT_EQ(str(data[0].at("id")), "llama-3-8b");
  EXPECT_EQ(str(data[0].at("object")), "model");
  EXPECT_EQ(data[1].at("created").as_int64(), 1700000001);
  EXPECT_EQ(str(data[1].at("owned_by")), "tenant-a");
  EXPECT_EQ(render_model_list({}), R"({"object":"list","data":[]})");
  EXPECT_EQ(render_model(models[0]),
            R"({"id":"llama-3-8b","object":"model","created":1700000000,"owned_by":"spillway"})");
}

}  // namespace
}  // namespace spillway::openai
