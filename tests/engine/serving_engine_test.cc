// The serving core end to end on stories260K: continuous batching, prefix reuse, preemption,
// priorities, cancellation, limits and metrics, checked against one-at-a-time generation.
#include "engine/serving_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <thread>

#include "core/metrics.h"
#include "core/random.h"

#include "engine/detokenizer.h"
#include "engine/forward.h"
#include "engine/generator.h"
#include "engine/gguf.h"
#include "engine/unicode.h"

#include "model_fixture.h"

namespace spillway::engine {
namespace {

using spillway::testing::load_model_or_die;
using spillway::testing::stories_gguf;

struct ChoiceResult {
  std::vector<std::int32_t> tokens;
  std::vector<std::optional<SampledToken>> logprobs;  // One per token event.
  std::string text;
  int finishes = 0;
  FinishReason finish = FinishReason::kError;
  Status status;
  std::int32_t cached_prompt_tokens = -1;
  std::int32_t completion_tokens = -1;
  // Choice 0 only: the request's prompt log-probabilities, for positions 1, 2, ... in order.
  std::vector<SampledToken> prompt;
  int prompt_events = 0;
};

// Adds one event to its choice's result; checks the event is well-formed: a valid index,
// nothing after the choice's finish event, and text that is valid UTF-8 on its own.
void record(std::vector<ChoiceResult>& out, StreamEvent& ev) {
  ASSERT_GE(ev.index, 0);
  ASSERT_LT(ev.index, static_cast<std::int32_t>(out.size()));
  ChoiceResult& c = out[static_cast<std::size_t>(ev.index)];
  if (ev.kind == StreamEvent::Kind::kPromptLogprobs) {
    ASSERT_EQ(ev.index, 0);
    for (const ChoiceResult& any : out) {
      EXPECT_TRUE(any.tokens.empty()) << "prompt log-probabilities after a generated token";
      EXPECT_EQ(any.finishes, 0) << "prompt log-probabilities after a finish event";
    }
    EXPECT_TRUE(ev.text.empty());
    EXPECT_FALSE(ev.prompt_logprobs.empty());
    // Contiguous and in order, each position once.
    EXPECT_EQ(ev.first_position, static_cast<std::int32_t>(c.prompt.size()) + 1);
    for (SampledToken& s : ev.prompt_logprobs)
      c.prompt.push_back(std::move(s));
    ++c.prompt_events;
    return;
  }
  EXPECT_EQ(c.finishes, 0) << "event after the finish event";
  EXPECT_TRUE(is_valid_utf8(ev.text)) << "text delta is not valid UTF-8";
  c.text += ev.text;
  if (ev.kind == StreamEvent::Kind::kToken) {
    c.tokens.push_back(ev.token);
    c.logprobs.push_back(std::move(ev.logprob));
  } else {
    ++c.finishes;
    c.finish = ev.finish;
    c.status = ev.status;
    c.cached_prompt_tokens = ev.cached_prompt_tokens;
    c.completion_tokens = ev.completion_tokens;
  }
}

// Reads a stream to its end; checks there is exactly one finish per choice and nothing after.
std::vector<ChoiceResult> collect(RequestStream& stream, std::int32_t n) {
  std::vector<ChoiceResult> out(static_cast<std::size_t>(n));
  StreamEvent ev;
  while (stream.next(ev))
    record(out, ev);
  for (const ChoiceResult& c : out)
    EXPECT_EQ(c.finishes, 1);
  EXPECT_TRUE(stream.done());
  return out;
}

// Submits `req` and collects its n choices; a refused submission fails the test (and gives n
// empty results).
std::vector<ChoiceResult> run_request(ServingEngine& engine, EngineRequest req,
                                      std::int32_t n = 1) {
  auto stream = engine.submit(std::move(req));
  if (!stream.ok()) {
    ADD_FAILURE() << "submit: " << stream.error().to_string();
    return std::vector<ChoiceResult>(static_cast<std::size_t>(n));
  }
  return collect(**stream, n);
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
                                         std::int32_t max_tokens, bool ignore_eos = false) {
    static std::map<std::tuple<std::vector<std::int32_t>, std::int32_t, bool>,
                    std::vector<std::int32_t>>
        memo;
    auto& slot = memo[{prompt, max_tokens, ignore_eos}];
    if (!slot.empty()) return slot;
    auto engine = ServingEngine::create(*model_, small_options());
    EXPECT_TRUE(engine.ok());
    EngineRequest r = request(prompt, max_tokens);
    r.ignore_eos = ignore_eos;
    auto stream = (*engine)->submit(std::move(r));
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

  // log-softmax of the logits at every prompt position, computed directly with the forward
  // pass over the whole prompt at once: row q - 1 scores the token at position q.
  static std::vector<std::vector<double>> direct_log_softmax(
      const std::vector<std::int32_t>& prompt) {
    const auto n = static_cast<std::int32_t>(prompt.size());
    const auto n_vocab = static_cast<std::size_t>(model_->config().n_vocab);
    auto cache = KvCache::create(model_->config(), {16, n / 16 + 1});
    EXPECT_TRUE(cache.ok());
    ThreadPool pool(2);
    ForwardPass forward(*model_, *cache, pool, n);
    std::vector<std::int32_t> table(static_cast<std::size_t>(n / 16 + 1));
    std::iota(table.begin(), table.end(), 0);
    const std::span<const std::int32_t> tables[] = {table};
    std::vector<BatchToken> batch;
    for (std::int32_t p = 0; p < n; ++p)
      batch.push_back({0, p, prompt[static_cast<std::size_t>(p)], true});
    std::vector<float> logits(static_cast<std::size_t>(n) * n_vocab);
    EXPECT_TRUE(forward.run({batch, tables}, logits).ok());
    std::vector<std::vector<double>> out;
    for (std::int32_t p = 0; p + 1 < n; ++p) {
      const std::span<const float> row(logits.data() + static_cast<std::size_t>(p) * n_vocab,
                                       n_vocab);
      double max = row[0];
      for (const float l : row)
        max = std::max(max, static_cast<double>(l));
      double z = 0;
      for (const float l : row)
        z += std::exp(static_cast<double>(l) - max);
      std::vector<double> lp(n_vocab);
      for (std::size_t t = 0; t < n_vocab; ++t)
        lp[t] = static_cast<double>(row[t]) - max - std::log(z);
      out.push_back(std::move(lp));
    }
    return out;
  }

  // Checks prompt log-probabilities against direct_log_softmax: one per position from the
  // second, the right token, its log-probability, and `top` alternatives that are the most
  // likely tokens, most likely first.
  static void expect_prompt_logprobs(const std::vector<std::int32_t>& prompt,
                                     const std::vector<SampledToken>& got, std::size_t top) {
    const auto want = direct_log_softmax(prompt);
    ASSERT_EQ(got.size(), prompt.size() - 1);
    for (std::size_t i = 0; i < got.size(); ++i) {
      const std::vector<double>& row = want[i];
      EXPECT_EQ(got[i].token, prompt[i + 1]) << "position " << i + 1;
      EXPECT_NEAR(got[i].logprob, row[static_cast<std::size_t>(prompt[i + 1])], 1e-4)
          << "position " << i + 1;
      ASSERT_EQ(got[i].top.size(), top) << "position " << i + 1;
      std::vector<double> sorted = row;
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      for (std::size_t k = 0; k < top; ++k) {
        const TokenLogprob& alt = got[i].top[k];
        EXPECT_NEAR(alt.logprob, row[static_cast<std::size_t>(alt.token)], 1e-4);
        EXPECT_NEAR(alt.logprob, sorted[k], 1e-4) << "position " << i + 1 << " rank " << k;
      }
    }
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

// Random arrivals (submitted while earlier requests run), prompt and output lengths,
// priorities, tenants, n, EOS honoured or ignored, and cancellations (some before admission,
// some mid-stream), against a cache far too small for all of them at once: every choice gets
// exactly one finish event, every uncancelled greedy output equals generating the request
// alone, preemption happens, and at the end every block is free.
TEST_F(ServingEngineTest, RandomLoadOnASmallCacheKeepsOutputsAndFreesEverything) {
  const std::vector<std::int32_t> common = tokens(
      "Once upon a time, there was a little girl named Lily. She loved to play outside "
      "in the sun with her big red ball and her friend Tom.");
  const std::int32_t n_vocab = model_->config().n_vocab;
  std::uint64_t preemptions = 0;
  std::uint64_t hits = 0;
  for (const std::uint64_t seed : {11u, 12u, 13u}) {
    SCOPED_TRACE(seed);
    ServingOptions o = small_options();
    o.kv_cache_blocks = 24;  // 384 tokens for up to 16 sequences of up to 200.
    o.max_batch_tokens = 48;
    auto created = ServingEngine::create(*model_, o);
    ASSERT_TRUE(created.ok());
    ServingEngine& engine = **created;

    SeededRandom rng(seed);
    struct Sent {
      EngineRequest req;
      std::shared_ptr<RequestStream> stream;
      int cancel_after = -1;  // Tokens read before cancelling; -1 = never.
      bool cancelled = false;
      bool done = false;
      int tokens_read = 0;
      std::vector<ChoiceResult> got;
    };
    std::vector<Sent> sent;
    constexpr std::size_t kRequests = 24;
    auto submit_one = [&] {
      Sent s;
      // 1 to 80 prompt tokens: a prefix of a common text (so some prefixes are cached) or
      // BOS alone, then random tokens.
      const auto len = static_cast<std::size_t>(1 + rng.below(80));
      if (rng.below(2) == 0) {
        s.req.prompt.assign(common.begin(),
                            common.begin() + static_cast<std::ptrdiff_t>(
                                                 std::min<std::size_t>(len, common.size())));
      } else {
        s.req.prompt.push_back(common[0]);
      }
      while (s.req.prompt.size() < len) {
        s.req.prompt.push_back(
            3 + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(n_vocab - 3))));
      }
      s.req.max_tokens = 1 + static_cast<std::int32_t>(rng.below(120));
      s.req.sampling.temperature = 0.0f;
      s.req.cache_namespace = "t" + std::to_string(rng.below(2));
      s.req.priority = static_cast<std::int32_t>(rng.below(3));
      s.req.n = rng.below(5) == 0 ? 2 : 1;
      s.req.ignore_eos = rng.below(2) == 0;
      const std::uint64_t c = rng.below(6);
      s.cancel_after = c == 0 ? 0 : c == 1 ? 1 + static_cast<int>(rng.below(10)) : -1;
      auto stream = engine.submit(s.req);
      ASSERT_TRUE(stream.ok()) << stream.error().message();
      s.stream = *stream;
      s.got.resize(static_cast<std::size_t>(s.req.n));
      if (s.cancel_after == 0) {  // Most likely before it is even admitted.
        s.stream->cancel();
        s.cancelled = true;
      }
      sent.push_back(std::move(s));
    };
    auto read_some = [&](Sent& s, int events) {
      StreamEvent ev;
      for (int k = 0; k < events; ++k) {
        if (!s.stream->next(ev)) {
          s.done = true;
          return;
        }
        if (ev.kind == StreamEvent::Kind::kToken) ++s.tokens_read;
        record(s.got, ev);
        if (!s.cancelled && s.cancel_after > 0 && s.tokens_read >= s.cancel_after) {
          s.stream->cancel();
          s.cancelled = true;
        }
      }
    };
    // Arrivals are interleaved with reading: each loop either submits the next request or
    // reads a few events of a random unfinished one (which paces the arrivals by the engine's
    // progress).
    for (;;) {
      std::vector<std::size_t> unfinished;
      for (std::size_t i = 0; i < sent.size(); ++i) {
        if (!sent[i].done) unfinished.push_back(i);
      }
      if (unfinished.empty() && sent.size() == kRequests) break;
      if (sent.size() < kRequests && (unfinished.empty() || rng.below(2) == 0)) {
        submit_one();
        if (::testing::Test::HasFatalFailure()) return;
      } else {
        read_some(sent[unfinished[rng.below(unfinished.size())]],
                  1 + static_cast<int>(rng.below(4)));
      }
    }

    for (const Sent& s : sent) {
      for (const ChoiceResult& c : s.got) {
        EXPECT_EQ(c.finishes, 1);
        const auto full = alone(s.req.prompt, s.req.max_tokens, s.req.ignore_eos);
        if (c.finish == FinishReason::kCancelled) {
          EXPECT_TRUE(s.cancelled);
          EXPECT_EQ(c.status.code(), ErrorCode::kCancelled);
          ASSERT_LE(c.tokens.size(), full.size());
          EXPECT_TRUE(std::equal(c.tokens.begin(), c.tokens.end(), full.begin()));
        } else {
          EXPECT_EQ(c.tokens, full) << "prompt of " << s.req.prompt.size() << " tokens";
          EXPECT_EQ(c.finish, c.tokens.size() == static_cast<std::size_t>(s.req.max_tokens)
                                  ? FinishReason::kLength
                                  : FinishReason::kStop);
        }
      }
    }
    ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(60)));
    const EngineStats st = engine.stats();
    EXPECT_EQ(st.kv_blocks_used, 0) << "leaked blocks";
    EXPECT_EQ(st.running, 0);
    EXPECT_EQ(st.waiting, 0);
    preemptions += st.scheduler.preemptions;
    hits += st.scheduler.prefix_hit_tokens;
  }
  EXPECT_GT(preemptions, 0u);  // The cache was small enough to matter.
  EXPECT_GT(hits, 0u);
}

