// The gateway's building blocks on their own: SSE splitting, the OpenAI JSON edits, upstream
// URLs, worst-case token bounds, and the bounded priority pool of forwarding slots.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "core/clock.h"
#include "core/metrics.h"

#include "openai/chat_request.h"
#include "openai/completion_request.h"

#include "gateway/decision_log.h"
#include "gateway/gateway_metrics.h"
#include "gateway/gateway_options.h"
#include "gateway/openai_rewrite.h"
#include "gateway/proxy_pool.h"
#include "gateway/sse_splitter.h"
#include "gateway/static_replica_source.h"
#include "gateway/tenant_quotas.h"
#include "gateway/upstream_address.h"

namespace spillway::gateway {
namespace {

namespace json = boost::json;

std::vector<std::string> split_all(SseSplitter& s, const std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  for (const std::string& p : pieces) {
    EXPECT_TRUE(s.feed(p, [&](std::string_view d) {
                   out.emplace_back(d);
                   return true;
                 }).ok());
  }
  return out;
}

TEST(SseSplitterTest, EventsSurviveAnySplitOfTheBytes) {
  const std::string wire =
      "data: {\"a\":1}\n\n: keep-alive comment\n\nevent: x\ndata: line 1\ndata:line 2\n\n"
      "data: [DONE]\r\n\r\n";
  const std::vector<std::string> expected = {"{\"a\":1}", "line 1\nline 2", "[DONE]"};
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    SseSplitter s(1024);
    EXPECT_EQ(split_all(s, {wire.substr(0, cut), wire.substr(cut)}), expected) << cut;
    EXPECT_FALSE(s.partial());
  }
  SseSplitter bytewise(1024);
  std::vector<std::string> pieces;
  for (char c : wire)
    pieces.emplace_back(1, c);
  EXPECT_EQ(split_all(bytewise, pieces), expected);
}

TEST(SseSplitterTest, PartialEventsAndLimits) {
  SseSplitter s(64);
  EXPECT_TRUE(split_all(s, {"data: half an ev"}).empty());
  EXPECT_TRUE(s.partial());
  SseSplitter small(16);
  const Status too_big = small.feed(std::string(40, 'x'), [](std::string_view) { return true; });
  EXPECT_EQ(too_big.code(), ErrorCode::kPayloadTooLarge);
  SseSplitter stop(64);
  const Status stopped =
      stop.feed("data: a\n\ndata: b\n\n", [](std::string_view) { return false; });
  EXPECT_EQ(stopped.code(), ErrorCode::kCancelled);
}

TEST(OpenAiRewriteTest, StreamUsageIsRequestedAndReadBack) {
  auto body = with_stream_usage(
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})", 64);
  ASSERT_TRUE(body.ok());
  const json::value v = json::parse(*body);
  EXPECT_TRUE(v.at("stream_options").at("include_usage").as_bool());
  EXPECT_EQ(v.at("messages").as_array().size(), 1u);
  EXPECT_FALSE(with_stream_usage("[1,2]", 64).ok());
  EXPECT_FALSE(with_stream_usage("{", 64).ok());
  auto empty = with_stream_usage("{}", 64);  // Parsed: there is nothing to put a comma after.
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(json::parse(*empty).as_object().size(), 1u);

