// The serving core end to end on stories260K: continuous batching, prefix reuse, preemption,
// priorities, cancellation, limits and metrics, checked against one-at-a-time generation.
#include "engine/serving_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "core/metrics.h"
#include "core/random.h"

#include "engine/generator.h"

#include "model_fixture.h"

namespace spillway::engine {
namespace {

using spillway::testing::load_model_or_die;
using spillway::testing::stories_gguf;

struct ChoiceResult {
  std::vector<std::int32_t> tokens;
  std::string text;
  int finishes = 0;
  FinishReason finish = FinishReason::kError;
  Status status;
  std::int32_t cached_prompt_tokens = -1;
  std::int32_t completion_tokens = -1;
};

// Reads a stream to its end; checks there is exactly one finish per choice and nothing after.
std::vector<ChoiceResult> collect(RequestStream& stream, std::int32_t n) {
  std::vector<ChoiceResult> out(static_cast<std::size_t>(n));
  StreamEvent ev;
  while (stream.next(ev)) {
    EXPECT_GE(ev.index, 0);
    EXPECT_LT(ev.index, n);
    ChoiceResult& c = out[static_cast<std::size_t>(ev.index)];
    EXPECT_EQ(c.finishes, 0) << "event after the finish event";
    c.text += ev.text;
    if (ev.kind == StreamEvent::Kind::kToken) {
      c.tokens.push_back(ev.token);
    } else {
      ++c.finishes;
      c.finish = ev.finish;
      c.status = ev.status;
      c.cached_prompt_tokens = ev.cached_prompt_tokens;
      c.completion_tokens = ev.completion_tokens;
    }
  }
  for (const ChoiceResult& c : out)
    EXPECT_EQ(c.finishes, 1);
  EXPECT_TRUE(stream.done());
  return out;
}

class ServingEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(stories_gguf())) return;
    model_ = load_model_or_die({stories_gguf(), ""}).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    SPW_REQUIRE_SHARED_FILE(stories_gguf());
    ASSERT_NE(model_, nullptr);
  }

  static std::vector<std::int32_t> tokens(const std::string& text) {
    auto ids = model_->tokenizer().encode(text, true, false);
    EXPECT_TRUE(ids.ok());
    return *ids;
  }

  // Greedy output of one prompt generated alone (the reference for batched runs).
  static std::vector<std::int32_t> alone(const std::vector<std::int32_t>& prompt,
                                         std::int32_t max_tokens) {
    static std::map<std::pair<std::vector<std::int32_t>, std::int32_t>, std::vector<std::int32_t>>
        memo;
    auto& slot = memo[{prompt, max_tokens}];
    if (!slot.empty()) return slot;
    auto engine = ServingEngine::create(*model_, small_options());
    EXPECT_TRUE(engine.ok());
    auto stream = (*engine)->submit(request(prompt, max_tokens));
    EXPECT_TRUE(stream.ok());
    slot = collect(**stream, 1)[0].tokens;
    return slot;
  }

  static ServingOptions small_options() {
    ServingOptions o;
    o.threads = 2;
    o.kv_cache_blocks = 64;
    o.block_tokens = 16;
    o.max_batch_tokens = 64;
    o.max_running = 16;
    o.max_waiting = 64;
    return o;
  }

  static EngineRequest request(std::vector<std::int32_t> prompt, std::int32_t max_tokens,
                               std::string ns = "tenant") {
    EngineRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0.0f;
    r.cache_namespace = std::move(ns);
    return r;
  }

  static inline Model* model_ = nullptr;
};

TEST_F(ServingEngineTest, SingleRequestMatchesTheGenerator) {
  const std::string prompt = "Once upon a time, there was a little girl";
  auto gen = Generator::create(*model_, {2, 0, 64});
  ASSERT_TRUE(gen.ok());
  GenerateRequest g;
  g.prompt = prompt;
  g.max_tokens = 120;
  g.sampling.temperature = 0.0f;
  auto expected = (*gen)->generate(g);
  ASSERT_TRUE(expected.ok());

  auto engine = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto stream = (*engine)->submit(request(tokens(prompt), 120));
  ASSERT_TRUE(stream.ok());
  const auto got = collect(**stream, 1)[0];
  auto want = expected->tokens;
  if (!want.empty() && model_->vocab().is_eog(want.back())) want.pop_back();
  EXPECT_EQ(got.tokens, want);
  EXPECT_EQ(got.text, expected->text);
  EXPECT_EQ(got.finish, expected->finish);
  EXPECT_EQ(got.completion_tokens, static_cast<std::int32_t>(expected->tokens.size()));
}