// Requests that together need several times the cache, none cancelled and EOS ignored (so
// every one keeps growing): all complete with exactly their own greedy output.
TEST_F(ServingEngineTest, PreemptionUnderPressureCompletesEveryRequestCorrectly) {
  ServingOptions o = small_options();
  o.kv_cache_blocks = 12;  // 192 tokens; each request grows to 110-140.
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const char* starts[] = {"Once upon a time", "The little dog", "Tom and Lily went to the park",
                          "One day, a big bird", "Sara had a red ball. She"};
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<EngineRequest> sent;
  for (int i = 0; i < 8; ++i) {
    EngineRequest r = request(tokens(starts[i % 5]), 100 + 4 * i, "t" + std::to_string(i % 3));
    r.ignore_eos = true;
    r.priority = i % 2;
    auto s = engine.submit(r);
    ASSERT_TRUE(s.ok()) << s.error().message();
    streams.push_back(*s);
    sent.push_back(std::move(r));
  }
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const ChoiceResult r = collect(*streams[i], 1)[0];
    EXPECT_EQ(r.finish, FinishReason::kLength) << "request " << i;
    EXPECT_EQ(r.completion_tokens, sent[i].max_tokens);
    EXPECT_EQ(r.tokens, alone(sent[i].prompt, sent[i].max_tokens, true)) << "request " << i;
  }
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  EXPECT_GT(engine.stats().scheduler.preemptions, 0u);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
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
    const ChoiceResult r = run_request(engine, request(prompt, 8, ns))[0];
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
  const auto g = run_request(engine, greedy, 3);
  for (const auto& c : g)
    EXPECT_EQ(c.tokens, alone(prompt, 12));
  EXPECT_EQ(g[1].cached_prompt_tokens, g[0].cached_prompt_tokens);  // Reported per request.
  EXPECT_GE(engine.stats().scheduler.prefix_hit_tokens,
            2u * ((prompt.size() - 1) / 16 * 16));  // Both siblings reused the prompt blocks.

  EngineRequest sampled = request(prompt, 12, "");
  sampled.n = 4;
  sampled.sampling.temperature = 1.0f;
  sampled.sampling.seed = 5;
  const auto r = run_request(engine, sampled, 4);
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
  const auto rb = run_request(engine, request(prompt, 5));
  EXPECT_EQ(rb[0].finish, FinishReason::kLength);
  EXPECT_EQ(rb[0].tokens, std::vector<std::int32_t>(full.begin(), full.begin() + 5));

  // A stop string taken from the middle of the greedy text ends the output before it.
  const std::string text = run_request(engine, request(prompt, 60))[0].text;
  ASSERT_GT(text.size(), 30u);
  const std::string stop = text.substr(20, 6);
  EngineRequest stopping = request(prompt, 60);
  stopping.stop = {stop};
  const auto rc = run_request(engine, stopping);
  EXPECT_EQ(rc[0].finish, FinishReason::kStop);
  EXPECT_EQ(rc[0].text, text.substr(0, text.find(stop)));
}