  // Appended without a parse where there is no stream_options member; otherwise the member is
  // replaced, never duplicated. Each result reads back as the body plus include_usage.
  for (const std::string_view b : {
           R"( {"model":"m","stream":true} )",
           "{\"model\":\"m\",\n \"stream\":true\n}\n",
           R"({"model":"m","stream":true,"stream_options":{"include_usage":false}})",
           R"({"stream_options":{},"model":"m","stream":true})",
           R"({"model":"m","metadata":{"stream_options":1},"stream":true})",
           R"({"model":"say \"stream_options\"","stream":true})",
       }) {
    auto rewritten = with_stream_usage(b, 64);
    ASSERT_TRUE(rewritten.ok()) << b;
    json::object expected = json::parse(b).as_object();
    expected["stream_options"] = json::object{{"include_usage", true}};
    const json::value got = json::parse(*rewritten);
    EXPECT_EQ(got.as_object(), expected) << *rewritten;
    // No repeated member: the rewritten text parses to as many members as it names.
    std::size_t named = 0;
    for (std::size_t at = 0; (at = rewritten->find("\"stream_options\"", at)) != std::string::npos;
         ++at)
      ++named;
    EXPECT_EQ(named, 1u + (std::string_view(b).find("metadata") != std::string_view::npos))
        << *rewritten;
  }

  const auto usage = read_usage(R"({"id":"x","usage":{"prompt_tokens":7,"completion_tokens":3}})");
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->prompt_tokens, 7);
  EXPECT_EQ(usage->completion_tokens, 3);
  EXPECT_FALSE(read_usage(R"({"usage":null})").has_value());
  EXPECT_FALSE(read_usage("not json").has_value());
}

TEST(OpenAiRewriteTest, UsageChunksAreRecognizedAndNullUsageStripped) {
  const ChunkUsage content = inspect_chunk(
      R"({"id":"c","choices":[{"index":0,"delta":{"content":"\"usage\":{"}}],"usage":null})");
  EXPECT_FALSE(content.usage.has_value());
  const ChunkUsage last = inspect_chunk(
      R"({"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})");
  ASSERT_TRUE(last.usage.has_value());
  EXPECT_TRUE(last.usage_only);
  EXPECT_EQ(last.usage->completion_tokens, 2);

  std::string scratch;
  EXPECT_EQ(without_null_usage(R"({"id":"c","choices":[],"usage":null})", scratch),
            R"({"id":"c","choices":[]})");
  EXPECT_EQ(without_null_usage(R"({"id":"c"})", scratch), R"({"id":"c"})");
}

// The document reading of usage that read_usage and inspect_chunk must agree with (they scan
// without building a document): the top-level "usage" object's two counts, non-negative
// integers (a uint64 clamped), the last of repeated members counting.
std::optional<openai::Usage> reference_usage(std::string_view text, bool* usage_only) {
  std::error_code ec;
  const json::value root = json::parse(text, ec);
  if (ec || !root.is_object()) return std::nullopt;
  const json::value* u = root.as_object().if_contains("usage");
  if (u == nullptr || !u->is_object()) return std::nullopt;
  const auto count = [&](std::string_view key) -> std::optional<std::int64_t> {
    const json::value* v = u->as_object().if_contains(key);
    if (v == nullptr) return std::nullopt;
    if (v->is_int64() && v->as_int64() >= 0) return v->as_int64();
    if (v->is_uint64()) {
      return static_cast<std::int64_t>(std::min<std::uint64_t>(
          v->as_uint64(), static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())));
    }
    return std::nullopt;
  };
  const auto prompt = count("prompt_tokens");
  const auto completion = count("completion_tokens");
  if (!prompt || !completion) return std::nullopt;
  const json::value* choices = root.as_object().if_contains("choices");
  *usage_only = choices == nullptr || (choices->is_array() && choices->as_array().empty());
  openai::Usage out;
  out.prompt_tokens = *prompt;
  out.completion_tokens = *completion;
  return out;
}

