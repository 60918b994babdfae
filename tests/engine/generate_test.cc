// End-to-end generation against the reference outputs in ../shared/models.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "engine/detokenizer.h"
#include "engine/generator.h"

#include "model_fixture.h"

namespace spillway::engine {
namespace {

using spillway::testing::shared_path;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<std::int32_t> read_ids(const std::string& path) {
  std::istringstream in(read_file(path));
  return {std::istream_iterator<std::int32_t>(in), {}};
}

GenerateRequest greedy(std::string prompt, std::int32_t max_tokens) {
  GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  return r;
}

std::unique_ptr<Generator> make_generator(const Model& m, std::int32_t threads = 2) {
  auto g = Generator::create(m, {threads, 0, 64});
  EXPECT_TRUE(g.ok()) << g.error().message();
  return std::move(g).value();
}

class Greedy256 : public ::testing::TestWithParam<const char*> {};

// The acceptance test: 256 greedy tokens from BOS reproduce llama2.c's output exactly, for the
// GGUF and for the llama2.c checkpoint of the same model.
TEST_P(Greedy256, MatchesReferenceTextAndIds) {
  const std::string which = GetParam();
  const std::string gguf = spillway::testing::stories_gguf();
  SPW_REQUIRE_SHARED_FILE(gguf);
  ModelLoadOptions options{gguf, ""};
  if (which == "llama2c") {
    options = {shared_path("models/stories260K.bin"), shared_path("models/tok512.bin")};
  }
  auto model = spillway::testing::load_model_or_die(options);
  ASSERT_NE(model, nullptr);
  auto gen = make_generator(*model);
  std::string streamed;
  auto result = gen->generate(greedy("", 256), [&](std::string_view s) { streamed += s; });
  ASSERT_TRUE(result.ok()) << result.error().message();

  std::vector<std::int32_t> ids = result->prompt_tokens;
  ids.insert(ids.end(), result->tokens.begin(), result->tokens.end());
  EXPECT_EQ(ids, read_ids(shared_path("models/stories260K_greedy256_ids.txt")));
  // The reference file ends with the newline llama2.c prints after generating.
  EXPECT_EQ(result->text + "\n", read_file(shared_path("models/stories260K_greedy256.txt")));
  EXPECT_EQ(streamed, result->text);
  EXPECT_EQ(result->finish, FinishReason::kLength);
}

INSTANTIATE_TEST_SUITE_P(Stories260K, Greedy256, ::testing::Values("gguf", "llama2c"));

TEST(Generate, F16ModelStaysCloseToF32) {
  const std::string f16 = shared_path("models/stories260K-f16.gguf");
  SPW_REQUIRE_SHARED_FILE(f16);
  auto model = spillway::testing::load_model_or_die({f16, ""});
  ASSERT_NE(model, nullptr);
  auto result = make_generator(*model)->generate(greedy("", 256));
  ASSERT_TRUE(result.ok());
  const auto golden = read_ids(shared_path("models/stories260K_greedy256_ids.txt"));
  std::size_t same_prefix = 0;
  while (same_prefix < result->tokens.size() &&
         result->tokens[same_prefix] == golden[same_prefix + 1]) {
    ++same_prefix;
  }
  // "Within a few tokens": the F16 weights may flip a near-tie late in the text.
  EXPECT_GE(same_prefix, 200u);
}

// Prompt processing (batched prefill) must continue exactly as the reference did: feed the
// first k reference tokens back as a prompt and expect the reference's continuation.
TEST(Generate, PromptContinuesLikeReference) {
  const std::string gguf = spillway::testing::stories_gguf();
  SPW_REQUIRE_SHARED_FILE(gguf);
  auto model = spillway::testing::load_model_or_die({gguf, ""});
  ASSERT_NE(model, nullptr);
  const auto golden = read_ids(shared_path("models/stories260K_greedy256_ids.txt"));
  for (std::size_t k : {12u, 40u, 100u}) {
    const std::vector<std::int32_t> prefix(golden.begin() + 1, golden.begin() + 1 + k);
    const std::string prompt = detokenize(model->tokenizer(), prefix);
    auto tokens = model->tokenizer().encode(prompt, true, false);
    ASSERT_TRUE(tokens.ok());
    ASSERT_EQ(std::vector<std::int32_t>(tokens->begin() + 1, tokens->end()), prefix)
        << "prompt does not re-tokenize to the reference ids; pick another k";
    // Prefill chunks of 64 tokens: k = 100 spans two chunks.
    auto result = make_generator(*model)->generate(greedy(prompt, 30));
    ASSERT_TRUE(result.ok());
    const std::vector<std::int32_t> expected(golden.begin() + 1 + k, golden.begin() + 1 + k + 30);
    EXPECT_EQ(result->tokens, expected) << "k = " << k;
  }
}

TEST(Generate, SingleThreadMatchesTwoThreads) {
  const std::string gguf = spillway::testing::stories_gguf();
  SPW_REQUIRE_SHARED_FILE(gguf);
  auto model = spillway::testing::load_model_or_die({gguf, ""});
  auto a = make_generator(*model, 1)->generate(greedy("Lily and Ben", 64));
  auto b = make_generator(*model, 2)->generate(greedy("Lily and Ben", 64));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
}

TEST(Generate, SeededSamplingIsReproducible) {
  const std::string gguf = spillway::testing::stories_gguf();
  SPW_REQUIRE_SHARED_FILE(gguf);
  auto model = spillway::testing::load_model_or_die({gguf, ""});
  auto gen = make_generator(*model);
  GenerateRequest r = greedy("Once upon a time", 48);
  r.sampling.temperature = 1.5f;
  r.sampling.seed = 11;
  auto a = gen->generate(r);
  auto b = gen->generate(r);
  r.sampling.seed = 12;
  auto c = gen->generate(r);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->tokens, c->tokens);
}

TEST(Generate, MaxTokensAndStopStrings) {
  const std::string gguf = spillway::testing::stories_gguf();
  SPW_REQUIRE_SHARED_FILE(gguf);
  auto model = spillway::testing::load_model_or_die({gguf, ""});
  auto gen = make_generator(*model);
  auto five = gen->generate(greedy("", 5));
  ASSERT_TRUE(five.ok());
  EXPECT_EQ(five->tokens.size(), 5u);
  EXPECT_EQ(five->finish, FinishReason::kLength);

  GenerateRequest r = greedy("", 256);
  r.stop = {"Lily."};
  auto stopped = gen->generate(r);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->finish, FinishReason::kStop);
  EXPECT_EQ(stopped->text, "Once upon a time, there was a little girl named ");
}

TEST(Generate, BadRequestsAreErrors) {
  const std::string gguf = spillway::testing::stories_gguf();
  SPW_REQUIRE_SHARED_FILE(gguf);
  auto model = spillway::testing::load_model_or_die({gguf, ""});
  auto small = Generator::create(*model, {1, 32, 16});
  ASSERT_TRUE(small.ok());
  std::string long_prompt;
  for (int i = 0; i < 40; ++i)
    long_prompt += " Lily";
  auto too_long = (*small)->generate(greedy(long_prompt, 4));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(too_long.error().message().find("context holds 32"), std::string::npos);

  EXPECT_EQ((*small)->generate(greedy("x", 0)).error().code(), ErrorCode::kInvalidArgument);
  GenerateRequest bad = greedy("x", 4);
  bad.sampling.temperature = -1;
  EXPECT_EQ((*small)->generate(bad).error().code(), ErrorCode::kInvalidArgument);
  // Generation stops at the end of the context rather than overrunning the cache.
  auto capped = (*small)->generate(greedy("", 1000));
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->tokens.size(), 32u);
  EXPECT_EQ(capped->finish, FinishReason::kLength);
}

}  // namespace
}  // namespace spillway::engine