// A model whose weights make the logits non-finite (here: NaN final-norm weights, as corrupt
// weights would) ends each choice with one error finish event, not with sampled garbage.
TEST_F(ServingEngineTest, NonFiniteLogitsEndTheChoiceWithAnError) {
  const auto dir = spillway::testing::temp_dir("serving_engine_nonfinite");
  const std::string path = (dir / "nan.gguf").string();
  std::filesystem::copy_file(stories_gguf(), path,
                             std::filesystem::copy_options::overwrite_existing);
  std::size_t at = 0, bytes = 0;
  {
    auto file = GgufFile::open(stories_gguf());
    ASSERT_TRUE(file.ok());
    const GgufTensorInfo* norm = file->find_tensor("output_norm.weight");
    ASSERT_NE(norm, nullptr);
    ASSERT_EQ(norm->type, GgmlType::kF32);
    at = file->data_offset() + norm->offset;
    bytes = norm->nbytes;
  }
  {
    std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(at));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (std::size_t i = 0; i < bytes / sizeof(float); ++i)
      out.write(reinterpret_cast<const char*>(&nan), sizeof nan);
    ASSERT_TRUE(out.good());
  }
  auto broken = load_model_or_die({path, ""});
  auto engine = ServingEngine::create(*broken, small_options());
  ASSERT_TRUE(engine.ok());
  EngineRequest r = request(tokens("Once upon a time"), 8);
  r.n = 2;
  const auto out = run_request(**engine, std::move(r), 2);
  for (const ChoiceResult& c : out) {
    EXPECT_EQ(c.finish, FinishReason::kError);
    EXPECT_TRUE(c.tokens.empty());
    EXPECT_EQ(c.completion_tokens, 0);
    ASSERT_FALSE(c.status.ok());
    EXPECT_NE(c.status.error().message().find("non-finite logits"), std::string::npos)
        << c.status.error().message();
  }
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
  EXPECT_EQ(code(request(p, 0)), ErrorCode::kInvalidArgument);  // 0 only to score the prompt.
  EngineRequest scored = request(p, 0);
  scored.prompt_logprobs = true;
  scored.prompt_top_logprobs = 21;
  EXPECT_EQ(code(scored), ErrorCode::kInvalidArgument);
  scored.prompt_top_logprobs = 20;
  EXPECT_EQ(code(scored), ErrorCode::kOk);
  scored.max_tokens = -1;
  EXPECT_EQ(code(scored), ErrorCode::kInvalidArgument);
  EngineRequest many = request(p, 4);
  many.n = 17;
  EXPECT_EQ(code(many), ErrorCode::kInvalidArgument);
  EngineRequest hot = request(p, 4);
  hot.sampling.temperature = -1.0f;
  EXPECT_EQ(code(hot), ErrorCode::kInvalidArgument);
  EngineRequest empty_stop = request(p, 4);
  empty_stop.stop = {""};
  EXPECT_EQ(code(empty_stop), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(request(p, 100)), ErrorCode::kOutOfRange);  // Beyond the 64-token cache.
  // Too large even for an empty cache: rejected at submission, saying why.
  auto too_big = engine.submit(request(p, 100));
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.error().message().find("the whole cache holds 64"), std::string::npos)
      << too_big.error().message();
  EXPECT_EQ(code(request(p, 10000)), ErrorCode::kOutOfRange);  // Beyond the context.
  EXPECT_EQ(code(request(p, 4)), ErrorCode::kOk);

  ServingOptions bad = small_options();
  bad.max_running = 100;  // > max_batch_tokens.
  EXPECT_FALSE(ServingEngine::create(*model_, bad).ok());
  bad = small_options();
  bad.kv_cache_blocks = 0;
  bad.kv_cache_mib = 0;
  EXPECT_FALSE(ServingEngine::create(*model_, bad).ok());
  bad = small_options();
  bad.max_prompt_logprob_tokens = 0;
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
  ServingOptions o = small_options();
  o.max_running = 1;
  auto created = ServingEngine::create(*model_, o, &registry);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto prompt = tokens(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "sun with her big red ball.");
  ASSERT_GT(prompt.size(), 16u);
  const std::size_t reusable = (prompt.size() - 1) / 16 * 16;
  EngineRequest r = request(prompt, 6);
  r.ignore_eos = true;
  run_request(engine, r);
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  std::string text = registry.render_prometheus();
  auto expect_line = [&](const std::string& line) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
  };
  for (const char* line : {"spillway:time_to_first_token_seconds_count 1",
                           "spillway:e2e_request_latency_seconds_count 1",
                           "spillway:request_queue_time_seconds_count 1",
                           "spillway:inter_token_latency_seconds_count 5",
                           "spillway:generation_tokens_total 6", "spillway:num_requests_running 0",
                           "spillway:num_requests_waiting 0", "spillway:kv_cache_usage_perc 0",
                           "spillway:kv_cache_blocks_used 0", "spillway:kv_cache_blocks_total 64",
                           "spillway:prefix_cache_hits_total 0", "spillway:num_preemptions_total 0",
                           "spillway:request_success_total{finished_reason=\"length\"} 1"}) {
    expect_line(line);
  }
  expect_line("spillway:prompt_tokens_total " + std::to_string(prompt.size()));
  expect_line("spillway:prefix_cache_queries_total " + std::to_string(prompt.size()));
  // Latencies are histograms.
  for (const char* name :
       {"spillway:time_to_first_token_seconds", "spillway:inter_token_latency_seconds",
        "spillway:e2e_request_latency_seconds", "spillway:request_queue_time_seconds"}) {
    expect_line(std::string("# TYPE ") + name + " histogram");
  }

  // The same prompt again: its full blocks (but the last token) come from the prefix cache.
  // Meanwhile a long request runs and another waits behind it (max_running = 1).
  EngineRequest blocker = request(tokens("The little dog"), 400);
  blocker.ignore_eos = true;
  auto b = engine.submit(blocker);
  ASSERT_TRUE(b.ok());
  StreamEvent ev;
  ASSERT_TRUE((*b)->next(ev));
  auto again = engine.submit(r);
  ASSERT_TRUE(again.ok());
  EngineStats st;
  for (int i = 0; i < 10000; ++i) {  // The gauges are published after each step.
    st = engine.stats();
    if (st.running == 1 && st.waiting == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  text = registry.render_prometheus();
  ASSERT_EQ(st.running, 1);
  ASSERT_EQ(st.waiting, 1);
  expect_line("spillway:num_requests_running 1");
  expect_line("spillway:num_requests_waiting 1");
  EXPECT_EQ(text.find("spillway:kv_cache_blocks_used 0\n"), std::string::npos);
  (*b)->cancel();
  collect(**b, 1);
  const ChoiceResult second = collect(**again, 1)[0];
  EXPECT_EQ(second.cached_prompt_tokens, static_cast<std::int32_t>(reusable));
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  text = registry.render_prometheus();
  expect_line("spillway:prefix_cache_hits_total " + std::to_string(reusable));
  expect_line("spillway:request_success_total{finished_reason=\"cancelled\"} 1");
  expect_line("spillway:time_to_first_token_seconds_count 3");
}

// A cancel() takes effect at the very next step: the request computes nothing more, its
// blocks go back to the pool and the request waiting for its place runs.
TEST_F(ServingEngineTest, CancellationTakesEffectAtTheNextStepAndFreesTheBlocks) {
  ServingOptions o = small_options();
  o.max_running = 1;
  o.kv_cache_blocks = 8;  // 128 tokens: the blocker below needs all of them eventually.
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto blocker_prompt = tokens("Once upon a time");
  EngineRequest blocker =
      request(blocker_prompt, 128 - static_cast<std::int32_t>(blocker_prompt.size()));
  blocker.ignore_eos = true;
  auto b = engine.submit(blocker);
  ASSERT_TRUE(b.ok());
  StreamEvent ev;
  ASSERT_TRUE((*b)->next(ev));  // Running; `a` below waits for the only slot.

  EngineRequest waiting = request(tokens("The little dog"), 50);
  waiting.ignore_eos = true;
  auto a = engine.submit(waiting);
  ASSERT_TRUE(a.ok());
  // Cancel `a` from the step thread as soon as its first token is queued: the engine must
  // not compute a second one.
  RequestStream* raw = a->get();
  raw->set_listener([raw] { raw->cancel(); });
  (*b)->cancel();
  const ChoiceResult rb = collect(**b, 1)[0];
  EXPECT_EQ(rb.finish, FinishReason::kCancelled);
  EXPECT_LT(rb.completion_tokens, blocker.max_tokens);
  const ChoiceResult ra = collect(**a, 1)[0];
  EXPECT_EQ(ra.finish, FinishReason::kCancelled);
  EXPECT_EQ(ra.tokens.size(), 1u);
  EXPECT_EQ(ra.completion_tokens, 1);
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST_F(ServingEngineTest, TokenEventsCarryLogprobsOnlyWhenAsked) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto prompt = tokens("Once upon a time");
  const ChoiceResult p = run_request(engine, request(prompt, 10))[0];
  ASSERT_FALSE(p.tokens.empty());
  for (const auto& lp : p.logprobs)
    EXPECT_FALSE(lp.has_value());

  EngineRequest with = request(prompt, 10);
  with.logprobs = true;
  with.sampling.top_logprobs = 3;
  const ChoiceResult w = run_request(engine, with)[0];
  EXPECT_EQ(w.tokens, p.tokens);  // Asking for log-probabilities changes nothing else.
  ASSERT_EQ(w.logprobs.size(), w.tokens.size());
  for (std::size_t i = 0; i < w.tokens.size(); ++i) {
    ASSERT_TRUE(w.logprobs[i].has_value()) << i;
    const SampledToken& lp = *w.logprobs[i];
    EXPECT_EQ(lp.token, w.tokens[i]);
    EXPECT_LE(lp.logprob, 0.0f);
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_EQ(lp.top[0].token, w.tokens[i]);  // Greedy: the chosen token is the likeliest.
    EXPECT_FLOAT_EQ(lp.top[0].logprob, lp.logprob);
    EXPECT_GE(lp.top[0].logprob, lp.top[1].logprob);
    EXPECT_GE(lp.top[1].logprob, lp.top[2].logprob);
  }
}

// Near-uniform sampling on stories260K picks many of its byte tokens, so generated text is full
// of broken and split UTF-8 sequences: every delta must still be valid UTF-8 (collect() checks)
// and the deltas of a choice must add up to the detokenized text of its tokens.
TEST_F(ServingEngineTest, TextDeltasAreValidUtf8EvenFromRandomBytes) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  EngineRequest r = request(tokens("Once upon a time"), 64);
  r.n = 4;
  r.ignore_eos = true;
  r.sampling.temperature = 20.0f;
  r.sampling.seed = 3;
  auto s = engine.submit(r);
  ASSERT_TRUE(s.ok());
  int high_bytes = 0;
  for (const ChoiceResult& c : collect(**s, 4)) {
    EXPECT_EQ(c.text, detokenize(model_->tokenizer(), c.tokens,
                                 DetokenizeOptions{.strip_leading_space = false}));
    for (const std::int32_t t : c.tokens) {
      const std::string piece = model_->tokenizer().token_to_piece(t);
      high_bytes += piece.size() == 1 && static_cast<unsigned char>(piece[0]) >= 0x80 ? 1 : 0;
    }
  }
  EXPECT_GT(high_bytes, 10);  // The case under test really occurred.
}

