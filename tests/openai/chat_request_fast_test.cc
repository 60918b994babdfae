// The one-pass reading of common chat requests (openai/chat_request_fast.h): it reads the
// common shapes, and whatever it reads equals the document reading of the same body; for
// everything else it declines and parse_chat_completion_request answers as the document does.
#include "openai/chat_request_fast.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "openai_test_support.h"

namespace spillway::openai {
namespace {

using internal::read_chat_request_document;
using internal::read_common_chat_request;

ApiLimits tight_limits() {
  ApiLimits l;
  l.max_model_name_bytes = 8;
  l.max_messages = 2;
  l.max_total_content_bytes = 24;
  l.max_n = 2;
  l.max_output_tokens = 64;
  return l;
}

// The contract, for one body: if the fast reading gives a request, the document reading gives
// the same one; and parse_chat_completion_request answers exactly as the document does.
::testing::AssertionResult keeps_contract(const std::string& body, const ApiLimits& limits) {
  const auto document = read_chat_request_document(body, limits);
  if (const auto fast = read_common_chat_request(body, limits)) {
    if (!document.ok()) {
      return ::testing::AssertionFailure() << "fast read accepted what the document refuses ("
                                           << document.error().to_string() << "): " << body;
    }
    if (!(*document == *fast)) {
      return ::testing::AssertionFailure() << "fast read differs from the document: " << body;
    }
  }
  const auto parsed = parse_chat_completion_request(body, limits);
  if (parsed.ok() != document.ok()) {
    return ::testing::AssertionFailure() << "parse and document disagree on: " << body;
  }
  if (parsed.ok() ? !(*parsed == *document)
                  : parsed.error().to_string() != document.error().to_string()) {
    return ::testing::AssertionFailure() << "parse and document answer differently: " << body;
  }
  return ::testing::AssertionSuccess();
}

const std::vector<std::string>& common_bodies() {
  static const std::vector<std::string> bodies = {
      R"({"model":"bench","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8})",
      R"({"model":"m","messages":[{"role":"system","content":"Be brief.","name":"s"},)"
      R"({"role":"developer","content":""},{"role":"assistant","content":"ok"},)"
      R"({"role":"user","content":"caf\u00e9 \ud83d\ude00\n\"q\""}],)"
      R"("max_completion_tokens":16,"max_tokens":4,"n":2,"stream":true,)"
      R"("stream_options":{"include_usage":true},"temperature":0.5,"top_p":1,"seed":-7,)"
      R"("user":"u"})",
      R"({"stream_options":{},"stream":true,"messages":[{"content":"hi","role":"user"}],)"
      R"("model":"m","temperature":2,"top_p":0.25,"seed":9223372036854775807})",
      R"( { "model" : "m" , "messages" : [ { "role" : "user" , "content" : "hi" } ] } )",
  };
  return bodies;
}