// Random arrivals, lengths, priorities and cancellations against a cache far too small for
// all of them at once: every request ends exactly once, uncancelled greedy outputs equal
// generating alone, preemption happens, and no block is leaked.
TEST_F(ServingEngineTest, RandomLoadOnASmallCacheKeepsOutputsAndFreesEverything) {
  ServingOptions o = small_options();
  o.kv_cache_blocks = 24;  // 384 tokens for up to 16 sequences of up to ~150.
  o.max_batch_tokens = 48;
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;

  const char* starts[] = {"Once upon a time", "The little dog", "Tom and Lily went to the park",
                          "One day, a big bird", "Sara had a red ball. She"};
  SeededRandom rng(11);
  struct Sent {
    std::vector<std::int32_t> prompt;
    std::int32_t max_tokens;
    std::shared_ptr<RequestStream> stream;
    int cancel_after;  // Tokens read before cancelling; -1 = never.
  };
  std::vector<Sent> sent;
  for (int i = 0; i < 24; ++i) {
    Sent s;
    s.prompt = tokens(starts[rng.below(5)]);
    s.max_tokens = 20 + static_cast<std::int32_t>(rng.below(100));
    s.cancel_after = rng.below(5) == 0 ? static_cast<int>(rng.below(10)) : -1;
    EngineRequest r = request(s.prompt, s.max_tokens, "t" + std::to_string(rng.below(2)));
    r.priority = static_cast<std::int32_t>(rng.below(3));
    auto stream = engine.submit(std::move(r));
    ASSERT_TRUE(stream.ok()) << stream.error().message();
    s.stream = *stream;
    sent.push_back(std::move(s));
    if (rng.below(3) == 0) std::this_thread::yield();
  }
  for (Sent& s : sent) {
    std::vector<std::int32_t> got;
    int finishes = 0;
    FinishReason reason = FinishReason::kError;
    StreamEvent ev;
    while (s.stream->next(ev)) {
      if (ev.kind == StreamEvent::Kind::kToken) {
        got.push_back(ev.token);
        if (s.cancel_after >= 0 && static_cast<int>(got.size()) == s.cancel_after + 1) {
          s.stream->cancel();
        }
      } else {
        ++finishes;
        reason = ev.finish;
      }
    }
    EXPECT_EQ(finishes, 1);
    if (s.cancel_after < 0) {
      EXPECT_NE(reason, FinishReason::kCancelled);
      EXPECT_EQ(got, alone(s.prompt, s.max_tokens));
    } else if (reason == FinishReason::kCancelled) {
      const auto full = alone(s.prompt, s.max_tokens);
      ASSERT_LE(got.size(), full.size());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), full.begin()));
    }
  }
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(60)));
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_GT(st.scheduler.preemptions, 0u);
}

TEST_F(ServingEngineTest, SharedPrefixIsComputedOnceAndOnlyWithinANamespace) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const std::string system =
      "You are a storyteller. Tell short, happy stories about animals who live in a big "
      "forest near a river, and always end with a lesson about friendship.";
  const auto first = tokens(system + " Tell me about the fox.");
  const auto second = tokens(system + " Tell me about a small bear and his mother.");
  const std::size_t shared =
      std::mismatch(first.begin(), first.end(), second.begin(), second.end()).first - first.begin();
  ASSERT_GE(shared, 32u);

  auto run = [&](const std::vector<std::int32_t>& prompt, const std::string& ns) {
    const std::uint64_t before = engine.stats().scheduler.computed_tokens;
    auto stream = engine.submit(request(prompt, 8, ns));
    EXPECT_TRUE(stream.ok());
    const ChoiceResult r = collect(**stream, 1)[0];
    EXPECT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
    const std::uint64_t computed = engine.stats().scheduler.computed_tokens - before;
    return std::pair(r, computed);
  };
  const auto [a, computed_a] = run(first, "tenant-a");
  EXPECT_EQ(a.cached_prompt_tokens, 0);
  // The prompt plus one decode step per generated token after the first.
  EXPECT_EQ(computed_a, first.size() + a.completion_tokens - 1);

  const auto [b, computed_b] = run(second, "tenant-a");
  const std::int32_t reusable = static_cast<std::int32_t>(shared / 16 * 16);
  EXPECT_EQ(b.cached_prompt_tokens, reusable);
  EXPECT_EQ(computed_b, second.size() - reusable + b.completion_tokens - 1);
  EXPECT_EQ(b.tokens, alone(second, 8));

  const auto [c, computed_c] = run(second, "tenant-b");
  EXPECT_EQ(c.cached_prompt_tokens, 0);
  EXPECT_EQ(computed_c, second.size() + c.completion_tokens - 1);
  EXPECT_EQ(c.tokens, b.tokens);
}