TEST_F(ServingEngineTest, CacheSizeIsSetInMibOrTokensAtStartAndNeverGrows) {
  const std::size_t per_token = KvCache::bytes_per_token(model_->config(), KvType::kF16);
  ServingOptions o = small_options();
  o.kv_cache_blocks = 0;
  o.kv_cache_mib = 1;
  o.block_tokens = 32;
  auto by_mib = ServingEngine::create(*model_, o);
  ASSERT_TRUE(by_mib.ok()) << by_mib.error().message();
  const auto blocks = static_cast<std::int32_t>((1 << 20) / (per_token * 32));
  ASSERT_GT(blocks, 0);
  EXPECT_EQ((*by_mib)->stats().kv_blocks_total, blocks);
  EXPECT_EQ((*by_mib)->kv_cache_bytes(), static_cast<std::int64_t>(blocks * 32 * per_token));
  EXPECT_LE((*by_mib)->kv_cache_bytes(), 1 << 20);

  o.kv_cache_tokens = 100;  // Takes precedence over MiB; rounded up to whole blocks of 8.
  o.block_tokens = 8;
  auto by_tokens = ServingEngine::create(*model_, o);
  ASSERT_TRUE(by_tokens.ok()) << by_tokens.error().message();
  ServingEngine& engine = **by_tokens;
  EXPECT_EQ(engine.stats().kv_blocks_total, 13);
  const std::int64_t bytes = engine.kv_cache_bytes();
  EXPECT_EQ(bytes, static_cast<std::int64_t>(13 * 8 * per_token));
  // Load does not change the cache: more requests than fit are queued and preempted instead.
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) {
    EngineRequest r = request(tokens("Once upon a time"), 40);
    r.ignore_eos = true;
    r.cache_namespace = "";  // Private: no sharing.
    auto st = engine.submit(r);
    ASSERT_TRUE(st.ok());
    streams.push_back(*st);
  }
  for (auto& st : streams)
    EXPECT_EQ(collect(*st, 1)[0].finish, FinishReason::kLength);
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  EXPECT_EQ(engine.kv_cache_bytes(), bytes);
  EXPECT_EQ(engine.stats().kv_blocks_total, 13);
  EXPECT_GT(engine.stats().scheduler.preemptions, 0u);

  auto code = [&](const ServingOptions& options) {
    auto e = ServingEngine::create(*model_, options);
    return e.ok() ? ErrorCode::kOk : e.error().code();
  };
  o.kv_cache_tokens = -1;
  EXPECT_EQ(code(o), ErrorCode::kInvalidArgument);
  o.kv_cache_tokens = 0;
  o.block_tokens = 0;
  EXPECT_EQ(code(o), ErrorCode::kInvalidArgument);
  o.block_tokens = 16;
  o.kv_type = KvType::kQ8_0;  // stories260K's head_dim is 8: no whole Q8_0 blocks.
  EXPECT_EQ(code(o), ErrorCode::kInvalidArgument);
}