TEST(OpenAiRewriteTest, UsageScanAgreesWithTheDocumentReading) {
  const std::vector<std::string> cases = {
      R"({"usage":{"prompt_tokens":7,"completion_tokens":3}})",
      R"({"choices":[{"index":0}],"usage":{"prompt_tokens":7,"completion_tokens":3}})",
      R"({"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":0,"total_tokens":3}})",
      R"({"choices":{},"usage":{"prompt_tokens":1,"completion_tokens":1}})",
      R"({"choices":[[]],"usage":{"prompt_tokens":1,"completion_tokens":1}})",
      R"({"choices":[],"choices":[1],"usage":{"prompt_tokens":1,"completion_tokens":1}})",
      R"({"choices":[1],"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}})",
      R"({"usage":{"prompt_tokens":7}})",
      R"({"usage":{"prompt_tokens":-1,"completion_tokens":3}})",
      R"({"usage":{"prompt_tokens":7.0,"completion_tokens":3}})",
      R"({"usage":{"prompt_tokens":"7","completion_tokens":3}})",
      R"({"usage":{"prompt_tokens":{"n":7},"completion_tokens":3}})",
      R"({"usage":{"prompt_tokens":[7],"completion_tokens":3}})",
      R"({"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":3}})",
      R"({"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":3}})",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens":5}})",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens":null}})",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"usage":null})",
      R"({"usage":null,"usage":{"prompt_tokens":1,"completion_tokens":2}})",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"usage":{"prompt_tokens":4}})",
      R"({"x":{"usage":{"prompt_tokens":1,"completion_tokens":2}}})",
      R"({"x":[{"usage":{"prompt_tokens":1,"completion_tokens":2}}]})",
      R"({"usage":{"x":{"prompt_tokens":1,"completion_tokens":2}}})",
      R"({"usage":{"inner":{"prompt_tokens":"a"},"prompt_tokens":1,"completion_tokens":2}})",
      R"({"\u0075sage":{"prompt_tokens":1,"completion_tokens":2}})",
      R"({"usage":{"prompt\u005ftokens":1,"completion_tokens":2}})",
      R"({"a_very_long_key_that_is_longer_than_thirty_two_bytes":1,"usage":{"prompt_tokens":1,"completion_tokens":2}})",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2}} trailing)",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2}})"
      "  \n",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2})",
      R"([{"usage":{"prompt_tokens":1,"completion_tokens":2}}])",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2},})",
      R"({"usage":{"prompt_tokens":1,/*c*/"completion_tokens":2}})",
      R"({"usage":[{"prompt_tokens":1,"completion_tokens":2}]})",
      "",
      "null",
  };
  for (const std::string& text : cases) {
    SCOPED_TRACE(text);
    bool expected_usage_only = false;
    const auto expected = reference_usage(text, &expected_usage_only);
    const auto got = read_usage(text);
    ASSERT_EQ(got.has_value(), expected.has_value());
    if (expected) {
      EXPECT_EQ(got->prompt_tokens, expected->prompt_tokens);
      EXPECT_EQ(got->completion_tokens, expected->completion_tokens);
    }
    const ChunkUsage chunk = inspect_chunk(text);
    if (text.find("\"usage\":{") == std::string::npos) continue;  // Not looked at.
    ASSERT_EQ(chunk.usage.has_value(), expected.has_value());
    if (expected) {
      EXPECT_EQ(chunk.usage_only, expected_usage_only);
    }
  }
  // Nesting beyond the parser's default depth is refused, as the document parser refuses it.
  std::string deep = R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"x":)";
  deep += std::string(40, '[') + std::string(40, ']') + "}";
  bool ignored = false;
  EXPECT_EQ(read_usage(deep).has_value(), reference_usage(deep, &ignored).has_value());
}