TEST_F(ServingEngineTest, ChoicesShareThePromptAndAreIndependentlySeeded) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto prompt = tokens("Once upon a time, in a land far away, there lived a kind old king");
  EngineRequest greedy = request(prompt, 12, "");
  greedy.n = 3;
  auto s1 = engine.submit(greedy);
  ASSERT_TRUE(s1.ok());
  const auto g = collect(**s1, 3);
  for (const auto& c : g)
    EXPECT_EQ(c.tokens, alone(prompt, 12));
  EXPECT_EQ(g[1].cached_prompt_tokens, g[0].cached_prompt_tokens);  // Reported per request.
  EXPECT_GE(engine.stats().scheduler.prefix_hit_tokens,
            2u * ((prompt.size() - 1) / 16 * 16));  // Both siblings reused the prompt blocks.

  EngineRequest sampled = request(prompt, 12, "");
  sampled.n = 4;
  sampled.sampling.temperature = 1.0f;
  sampled.sampling.seed = 5;
  auto s2 = engine.submit(sampled);
  ASSERT_TRUE(s2.ok());
  const auto r = collect(**s2, 4);
  std::set<std::vector<std::int32_t>> distinct;
  for (const auto& c : r)
    distinct.insert(c.tokens);
  EXPECT_GT(distinct.size(), 1u);
}

TEST_F(ServingEngineTest, QueueFullFailsFastAndCancelReleasesBlocks) {
  ServingOptions o = small_options();
  o.max_running = 1;
  o.max_waiting = 1;
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  EngineRequest long_one = request(tokens("Once upon a time"), 400);
  long_one.ignore_eos = true;
  auto a = engine.submit(long_one);
  ASSERT_TRUE(a.ok());
  StreamEvent ev;
  ASSERT_TRUE((*a)->next(ev));  // Admitted and generating: the queue is empty again.
  auto b = engine.submit(request(tokens("The dog"), 4));
  ASSERT_TRUE(b.ok());  // Queued behind a (max_running = 1).
  auto c = engine.submit(request(tokens("The cat"), 4));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(c.error().message().find("queue is full"), std::string::npos);

  (*a)->cancel();
  const auto ra = collect(**a, 1);
  EXPECT_EQ(ra[0].finish, FinishReason::kCancelled);
  EXPECT_EQ(ra[0].status.code(), ErrorCode::kCancelled);
  EXPECT_LT(ra[0].completion_tokens, 400);
  const auto rb = collect(**b, 1);  // b now runs to completion.
  EXPECT_NE(rb[0].finish, FinishReason::kCancelled);
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST_F(ServingEngineTest, DeadlinesStopsAndLengthsEndRequests) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  EngineRequest late = request(tokens("Once upon a time"), 50);
  late.deadline = SteadyClock().now();
  auto a = engine.submit(late);
  ASSERT_TRUE(a.ok());
  const auto ra = collect(**a, 1);
  EXPECT_EQ(ra[0].finish, FinishReason::kCancelled);
  EXPECT_EQ(ra[0].status.code(), ErrorCode::kDeadlineExceeded);

  const auto prompt = tokens("Once upon a time");
  const auto full = alone(prompt, 60);
  auto b = engine.submit(request(prompt, 5));
  ASSERT_TRUE(b.ok());
  const auto rb = collect(**b, 1);
  EXPECT_EQ(rb[0].finish, FinishReason::kLength);
  EXPECT_EQ(rb[0].tokens, std::vector<std::int32_t>(full.begin(), full.begin() + 5));

  // A stop string taken from the middle of the greedy text ends the output before it.
  auto whole = engine.submit(request(prompt, 60));
  ASSERT_TRUE(whole.ok());
  const std::string text = collect(**whole, 1)[0].text;
  ASSERT_GT(text.size(), 30u);
  const std::string stop = text.substr(20, 6);
  EngineRequest stopping = request(prompt, 60);
  stopping.stop = {stop};
  auto c = engine.submit(stopping);
  ASSERT_TRUE(c.ok());
  const auto rc = collect(**c, 1);
  EXPECT_EQ(rc[0].finish, FinishReason::kStop);
  EXPECT_EQ(rc[0].text, text.substr(0, text.find(stop)));
}