// A Q8_0 KV cache: the same MiB holds 1.88x the tokens of F16, and requests decoded together
// get the greedy tokens each gets alone.
TEST(ServingEngineKvTypes, Q8_0CacheHoldsMoreTokensAndBatchesEqualAlone) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  auto model = load_model_or_die({spillway::testing::tiny_model_path(GgmlType::kQ8_0), ""});
  ServingOptions o;
  o.threads = 2;
  o.kv_cache_mib = 1;
  o.block_tokens = 16;
  o.max_batch_tokens = 64;
  o.max_running = 8;
  o.max_waiting = 16;
  auto f16 = ServingEngine::create(*model, o);
  ASSERT_TRUE(f16.ok()) << f16.error().message();
  o.kv_type = KvType::kQ8_0;
  auto created = ServingEngine::create(*model, o);
  ASSERT_TRUE(created.ok()) << created.error().message();
  ServingEngine& engine = **created;
  const std::size_t per_token = KvCache::bytes_per_token(model->config(), KvType::kQ8_0);
  EXPECT_EQ(engine.stats().kv_blocks_total,
            static_cast<std::int32_t>((1 << 20) / (per_token * 16)));
  EXPECT_GT(engine.stats().kv_blocks_total * 100, (*f16)->stats().kv_blocks_total * 185);

  const char* texts[] = {"Once upon a time", "The capital of France is a city that",
                         "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14"};
  const auto make = [&](const char* text) {
    auto ids = model->tokenizer().encode(text, true, false);
    EXPECT_TRUE(ids.ok());
    EngineRequest r;
    r.prompt = *ids;
    r.max_tokens = 24;
    r.ignore_eos = true;
    r.sampling.temperature = 0.0f;
    return r;
  };
  std::vector<std::vector<std::int32_t>> alone;
  for (const char* text : texts)
    alone.push_back(run_request(engine, make(text))[0].tokens);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const char* text : texts) {
    auto st = engine.submit(make(text));
    ASSERT_TRUE(st.ok());
    streams.push_back(*st);
  }
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const std::vector<std::int32_t> together = collect(*streams[i], 1)[0].tokens;
    EXPECT_EQ(together.size(), 24u);
    EXPECT_EQ(together, alone[i]) << "prompt " << i;
  }
}