// The internal key goes into every forwarded request's Authorization field: one that could
// not be sent as a field value is refused when the gateway is configured, not per request.
TEST(GatewayOptionsTest, InternalKeyMustBeAFieldValue) {
  GatewayOptions o;
  EXPECT_TRUE(o.validate().ok());  // No key: none is sent.
  o.internal_api_key = "sk-spw-internal-0123456789";
  EXPECT_TRUE(o.validate().ok());
  for (const char* bad : {"sk key", "sk\tkey", "sk-key\n", "sk-key\r\nX-Evil: 1"}) {
    o.internal_api_key = bad;
    const Status s = o.validate();
    ASSERT_EQ(s.code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(s.error().message().find("internal_api_key"), std::string::npos) << bad;
  }
}

TEST(UpstreamAddressTest, ParsesReplicaUrls) {
  auto a = parse_upstream_url("http://127.0.0.1:9001");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9001);
  auto b = parse_upstream_url("http://localhost/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->port, 80);
  auto c = parse_upstream_url("http://[::1]:8000");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  for (const char* bad : {"https://127.0.0.1:1", "http://example.com:80", "http://1.2.3.4:0",
                          "http://1.2.3.4:70000", "http://1.2.3.4:80/v1", "http://u@1.2.3.4",
                          "http://1.2.3:80", "http://1.2.3.4:", "127.0.0.1:80"}) {
    EXPECT_FALSE(parse_upstream_url(bad).ok()) << bad;
  }
}

TEST(PrometheusSampleTest, ReadsPlainAndLabelledSamples) {
  const std::string text =
      "# HELP spillway:num_requests_waiting x\n# TYPE spillway:num_requests_waiting gauge\n"
      "spillway:num_requests_waiting 3\nspillway:num_requests_running{model=\"m\"} 2 1700\n"
      "spillway:kv_cache_usage_perc_total 9\nspillway:kv_cache_usage_perc 0.25\n";
  EXPECT_EQ(prometheus_sample(text, "spillway:num_requests_waiting"), 3.0);
  EXPECT_EQ(prometheus_sample(text, "spillway:num_requests_running"), 2.0);
  EXPECT_EQ(prometheus_sample(text, "spillway:kv_cache_usage_perc"), 0.25);
  EXPECT_FALSE(prometheus_sample(text, "spillway:absent").has_value());
}

TEST(WorstCaseTest, BoundsPromptBytesAndEveryChoice) {
  auto chat = openai::parse_chat_completion_request(
      R"({"model":"m","n":2,"max_tokens":10,"messages":[{"role":"system","content":"abcd"},
          {"role":"user","content":"héllo"}]})");
  ASSERT_TRUE(chat.ok());
  const TokenAllowance allowance{3, 5};
  const WorstCase w = worst_case(*chat, 4096, allowance);
  EXPECT_EQ(w.prompt_tokens, 5 + (4 + 3) + (6 + 3));  // "héllo" is 6 bytes.
  EXPECT_EQ(w.total_tokens, w.prompt_tokens + 2 * 10);
  // No max_tokens: the model's context bounds each choice; the context caps the prompt bound.
  auto open = openai::parse_chat_completion_request(
      R"({"model":"m","messages":[{"role":"user","content":"a long prompt"}]})");
  ASSERT_TRUE(open.ok());
  const WorstCase o = worst_case(*open, 8, allowance);
  EXPECT_EQ(o.prompt_tokens, 8);
  EXPECT_EQ(o.total_tokens, 16);

  auto completion = openai::parse_completion_request(
      R"({"model":"m","prompt":["ab","cde"],"n":3,"max_tokens":4})");
  ASSERT_TRUE(completion.ok()) << completion.error().message();
  const WorstCase c = worst_case(*completion, 4096, allowance);
  EXPECT_EQ(c.prompt_tokens, (2 + 5) + (3 + 5));
  EXPECT_EQ(c.total_tokens, c.prompt_tokens + 2 * 3 * 4);
  auto ids = openai::parse_completion_request(R"({"model":"m","prompt":[1,2,3],"max_tokens":4})");
  ASSERT_TRUE(ids.ok()) << ids.error().message();
  EXPECT_EQ(worst_case(*ids, 4096, allowance).total_tokens, (3 + 5) + 4);
}

// Tasks keep their slot in `held`, so the test decides when slots free up.
class PoolTest : public ::testing::Test {
 protected:
  ProxyPool::Task hold(std::string name) {
    return [this, name](ProxyPool::Slot slot) {
      std::lock_guard lock(mu_);
      started_.push_back(name);
      held_.push_back(std::move(slot));
    };
  }
  // Releases the oldest slot held (which may start a waiting task on this thread).
  void release_one() {
    ProxyPool::Slot slot;
    {
      std::lock_guard lock(mu_);
      ASSERT_FALSE(held_.empty());
      slot = std::move(held_.front());
      held_.erase(held_.begin());
    }
  }
  std::vector<std::string> started() {
    std::lock_guard lock(mu_);
    return started_;
  }

  std::mutex mu_;
  std::vector<std::string> started_;
  std::vector<ProxyPool::Slot> held_;
};