TEST(OpenaiChatRequestFast, ReadsCommonShapesAsTheDocumentDoes) {
  for (const std::string& body : common_bodies()) {
    const auto fast = read_common_chat_request(body, {});
    ASSERT_TRUE(fast.has_value()) << "declined: " << body;
    const auto document = read_chat_request_document(body, {});
    ASSERT_TRUE(document.ok()) << document.error().to_string();
    EXPECT_TRUE(*fast == *document) << body;
  }
  const auto r = read_common_chat_request(common_bodies()[1], {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->messages.size(), 4u);
  EXPECT_EQ(r->messages[0].role, ChatRole::kSystem);
  EXPECT_EQ(r->messages[0].name, "s");
  EXPECT_EQ(r->messages[1].role, ChatRole::kSystem);
  EXPECT_EQ(r->messages[3].content, "caf\xc3\xa9 \xf0\x9f\x98\x80\n\"q\"");
  EXPECT_EQ(r->sampling.max_tokens, 16);  // max_completion_tokens wins over max_tokens.
  EXPECT_EQ(r->sampling.n, 2);
  EXPECT_TRUE(r->stream.stream);
  EXPECT_TRUE(r->stream.include_usage);
  EXPECT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_EQ(r->sampling.seed, -7);
  EXPECT_EQ(r->user, "u");
}

TEST(OpenaiChatRequestFast, DeclinesWhatItDoesNotReadAndTheDocumentAnswers) {
  const std::string m = R"("messages":[{"role":"user","content":"hi"}])";
  const std::vector<std::string> others = {
      R"({"model":"m",)" + m + R"(,"model":"n"})",               // repeated member
      R"({"model":"m",)" + m + R"(,"max_tokens":null})",         // null
      R"({"model":"m",)" + m + R"(,"stop":"x"})",                // another member
      R"({"model":"m",)" + m + R"(,"tools":[]})",                // a checked feature
      R"({"model":"m",)" + m + R"(,"max_tokens":16.0})",         // an integer as a float
      R"({"model":"m",)" + m + R"(,"max_tokens":0})",            // out of range
      R"({"model":"m",)" + m + R"(,"max_tokens":99999999999})",  // past int32
      R"({"model":"m",)" + m + R"(,"n":0})",
      R"({"model":"m",)" + m + R"(,"seed":18446744073709551615})",
      R"({"model":"m",)" + m + R"(,"temperature":2.5})",
      R"({"model":"m",)" + m + R"(,"top_p":0})",
      R"({"model":"m",)" + m + R"(,"stream":"yes"})",
      R"({"model":"m",)" + m + R"(,"stream_options":{"include_usage":true}})",  // no stream
      R"({"model":"m",)" + m + R"(,"stream":true,"stream_options":{"x":1}})",
      R"({"model":"","messages":[{"role":"user","content":"hi"}]})",
      R"({"model":"m","messages":[]})",
      R"({"model":"m","messages":[{"role":"tool","content":"hi"}]})",
      R"({"model":"m","messages":[{"role":"user"}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi","role":"user"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi","refusal":null}]})",
      R"({"model":"m","messages":["hi"]})",
      R"({"model":"m","messages":{"role":"user"}})",
      R"({"messages":[{"role":"user","content":"hi"}]})",
      R"({"model":"m",)" + m + "} x",
      R"({"model":"m",)" + m,
      "[1]",
      "",
      "{\"model\":\"\xff\"," + m + "}",
  };
  for (const std::string& body : others) {
    EXPECT_FALSE(read_common_chat_request(body, {}).has_value()) << body;
    EXPECT_TRUE(keeps_contract(body, {}));
  }
}

TEST(OpenaiChatRequestFast, DeclinesPastEveryLimit) {
  const ApiLimits l = tight_limits();
  const std::vector<std::string> past = {
      R"({"model":"123456789","messages":[{"role":"user","content":"hi"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},)"
      R"({"role":"user","content":"c"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"0123456789012345678901234"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"01234567890123456789","name":"abcde"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"n":3})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":65})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":65})",
  };
  for (const std::string& body : past) {
    EXPECT_FALSE(read_common_chat_request(body, l).has_value()) << body;
    EXPECT_TRUE(keeps_contract(body, l));
    EXPECT_FALSE(parse_chat_completion_request(body, l).ok()) << body;
  }
  // At the limits, it still reads them.
  const std::string at =
      R"({"model":"12345678","messages":[{"role":"user","content":"0123456789"},)"
      R"({"role":"user","content":"0123456789","name":"abcd"}],"n":2,"max_tokens":64})";
  EXPECT_TRUE(read_common_chat_request(at, l).has_value());
  EXPECT_TRUE(keeps_contract(at, l));
  ApiLimits small_body;
  small_body.max_body_bytes = at.size() - 1;
  EXPECT_FALSE(read_common_chat_request(at, small_body).has_value());
  EXPECT_TRUE(keeps_contract(at, small_body));
}

// Every one-byte change (replacement by a byte that matters to JSON, or deletion) of the common
// bodies keeps the contract, under the default limits and tight ones.
TEST(OpenaiChatRequestFast, EveryOneByteChangeOfACommonBodyKeepsTheContract) {
  const std::string replacements = "0129\"{}[],:.-e nxtu\\";
  int fast_reads = 0;
  int bodies = 0;
  for (const ApiLimits& limits : {ApiLimits{}, tight_limits()}) {
    for (const std::string& base : common_bodies()) {
      for (std::size_t i = 0; i < base.size(); ++i) {
        std::string deleted = base;
        deleted.erase(i, 1);
        ASSERT_TRUE(keeps_contract(deleted, limits));
        fast_reads += read_common_chat_request(deleted, limits).has_value();
        ++bodies;
        for (const char c : replacements) {
          if (c == base[i]) continue;
          std::string changed = base;
          changed[i] = c;
          ASSERT_TRUE(keeps_contract(changed, limits));
          fast_reads += read_common_chat_request(changed, limits).has_value();
          ++bodies;
        }
      }
    }
  }
  // Both sides of the contract were exercised: some changes are still common requests.
  EXPECT_GT(fast_reads, 0);
  EXPECT_LT(fast_reads, bodies);
}

}  // namespace
}  // namespace spillway::openai