// The namespace is the isolation boundary: a namespace that the caller declares shared (a
// public system prompt) is reused across tenants, while their private ones never are.
TEST_F(ServingEngineTest, ASharedNamespaceIsReusedAcrossTenants) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto prompt = tokens(
      "You are a storyteller. Tell short, happy stories about animals who live in a big forest.");
  const auto reusable = static_cast<std::int32_t>((prompt.size() - 1) / 16 * 16);
  ASSERT_GT(reusable, 0);
  auto cached = [&](const std::string& ns) {
    auto s = engine.submit(request(prompt, 2, ns));
    EXPECT_TRUE(s.ok());
    return s.ok() ? collect(**s, 1)[0].cached_prompt_tokens : -1;
  };
  EXPECT_EQ(cached("tenant:a"), 0);
  EXPECT_EQ(cached("tenant:b"), 0);              // Same text, another tenant: no hit.
  EXPECT_EQ(cached("shared:public"), 0);         // First use of the shared namespace.
  EXPECT_EQ(cached("shared:public"), reusable);  // Any tenant using it now hits.
  EXPECT_EQ(cached("tenant:a"), reusable);       // Each tenant's own cache still works...
  EXPECT_EQ(cached("tenant:c"), 0);              // ...and stays its own.
  EXPECT_EQ(cached(""), 0);                      // No namespace: private to the request.
  EXPECT_EQ(cached(""), 0);
}

}  // namespace
}  // namespace spillway::engine