TEST_F(PoolTest, StartsAtOnceWhileSlotsAreFree) {
  ProxyPool pool(2, 4, std::chrono::seconds(30), SteadyClock::instance());
  const auto never = [](const Error& e) { ADD_FAILURE() << e.message(); };
  pool.submit(fleet::Priority::kBatch, hold("a"), never);
  pool.submit(fleet::Priority::kBatch, hold("b"), never);
  EXPECT_EQ(started(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(pool.busy(), 2u);
  pool.submit(fleet::Priority::kBatch, hold("c"), never);
  EXPECT_EQ(pool.queued(), 1u);
  release_one();  // Starts "c" on this thread, on the freed slot.
  EXPECT_EQ(started(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(pool.busy(), 2u);
  EXPECT_EQ(pool.queued(), 0u);
  release_one();
  release_one();
  EXPECT_EQ(pool.busy(), 0u);
}

TEST_F(PoolTest, RunsByPriorityAndRejectsBeyondTheWaitingRoom) {
  std::vector<std::string> rejected;
  ProxyPool pool(1, 3, std::chrono::seconds(30), SteadyClock::instance());
  pool.submit(fleet::Priority::kStandard, hold("holder"),
              [](const Error&) { ADD_FAILURE() << "the holder was rejected"; });
  auto add = [&](fleet::Priority p, const std::string& name) {
    pool.submit(p, hold(name), [&, name](const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
      rejected.push_back(name);
    });
  };
  add(fleet::Priority::kBatch, "batch-1");
  add(fleet::Priority::kStandard, "standard-1");
  add(fleet::Priority::kBatch, "batch-2");
  EXPECT_EQ(pool.queued(), 3u);
  add(fleet::Priority::kInteractive, "interactive-1");  // Displaces batch-2 (newest, lowest).
  add(fleet::Priority::kBatch, "batch-3");              // Full of higher classes: refused.
  EXPECT_EQ(rejected, (std::vector<std::string>{"batch-2", "batch-3"}));
  for (int i = 0; i < 3; ++i)
    release_one();
  EXPECT_EQ(started(),
            (std::vector<std::string>{"holder", "interactive-1", "standard-1", "batch-1"}));
  release_one();
  EXPECT_EQ(pool.busy(), 0u);
}

TEST_F(PoolTest, WaitingTooLongIsRejected) {
  ManualClock clock;
  std::atomic<int> late{0};
  {
    ProxyPool pool(1, 8, std::chrono::seconds(5), clock);
    pool.submit(fleet::Priority::kStandard, hold("holder"),
                [](const Error&) { ADD_FAILURE() << "the holder was rejected"; });
    pool.submit(
        fleet::Priority::kInteractive,
        [](ProxyPool::Slot) { ADD_FAILURE() << "ran after timeout"; },
        [&](const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::kDeadlineExceeded);
          ++late;
        });
    clock.advance(std::chrono::seconds(4));
    EXPECT_EQ(pool.queued(), 1u);
    clock.advance(std::chrono::seconds(2));
    while (late.load() == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(pool.queued(), 0u);
    release_one();
  }
  EXPECT_EQ(late.load(), 1);
}

TEST_F(PoolTest, StoppingRejectsWaitingRequestsAndSlotsOutliveThePool) {
  std::atomic<int> stopped{0};
  {
    ProxyPool pool(1, 8, std::chrono::seconds(30), SteadyClock::instance());
    pool.submit(fleet::Priority::kStandard, hold("holder"),
                [](const Error&) { ADD_FAILURE() << "the holder was rejected"; });
    pool.submit(
        fleet::Priority::kInteractive, [](ProxyPool::Slot) { ADD_FAILURE() << "ran after stop"; },
        [&](const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
          ++stopped;
        });
  }
  EXPECT_EQ(stopped.load(), 1);
  release_one();  // The pool is gone: releasing its slot does nothing.
  EXPECT_EQ(started(), std::vector<std::string>{"holder"});
}

TEST(DecisionLogTest, KeepsTheLastNNewestFirstAcrossWraps) {
  DecisionLog log(3);
  EXPECT_TRUE(log.recent().empty());
  const auto ids = [&] {
    std::vector<std::string> out;
    for (const RoutingDecision& d : log.recent())
      out.push_back(d.request_id);
    return out;
  };
  RoutingDecision d;
  for (int i = 1; i <= 8; ++i) {
    d.request_id = "req-" + std::to_string(i);
    d.replica = i % 2 == 0 ? "a-replica-with-a-name-longer-than-the-small-string" : "b";
    d.attempt = i;
    log.add(d);
    if (i == 2) {
      EXPECT_EQ(ids(), (std::vector<std::string>{"req-2", "req-1"}));
    }
    if (i == 3) {
      EXPECT_EQ(ids(), (std::vector<std::string>{"req-3", "req-2", "req-1"}));
    }
  }
  EXPECT_EQ(ids(), (std::vector<std::string>{"req-8", "req-7", "req-6"}));
  const std::vector<RoutingDecision> recent = log.recent();
  EXPECT_EQ(recent[0].replica, "a-replica-with-a-name-longer-than-the-small-string");
  EXPECT_EQ(recent[1].replica, "b");
  EXPECT_EQ(recent[2].attempt, 6);
  const json::value rendered = json::parse(log.render_json());
  EXPECT_EQ(rendered.at("data").as_array().size(), 3u);
  EXPECT_EQ(rendered.at("data").as_array()[0].at("request_id").as_string(), "req-8");
  // Written in place into the oldest entry (req-6's), whose fields it does not set stay.
  log.add_with([](RoutingDecision& slot) {
    slot.request_id.assign("req-9");
    slot.attempt = 9;
  });
  EXPECT_EQ(ids(), (std::vector<std::string>{"req-9", "req-8", "req-7"}));
  EXPECT_EQ(log.recent()[0].attempt, 9);
  EXPECT_EQ(log.recent()[0].replica, "a-replica-with-a-name-longer-than-the-small-string");
}

TEST(GatewayMetricsTest, LabelledCountersAreCreatedOnceAndCounted) {
  MetricsRegistry registry;
  GatewayMetrics metrics(registry);
  metrics.request("acme", "llama", 200);
  metrics.request("acme", "llama", 200);
  metrics.request("acme", "llama", 429);
  metrics.request("beta", "llama", 200);
  metrics.tokens("acme", 5, 7);
  metrics.tokens("acme", 0, 3);  // No prompt series bump for zero.
  metrics.tokens("beta", 0, 0);  // Nothing to count: no series yet.
  metrics.tokens("beta", 0, 2);  // Both series from the first tokens, the prompt one at 0.
  metrics.quota_rejection("acme");
  metrics.quota_rejection("acme");
  metrics.upstream_failure("timeout");
  const std::string text = registry.render_prometheus();
  const auto has = [&](std::string_view line) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  };
  has("spillway_gateway_requests_total{tenant=\"acme\",model=\"llama\",code=\"200\"} 2\n");
  has("spillway_gateway_requests_total{tenant=\"acme\",model=\"llama\",code=\"429\"} 1\n");
  has("spillway_gateway_requests_total{tenant=\"beta\",model=\"llama\",code=\"200\"} 1\n");
  has("spillway_gateway_tokens_total{tenant=\"acme\",kind=\"prompt\"} 5\n");
  has("spillway_gateway_tokens_total{tenant=\"acme\",kind=\"completion\"} 10\n");
  has("spillway_gateway_tokens_total{tenant=\"beta\",kind=\"prompt\"} 0\n");
  has("spillway_gateway_tokens_total{tenant=\"beta\",kind=\"completion\"} 2\n");
  has("spillway_gateway_quota_rejections_total{tenant=\"acme\"} 2\n");
  has("spillway_gateway_upstream_failures_total{reason=\"timeout\"} 1\n");
  // A second instance over the same registry shares the series (registered once).
  GatewayMetrics again(registry);
  again.quota_rejection("acme");
  EXPECT_NE(registry.render_prometheus().find(
                "spillway_gateway_quota_rejections_total{tenant=\"acme\"} 3\n"),
            std::string::npos);
}

}  // namespace
}  // namespace spillway::gateway