TEST_F(ServingEngineTest, InvalidRequestsAreRejectedAtSubmit) {
  ServingOptions o = small_options();
  o.kv_cache_blocks = 4;  // 64 tokens.
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  auto code = [&](EngineRequest r) {
    auto s = engine.submit(std::move(r));
    return s.ok() ? ErrorCode::kOk : s.error().code();
  };
  const auto p = tokens("Once upon a time");
  EXPECT_EQ(code(request({}, 4)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(request({1, 100000}, 4)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(request(p, 0)), ErrorCode::kInvalidArgument);
  EngineRequest many = request(p, 4);
  many.n = 17;
  EXPECT_EQ(code(many), ErrorCode::kInvalidArgument);
  EngineRequest hot = request(p, 4);
  hot.sampling.temperature = -1.0f;
  EXPECT_EQ(code(hot), ErrorCode::kInvalidArgument);
  EngineRequest empty_stop = request(p, 4);
  empty_stop.stop = {""};
  EXPECT_EQ(code(empty_stop), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(request(p, 100)), ErrorCode::kOutOfRange);    // Beyond the 64-token cache.
  EXPECT_EQ(code(request(p, 10000)), ErrorCode::kOutOfRange);  // Beyond the context.
  EXPECT_EQ(code(request(p, 4)), ErrorCode::kOk);

  ServingOptions bad = small_options();
  bad.max_running = 100;  // > max_batch_tokens.
  EXPECT_FALSE(ServingEngine::create(*model_, bad).ok());
  bad = small_options();
  bad.kv_cache_blocks = 0;
  bad.kv_cache_mib = 0;
  EXPECT_FALSE(ServingEngine::create(*model_, bad).ok());

  engine.stop_accepting();
  EXPECT_EQ(code(request(p, 4)), ErrorCode::kUnavailable);
}

TEST_F(ServingEngineTest, ShutdownCancelsWhatIsInFlight) {
  std::shared_ptr<RequestStream> stream;
  {
    auto created = ServingEngine::create(*model_, small_options());
    ASSERT_TRUE(created.ok());
    EngineRequest r = request(tokens("Once upon a time"), 400);
    r.ignore_eos = true;
    auto s = (*created)->submit(r);
    ASSERT_TRUE(s.ok());
    stream = *s;
    StreamEvent ev;
    ASSERT_TRUE(stream->next(ev));
  }  // The engine is destroyed here.
  const auto r = collect(*stream, 1);
  EXPECT_EQ(r[0].finish, FinishReason::kCancelled);
}

TEST_F(ServingEngineTest, MetricsFollowTheVllmNames) {
  MetricsRegistry registry;
  auto created = ServingEngine::create(*model_, small_options(), &registry);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto prompt = tokens("Once upon a time");
  EngineRequest r = request(prompt, 6);
  r.ignore_eos = true;
  auto s = engine.submit(r);
  ASSERT_TRUE(s.ok());
  collect(**s, 1);
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  const std::string text = registry.render_prometheus();
  for (const char* line :
       {"spillway:time_to_first_token_seconds_count 1",
        "spillway:e2e_request_latency_seconds_count 1",
        "spillway:request_queue_time_seconds_count 1",
        "spillway:inter_token_latency_seconds_count 5", "spillway:generation_tokens_total 6",
        "spillway:num_requests_running 0", "spillway:num_requests_waiting 0",
        "spillway:kv_cache_usage_perc 0", "spillway:kv_cache_blocks_total 64",
        "spillway:request_success_total{finished_reason=\"length\"} 1"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  EXPECT_NE(text.find("spillway:prompt_tokens_total " + std::to_string(prompt.size())),
            std::string::npos);
  EXPECT_NE(text.find("spillway:prefix_cache_queries_total"), std::string::npos);
  EXPECT_NE(text.find("spillway:num_preemptions_total 0"), std::string::npos);
}

}  // namespace
}  // namespace spillway::engine