namespace spillway::engine {
namespace {

// Prompt log-probabilities (echo + logprobs) equal a direct log-softmax of the forward pass at
// every prompt position, computed in chunks of max_prompt_logprob_tokens, and change nothing
// about the generated tokens.
TEST_F(ServingEngineTest, PromptLogprobsEqualTheForwardPassLogSoftmax) {
  ServingOptions o = small_options();
  o.max_prompt_logprob_tokens = 7;  // The prompt takes several steps.
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok()) << created.error().message();
  ServingEngine& engine = **created;
  const auto prompt = tokens("Once upon a time, there was a little girl named Lily who loved");
  ASSERT_GT(prompt.size(), 14u);
  EngineRequest r = request(prompt, 6);
  r.prompt_logprobs = true;
  r.prompt_top_logprobs = 3;
  auto stream = engine.submit(r);
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  const ChoiceResult got = collect(**stream, 1)[0];
  expect_prompt_logprobs(prompt, got.prompt, 3);
  EXPECT_GE(got.prompt_events, 3);  // One per step's chunk.
  EXPECT_EQ(got.tokens, alone(prompt, 6));
  for (const auto& lp : got.logprobs)
    EXPECT_FALSE(lp.has_value());  // Generated tokens' log-probabilities are separate.
  EXPECT_EQ(got.cached_prompt_tokens, 0);

  // Without alternatives.
  EngineRequest bare = request(prompt, 1);
  bare.prompt_logprobs = true;
  auto s2 = engine.submit(bare);
  ASSERT_TRUE(s2.ok());
  expect_prompt_logprobs(prompt, collect(**s2, 1)[0].prompt, 0);
}

// A prompt in the prefix cache is still computed in full for its log-probabilities (same
// values, nothing reported as cached), and the blocks it publishes serve later requests.
TEST_F(ServingEngineTest, PrefixCachingDoesNotChangePromptLogprobs) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto prompt = tokens(
      "Once upon a time, in a land far away, there lived a kind old king who had a beautiful "
      "garden full of flowers");
  ASSERT_GE(prompt.size(), 33u);
  auto run = [&](bool score) {
    EngineRequest r = request(prompt, 3);
    r.prompt_logprobs = score;
    r.prompt_top_logprobs = score ? 2 : 0;
    auto s = engine.submit(r);
    EXPECT_TRUE(s.ok());
    const ChoiceResult c = collect(**s, 1)[0];
    EXPECT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
    return c;
  };
  const ChoiceResult first = run(true);
  expect_prompt_logprobs(prompt, first.prompt, 2);
  const std::uint64_t hits = engine.stats().scheduler.prefix_hit_tokens;
  const ChoiceResult second = run(true);  // Same prompt, same namespace: blocks are cached.
  EXPECT_EQ(second.cached_prompt_tokens, 0);
  EXPECT_EQ(engine.stats().scheduler.prefix_hit_tokens, hits);
  ASSERT_EQ(second.prompt.size(), first.prompt.size());
  for (std::size_t i = 0; i < first.prompt.size(); ++i) {
    EXPECT_EQ(second.prompt[i].token, first.prompt[i].token);
    EXPECT_NEAR(second.prompt[i].logprob, first.prompt[i].logprob, 1e-5) << i;
  }
  EXPECT_EQ(second.tokens, first.tokens);
  // A plain request reuses the blocks the scoring requests published.
  const ChoiceResult plain = run(false);
  EXPECT_EQ(plain.cached_prompt_tokens, static_cast<std::int32_t>((prompt.size() - 1) / 16 * 16));
  EXPECT_TRUE(plain.prompt.empty());
  EXPECT_EQ(plain.tokens, first.tokens);
}

// n choices get the prompt's log-probabilities once (before any choice's tokens); with
// max_tokens 0 the prompt is only scored and every choice ends at once with kLength.
TEST_F(ServingEngineTest, PromptLogprobsComeOnceForAllChoicesAndWithMaxTokensZero) {
  auto created = ServingEngine::create(*model_, small_options());
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const auto prompt = tokens("Tom and Lily went to the park to play with their big red ball");
  EngineRequest two = request(prompt, 5, "");
  two.n = 2;
  two.prompt_logprobs = true;
  two.prompt_top_logprobs = 1;
  const auto r = run_request(engine, two, 2);
  expect_prompt_logprobs(prompt, r[0].prompt, 1);
  EXPECT_TRUE(r[1].prompt.empty());
  for (const auto& c : r)
    EXPECT_EQ(c.tokens, alone(prompt, 5));

  for (const std::int32_t n : {1, 3}) {
    EngineRequest only = request(prompt, 0, "");
    only.n = n;
    only.prompt_logprobs = true;
    auto so = engine.submit(only);
    ASSERT_TRUE(so.ok()) << so.error().message();
    const auto ro = collect(**so, n);
    expect_prompt_logprobs(prompt, ro[0].prompt, 0);
    for (const auto& c : ro) {
      EXPECT_EQ(c.finish, FinishReason::kLength);
      EXPECT_TRUE(c.tokens.empty());
      EXPECT_EQ(c.completion_tokens, 0);
    }
  }
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

// Under cache pressure, scoring requests are preempted and recomputed like any other: each
// still gets every prompt position exactly once, with the right values, and the right tokens.
TEST_F(ServingEngineTest, PreemptionDeliversPromptLogprobsOnce) {
  ServingOptions o = small_options();
  o.kv_cache_blocks = 12;  // 192 tokens; each request grows to 110-140.
  o.max_prompt_logprob_tokens = 4;
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  const char* starts[] = {"Once upon a time", "The little dog", "Tom and Lily went to the park",
                          "One day, a big bird", "Sara had a red ball. She"};
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<EngineRequest> sent;
  for (int i = 0; i < 8; ++i) {
    EngineRequest r = request(tokens(starts[i % 5]), 100 + 4 * i, "t" + std::to_string(i % 3));
    r.ignore_eos = true;
    r.priority = i % 2;
    r.prompt_logprobs = i % 2 == 1 || i == 4;
    auto s = engine.submit(r);
    ASSERT_TRUE(s.ok()) << s.error().message();
    streams.push_back(*s);
    sent.push_back(std::move(r));
  }
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const ChoiceResult r = collect(*streams[i], 1)[0];
    EXPECT_EQ(r.finish, FinishReason::kLength) << "request " << i;
    EXPECT_EQ(r.tokens, alone(sent[i].prompt, sent[i].max_tokens, true)) << "request " << i;
    if (sent[i].prompt_logprobs) {
      expect_prompt_logprobs(sent[i].prompt, r.prompt, 0);
    } else {
      EXPECT_TRUE(r.prompt.empty());
    }
  }
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  EXPECT_GT(engine.stats().scheduler.preemptions, 0u);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

// A low-priority request scoring a long prompt in small chunks is preempted part-way through
// its prompt by a growing high-priority one; when it is recomputed, the positions it already
// reported are not reported again (collect() checks each arrives once, in order).
TEST_F(ServingEngineTest, PreemptionMidPromptDoesNotRepeatPromptLogprobs) {
  ServingOptions o = small_options();
  o.kv_cache_blocks = 12;  // 192 tokens.
  o.max_prompt_logprob_tokens = 4;
  auto created = ServingEngine::create(*model_, o);
  ASSERT_TRUE(created.ok());
  ServingEngine& engine = **created;
  std::string text;
  while (tokens(text).size() < 140)
    text += "Tom had a big red ball and he liked to play with it in the park. ";
  const auto long_prompt = tokens(text);
  ASSERT_LE(long_prompt.size(), 170u);
  EngineRequest high =
      request(tokens("Once upon a time, there was a little girl named Lily"), 150, "a");
  high.ignore_eos = true;
  high.priority = 2;
  ASSERT_LE(high.prompt.size() + 150, 192u);
  EngineRequest low =
      request(long_prompt, 192 - static_cast<std::int32_t>(long_prompt.size()), "b");
  low.ignore_eos = true;
  low.prompt_logprobs = true;
  auto hs = engine.submit(high);
  ASSERT_TRUE(hs.ok());
  auto ls = engine.submit(low);
  ASSERT_TRUE(ls.ok());
  const ChoiceResult h = collect(**hs, 1)[0];
  const ChoiceResult l = collect(**ls, 1)[0];
  EXPECT_EQ(h.tokens, alone(high.prompt, 150, true));
  EXPECT_EQ(l.tokens, alone(low.prompt, low.max_tokens, true));
  expect_prompt_logprobs(low.prompt, l.prompt, 0);
  ASSERT_TRUE(engine.wait_idle(std::chrono::seconds(10)));
  EXPECT_GT(engine.stats().scheduler.preemptions, 0u);
  // The low request computed more prompt tokens than its prompt: it was recomputed.
  EXPECT_GT(engine.stats().scheduler.computed_tokens,
            high.prompt.size() + 149 + low.prompt.size() + low.max_tokens - 1);
}

}  // namespace
}  // namespace spillway::engine
