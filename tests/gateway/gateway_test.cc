// The gateway end to end over loopback, in front of REAL replicas: in-process `spillway serve`
// ModelServers on stories260K, one per provider of a two-provider fleet (azure: reserved,
// the primary; oci: on-demand). Covers the OpenAI API through the gateway, authentication and
// model permissions, quotas under concurrency, failover, broken streams, cancellation,
// routing by the fleet's policy, and the operator pages.
#include "gateway/gateway.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "core/random.h"

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/net_test_support.h"
#include "net/sse.h"

#include "fleet/api_key.h"
#include "gateway/static_replica_source.h"

#include "serve/model_server.h"

#include "test_support.h"

namespace spillway::gateway {
namespace {

namespace json = boost::json;

constexpr std::string_view kAcmeKey = "sk-spw-AcmeTestKey0000000000000000000001";
constexpr std::string_view kOpsKey = "sk-spw-OpsTestKey00000000000000000000002";
constexpr std::string_view kInternalKey = "sk-internal-gateway";

std::string fleet_toml(std::int64_t acme_tokens_per_minute) {
  SeededRandom random(7);
  return fmt::format(R"(
[[providers]]
name = "azure"
  [[providers.regions]]
  name = "local"
    [[providers.regions.pools]]
    name = "azure-local"
    gpu = "cpu-local"
    gpus = 2
    gpus_per_node = 1
    cost_per_gpu_hour = 0.0
    capacity = "reserved"
    workloads = ["inference"]
[[providers]]
name = "oci"
  [[providers.regions]]
  name = "local"
    [[providers.regions.pools]]
    name = "oci-local"
    gpu = "cpu-local"
    gpus = 2
    gpus_per_node = 1
    cost_per_gpu_hour = 0.0
    capacity = "on-demand"
    workloads = ["inference"]
[[models]]
name = "stories"
path = "stories260K.gguf"
context_tokens = 512
[[models]]
name = "big"
path = "big.gguf"
[[tenants]]
name = "acme"
api_keys = ["{}"]
priority = "interactive"
tokens_per_minute = {}
models = ["stories"]
[[tenants]]
name = "ops"
api_keys = ["{}"]
cache = "shared:ops-cache"
[gateway]
routing = "spillway"
)",
                     fleet::hash_api_key(kAcmeKey, random), acme_tokens_per_minute,
                     fleet::hash_api_key(kOpsKey, random));
}

struct Reply {
  int status = 0;
  net::HttpHeaders headers;
  std::string body;
  json::value json() const { return json::parse(body); }
};

// A POST of `body` to `target` with tenant acme's key.
net::HttpClientRequest acme_post(const std::string& target, std::string body) {
  net::HttpClientRequest r;
  r.method = "POST";
  r.target = target;
  r.body = std::move(body);
  r.headers.set("Authorization", fmt::format("Bearer {}", kAcmeKey));
  return r;
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void TearDown() override { stop_gateway(); }

  // primary_max_running: sequences the azure replica decodes at once (1 makes it queue).
  void start(std::int64_t tokens_per_minute = 0, std::int32_t primary_max_running = 8) {
    model_path_ = testing::shared_path("models/stories260K.gguf");
    SPW_REQUIRE_SHARED_FILE(model_path_);
    replicas_.push_back(start_replica(primary_max_running));
    replicas_.push_back(start_replica(8));
    ASSERT_TRUE(replicas_[0] && replicas_[1]);
    std::vector<StaticUpstream> ups = {{"azure-1", url(*replicas_[0]), "stories", "azure", "local",
                                        "azure-local", fleet::CapacityKind::kReserved, 0, 0},
                                       {"oci-1", url(*replicas_[1]), "stories", "oci", "local",
                                        "oci-local", fleet::CapacityKind::kOnDemand, 0, 0}};
    StaticReplicaSourceOptions so;
    so.poll_interval = std::chrono::milliseconds(100);
    auto source = StaticReplicaSource::create(std::move(ups), so, SteadyClock::instance());
    ASSERT_TRUE(source.ok()) << source.error().message();
    source_ = std::move(source).value();
    start_gateway(*source_, tokens_per_minute);
  }

  void start_gateway(ReplicaSource& source, std::int64_t tokens_per_minute,
                     GatewayOptions options = {}) {
    auto spec = fleet::parse_fleet_spec(fleet_toml(tokens_per_minute), "fleet.toml");
    ASSERT_TRUE(spec.ok()) << spec.error().message();
    options.internal_api_key = std::string(kInternalKey);
    options.routing.primary_provider = "azure";
    options.routing.saturation_waiting = 2;
    options.max_inflight = 16;
    options.io_timeout = std::chrono::milliseconds(20'000);
    auto gw = Gateway::create(std::move(spec).value(), options, source, metrics_,
                              SteadyClock::instance());
    ASSERT_TRUE(gw.ok()) << gw.error().message();
    gateway_ = std::move(gw).value();
    net::Router router;
    ASSERT_TRUE(gateway_->add_routes(router).ok());
    net::HttpServerOptions ho;
    ho.io_threads = 2;
    http_ = std::make_unique<net::HttpServer>(ho, std::move(router));
    ASSERT_TRUE(http_->start().ok());
  }

  void stop_gateway() {
    if (http_) http_->stop();
    http_.reset();
    gateway_.reset();
    source_.reset();
    replicas_.clear();
  }

  std::unique_ptr<serve::ModelServer> start_replica(std::int32_t max_running) {
    serve::ServeOptions o;
    o.model_path = model_path_;
    o.model_name = "stories";
    o.api_keys = {std::string(kInternalKey)};
    o.trusted_keys = {std::string(kInternalKey)};
    o.engine.threads = 1;
    o.engine.kv_cache_blocks = 256;
    o.engine.max_running = max_running;
    o.engine.max_batch_tokens = 128;
    o.engine.max_waiting = 16;
    o.shutdown_timeout = std::chrono::milliseconds(0);  // Stopping cuts work at once.
    auto s = serve::ModelServer::start(std::move(o));
    EXPECT_TRUE(s.ok()) << s.error().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static std::string url(const serve::ModelServer& s) {
    return fmt::format("http://127.0.0.1:{}", s.port());
  }

  net::HttpClient client() const {
    net::HttpClientOptions o;
    o.port = http_->port();
    o.io_timeout = std::chrono::milliseconds(30'000);
    return net::HttpClient(o);
  }

  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             std::string_view key = kAcmeKey) const {
    net::HttpClient c = client();
    net::HttpClientRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    if (!key.empty()) r.headers.set("Authorization", fmt::format("Bearer {}", key));
    auto resp = c.request(r);
    EXPECT_TRUE(resp.ok()) << resp.error().message();
    if (!resp.ok()) return {};
    return Reply{resp->status, resp->headers, resp->body};
  }

  // The data payloads of a streamed answer. `on_event` may stop reading by returning false.
  std::vector<std::string> stream(const std::string& target, const std::string& body,
                                  const std::function<bool(std::size_t)>& on_event = {}) const {
    net::HttpClient c = client();
    const net::HttpClientRequest r = acme_post(target, body);
    std::string raw;
    std::vector<std::string> events;
    auto resp = c.stream(
        r, [](int status, const net::HttpHeaders&) { return status == 200; },
        [&](std::string_view piece) {
          raw += piece;
          std::size_t end;
          while ((end = raw.find("\n\n")) != std::string::npos) {
            std::string ev = raw.substr(0, end);
            raw.erase(0, end + 2);
            EXPECT_TRUE(ev.starts_with("data: ")) << ev;
            events.push_back(ev.substr(6));
            if (on_event && !on_event(events.size())) return false;
          }
          return true;
        });
    if (!on_event) {
      EXPECT_TRUE(resp.ok()) << resp.error().message();
      EXPECT_TRUE(raw.empty()) << "unterminated event: " << raw;
    }
    return events;
  }

  static std::string error_type(const Reply& r) {
    return std::string(r.json().at("error").at("type").as_string());
  }

  json::array decisions() const {
    const Reply r = call("GET", "/v1/gateway/decisions", "", "");
    EXPECT_EQ(r.status, 200);
    return r.json().at("data").as_array();
  }

  std::string model_path_;
  MetricsRegistry metrics_;
  std::vector<std::unique_ptr<serve::ModelServer>> replicas_;
  std::unique_ptr<StaticReplicaSource> source_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<net::HttpServer> http_;
};

std::string chat_body(const std::string& extra, int max_tokens = 24) {
  return fmt::format(
      R"({{"model":"stories","messages":[{{"role":"user","content":"Once upon a time"}}],)"
      R"("max_tokens":{},"temperature":0{}}})",
      max_tokens, extra);
}

TEST_F(GatewayTest, ChatThroughTheGatewayStreamsTheSameText) {
  const Reply whole = call("POST", "/v1/chat/completions", chat_body(""));
  ASSERT_EQ(whole.status, 200) << whole.body;
  const json::value v = whole.json();
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 24);
  const std::string expected(
      v.at("choices").as_array().at(0).at("message").at("content").as_string());
  EXPECT_FALSE(expected.empty());
  EXPECT_TRUE(whole.headers.get("X-Request-Id").has_value());

  // Without include_usage: the replica was asked for usage, the client sees none of it.
  const auto events = stream("/v1/chat/completions", chat_body(R"(,"stream":true)"));
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json::value c = json::parse(events[i]);
    EXPECT_EQ(c.at("object").as_string(), "chat.completion.chunk");
    EXPECT_EQ(c.as_object().if_contains("usage"), nullptr) << events[i];
    const auto& choices = c.at("choices").as_array();
    ASSERT_EQ(choices.size(), 1u) << events[i];
    if (const auto* t = choices[0].at("delta").as_object().if_contains("content")) {
      text += t->as_string();
    }
  }
  EXPECT_EQ(text, expected);

  // With include_usage: the usage chunk comes through, last before [DONE].
  const auto with_usage =
      stream("/v1/chat/completions",
             chat_body(R"(,"stream":true,"stream_options":{"include_usage":true})"));
  ASSERT_GE(with_usage.size(), 3u);
  const json::value u = json::parse(with_usage[with_usage.size() - 2]);
  EXPECT_TRUE(u.at("choices").as_array().empty());
  EXPECT_EQ(u.at("usage").at("completion_tokens").as_int64(), 24);
  EXPECT_EQ(gateway_->quota("acme")->requests_in_window(), 3);
}

TEST_F(GatewayTest, CompletionsThroughTheGatewayStreamTheSameText) {
  const std::string body =
      R"({"model":"stories","prompt":"The cat","max_tokens":16,"temperature":0)";
  const Reply whole = call("POST", "/v1/completions", body + "}");
  ASSERT_EQ(whole.status, 200) << whole.body;
  const std::string expected(whole.json().at("choices").as_array().at(0).at("text").as_string());
  const auto events = stream("/v1/completions", body + R"(,"stream":true})");
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json::value c = json::parse(events[i]);
    EXPECT_EQ(c.at("object").as_string(), "text_completion");
    text += c.at("choices").as_array().at(0).at("text").as_string();
  }
  EXPECT_EQ(text, expected);
}

TEST_F(GatewayTest, AuthenticationModelAccessAndValidationErrors) {
  const Reply none = call("POST", "/v1/chat/completions", chat_body(""), "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(error_type(none), "authentication_error");
  EXPECT_EQ(none.headers.get("WWW-Authenticate").value_or(""), "Bearer");
  const Reply wrong = call("POST", "/v1/chat/completions", chat_body(""), "sk-spw-wrong");
  EXPECT_EQ(wrong.status, 401);
  // The internal key opens replicas, not the gateway.
  EXPECT_EQ(call("POST", "/v1/chat/completions", chat_body(""), kInternalKey).status, 401);

  const Reply hidden = call("POST", "/v1/chat/completions",
                            R"({"model":"big","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(hidden.json().at("error").at("code").as_string(), "model_not_found");
  EXPECT_EQ(hidden.json().at("error").at("param").as_string(), "model");
  EXPECT_EQ(call("POST", "/v1/completions", R"({"model":"gpt-4","prompt":"x"})").status, 404);

  const Reply bad_json = call("POST", "/v1/chat/completions", "{not json");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(error_type(bad_json), "invalid_request_error");
  const Reply bad_temp = call("POST", "/v1/chat/completions", chat_body(R"(,"top_p":3)"));
  EXPECT_EQ(bad_temp.status, 400);
  EXPECT_EQ(bad_temp.json().at("error").at("param").as_string(), "top_p");
  // An error the replica finds (prompt beyond its context) comes back as the replica said it.
  const Reply too_long = call(
      "POST", "/v1/completions",
      fmt::format(R"({{"model":"stories","prompt":"{}","max_tokens":4}})", std::string(3000, 'a')));
  EXPECT_EQ(too_long.status, 400) << too_long.body;
  EXPECT_EQ(gateway_->quota("acme")->tokens_in_window(), 0);  // Nothing was used.
  const std::string m = call("GET", "/metrics", "", "").body;
  EXPECT_NE(
      m.find(
          R"(spillway_gateway_requests_total{tenant="unauthenticated",model="other",code="401"} 3)"),
      std::string::npos)
      << m;
}

TEST_F(GatewayTest, ModelsListOnlyTheTenantsModels) {
  const Reply acme = call("GET", "/v1/models");
  ASSERT_EQ(acme.status, 200);
  const json::value listed = acme.json();
  const auto& data = listed.at("data").as_array();
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].at("id").as_string(), "stories");
  const Reply ops = call("GET", "/v1/models", "", kOpsKey);
  EXPECT_EQ(ops.json().at("data").as_array().size(), 2u);
  EXPECT_EQ(call("GET", "/v1/models/stories").status, 200);
  EXPECT_EQ(call("GET", "/v1/models/big").status, 404);
  EXPECT_EQ(call("GET", "/v1/models/big", "", kOpsKey).status, 200);
  EXPECT_EQ(call("GET", "/v1/models", "", "").status, 401);
}

TEST_F(GatewayTest, StatusPageProbesAndMetrics) {
  const Reply page = call("GET", "/", "", "");
  ASSERT_EQ(page.status, 200);
  EXPECT_TRUE(page.headers.get("Content-Type").value_or("").starts_with("text/html"));
  EXPECT_NE(page.body.find("<html"), std::string::npos);
  EXPECT_NE(page.body.find("/v1/gateway/decisions"), std::string::npos);
  EXPECT_NE(page.body.find("/v1/fleet/replicas"), std::string::npos);
  EXPECT_EQ(call("GET", "/health", "", "").status, 200);
  EXPECT_EQ(call("GET", "/ready", "", "").status, 200);
  ASSERT_EQ(call("POST", "/v1/chat/completions", chat_body("", 4)).status, 200);
  const std::string m = call("GET", "/metrics", "", "").body;
  for (const char* s :
       {R"(spillway_gateway_requests_total{tenant="acme",model="stories",code="200"} 1)",
        R"(spillway_gateway_tokens_total{tenant="acme",kind="completion"} 4)",
        "spillway_gateway_upstream_latency_seconds_count 1"}) {
    EXPECT_NE(m.find(s), std::string::npos) << s << "\n" << m;
  }
  const json::value replicas = call("GET", "/v1/gateway/replicas", "", "").json();
  EXPECT_EQ(replicas.at("data").as_array().size(), 2u);
}

// Passes everything on to another source, counting what the gateway reports.
class CountingSource final : public ReplicaSource {
 public:
  explicit CountingSource(ReplicaSource& inner) : inner_(inner) {}
  [[nodiscard]] ReplicaSnapshot replicas() const override { return inner_.replicas(); }
  void report_failure(const std::string& id) override {
    ++failures;
    inner_.report_failure(id);
  }
  void report_success(const std::string& id) override {
    ++successes;
    inner_.report_success(id);
  }
  std::atomic<int> failures{0};
  std::atomic<int> successes{0};

 private:
  ReplicaSource& inner_;
};

// A complete answer restarts the replica's run of failures (the control plane ejects after
// several failures in a row, not after several failures over hours).
TEST_F(GatewayTest, CompleteAnswersAreReportedAsSuccesses) {
  http_->stop();
  http_.reset();
  gateway_.reset();
  CountingSource counting(*source_);
  start_gateway(counting, 0);
  EXPECT_EQ(call("POST", "/v1/chat/completions", chat_body("", 4)).status, 200);
  EXPECT_EQ(call("POST", "/v1/chat/completions", chat_body("", 4)).status, 200);
  EXPECT_EQ(counting.successes.load(), 2);
  EXPECT_EQ(counting.failures.load(), 0);
  http_->stop();  // Before `counting` goes.
  http_.reset();
  gateway_.reset();
}

TEST_F(GatewayTest, ReadyIsServiceUnavailableWithoutReadyReplicas) {
  source_->report_failure("azure-1");
  source_->report_failure("oci-1");
  // The probe re-admits them within 100 ms; until then /ready may say 503, after it 200.
  const Reply r = call("GET", "/ready", "", "");
  EXPECT_TRUE(r.status == 503 || r.status == 200);
  replicas_[0]->shutdown();
  replicas_[1]->shutdown();
  source_->probe_all();
  const Reply down = call("GET", "/ready", "", "");
  EXPECT_EQ(down.status, 503);
  const Reply chat = call("POST", "/v1/chat/completions", chat_body(""));
  EXPECT_EQ(chat.status, 503);
  EXPECT_EQ(chat.headers.get("Retry-After").value_or(""), "1");
  EXPECT_EQ(gateway_->quota("acme")->tokens_in_window(), 0);  // Released.
}

class GatewayQuotaTest : public GatewayTest {
 protected:
  void SetUp() override { start(kBudget); }
  static constexpr std::int64_t kBudget = 300;
};

TEST_F(GatewayQuotaTest, ConcurrentBurstNeverExceedsTheTokenBudget) {
  // Worst case per request: 2 bytes + 16 (message) + 16 (request) + 8 max_tokens = 42, so at
  // most 7 fit at once in 300; settled requests give back what they did not use.
  const std::string body =
      R"({"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0})";
  const fleet::TokenQuota* quota = gateway_->quota("acme");
  std::atomic<bool> done{false};
  std::atomic<std::int64_t> peak{0};
  std::thread sampler([&] {
    while (!done.load()) {
      peak.store(std::max(peak.load(), quota->tokens_in_window()));
      std::this_thread::yield();
    }
  });
  std::mutex mu;
  std::int64_t used = 0;
  int ok = 0, limited = 0;
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back([&] {
      const Reply r = call("POST", "/v1/chat/completions", body);
      std::lock_guard lock(mu);
      if (r.status == 200) {
        ++ok;
        used += r.json().at("usage").at("total_tokens").as_int64();
      } else {
        EXPECT_EQ(r.status, 429) << r.body;
        ++limited;
        EXPECT_EQ(error_type(r), "rate_limit_error");
        const std::string ra(r.headers.get("Retry-After").value_or("0"));
        EXPECT_GE(std::stoi(ra), 1);
      }
    });
  }
  for (auto& t : clients)
    t.join();
  done = true;
  sampler.join();
  EXPECT_EQ(ok + limited, 50);
  EXPECT_GE(ok, 7);
  EXPECT_GT(limited, 0);
  EXPECT_LE(peak.load(), kBudget);
  // Every admitted request was settled to the usage its replica reported.
  EXPECT_EQ(quota->tokens_in_window(), used);
  EXPECT_EQ(quota->requests_in_window(), ok);
  const std::string m = call("GET", "/metrics", "", "").body;
  EXPECT_NE(m.find(fmt::format(R"(spillway_gateway_quota_rejections_total{{tenant="acme"}} {})",
                               limited)),
            std::string::npos);
}

TEST_F(GatewayTest, StoppedReplicaFailsOverInvisibly) {
  std::atomic<int> sent{0}, ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        const Reply r = call("POST", "/v1/chat/completions", chat_body("", 8));
        ++sent;
        if (r.status == 200) {
          ++ok;
        } else {
          ADD_FAILURE() << r.status << " " << r.body;
        }
      }
    });
  }
  while (sent.load() < 8)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  replicas_[0]->shutdown();  // The primary (azure) goes away while requests flow.
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(ok.load(), 40);
  bool served_by_oci_after = false;
  for (const auto& d : decisions()) {
    served_by_oci_after |= d.at("provider").as_string() == "oci";
  }
  EXPECT_TRUE(served_by_oci_after);
  const auto views = source_->replicas();
  EXPECT_NE((*views)[0].state, fleet::ReplicaState::kReady);
}

TEST_F(GatewayTest, StreamCutByItsReplicaEndsWithAnErrorEventAndDone) {
  // Eight long choices keep the primary busy; it is destroyed after the third event.
  const auto events = stream(
      "/v1/completions",
      R"({"model":"stories","prompt":"","n":8,"max_tokens":480,"temperature":0,"stream":true})",
      [&](std::size_t n) {
        if (n == 3) replicas_[0].reset();
        return true;
      });
  ASSERT_GE(events.size(), 5u);
  EXPECT_EQ(events.back(), "[DONE]");
  const json::value err = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(err.as_object().contains("error")) << events[events.size() - 2];
  int finished = 0;
  for (std::size_t i = 0; i + 2 < events.size(); ++i) {
    const json::value chunk = json::parse(events[i]);
    for (const auto& c : chunk.at("choices").as_array()) {
      finished += c.at("finish_reason").is_null() ? 0 : 1;
    }
  }
  EXPECT_LT(finished, 8);  // Cut before every choice ended.
}

TEST_F(GatewayTest, ClientDisconnectCancelsTheReplicasWork) {
  stream("/v1/completions",
         R"({"model":"stories","prompt":"","max_tokens":480,"temperature":0,"stream":true})",
         [](std::size_t n) { return n < 3; });  // Hang up early.
  for (auto& r : replicas_) {
    ASSERT_TRUE(r->engine().wait_idle(std::chrono::seconds(20)));
    const engine::EngineStats st = r->engine().stats();
    EXPECT_EQ(st.kv_blocks_used, 0);
    EXPECT_LT(st.scheduler.computed_tokens, 400u);
  }
}

class GatewayRoutingTest : public GatewayTest {
 protected:
  void SetUp() override { start(0, /*primary_max_running=*/1); }
};

TEST_F(GatewayRoutingTest, PrefersThePrimaryProviderAndSpillsWhenSaturated) {
  ASSERT_EQ(call("POST", "/v1/chat/completions", chat_body("", 4)).status, 200);
  auto first = decisions();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].at("provider").as_string(), "azure");
  EXPECT_EQ(first[0].at("policy").as_string(), "spillway");

  // The primary decodes one sequence at a time; eight long requests at once saturate it.
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      const Reply r = call(
          "POST", "/v1/completions",
          fmt::format(
              R"({{"model":"stories","prompt":"Story {}","max_tokens":200,"temperature":0}})", i));
      EXPECT_EQ(r.status, 200) << r.body;
    });
  }
  for (auto& t : clients)
    t.join();
  int azure = 0, oci = 0;
  for (const auto& d : decisions()) {
    (d.at("provider").as_string() == "azure" ? azure : oci)++;
  }
  EXPECT_GE(azure, 3);  // The first request and at least the two before saturation.
  EXPECT_GE(oci, 1);
}

// A gateway over one replica served by `upstream_routes` (a stand-in written by the test), for
// answers a real replica would not give.
struct OneReplicaGateway {
  explicit OneReplicaGateway(net::Router upstream_routes, GatewayOptions options = {},
                             net::HttpServerOptions server_options = {}) {
    upstream =
        std::make_unique<net::HttpServer>(net::HttpServerOptions{}, std::move(upstream_routes));
    if (!upstream->start().ok()) return;
    source = StaticReplicaSource::create(
        {{"stand-in-1", fmt::format("http://127.0.0.1:{}", upstream->port()), "stories", "azure",
          "local", "azure-local"}},
        StaticReplicaSourceOptions{.poll_interval = std::chrono::milliseconds(0)},
        SteadyClock::instance());
    if (!source.ok()) return;
    auto spec = fleet::parse_fleet_spec(fleet_toml(0), "fleet.toml");
    if (!spec.ok()) return;
    gateway = Gateway::create(std::move(spec).value(), std::move(options), **source, metrics,
                              SteadyClock::instance());
    if (!gateway.ok()) return;
    net::Router router;
    if (!(*gateway)->add_routes(router).ok()) return;
    server = std::make_unique<net::HttpServer>(server_options, std::move(router));
    started_ = server->start().ok();
  }
  [[nodiscard]] bool started() const { return started_; }
  // A client of the gateway. REQUIRES: started().
  [[nodiscard]] net::HttpClient client() const {
    net::HttpClientOptions o;
    o.port = server->port();
    return net::HttpClient(o);
  }

  std::unique_ptr<net::HttpServer> upstream;
  Result<std::unique_ptr<StaticReplicaSource>> source =
      make_error(ErrorCode::kInternal, "not created");
  MetricsRegistry metrics;
  Result<std::unique_ptr<Gateway>> gateway = make_error(ErrorCode::kInternal, "not created");
  std::unique_ptr<net::HttpServer> server;

 private:
  bool started_ = false;
};

// A replica that crashes mid-stream: an HTTP server that sends two chunks and, once the
// client has seen them through the gateway, drops the connection without finishing (no
// [DONE], truncated chunked body).
TEST(GatewayBrokenUpstreamTest, TruncatedStreamGetsTheGatewaysErrorEvent) {
  std::vector<std::thread> cutters;
  std::atomic<bool> content_seen{false};
  net::Router upstream_routes;
  const auto handler = [&](net::HttpRequest, net::ResponseWriter w) {
    w.start(200, net::sse_response_headers());
    w.write(net::format_sse_data(
        R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null})"));
    w.write(net::format_sse_data(
        R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Once"},"finish_reason":null}],"usage":null})"));
    cutters.emplace_back([w, &content_seen]() mutable {
      while (!content_seen.load() && !w.is_closed())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      w = net::ResponseWriter();  // The last copy, unfinished: the connection is cut.
    });
  };
  ASSERT_TRUE(upstream_routes.add("POST", "/v1/chat/completions", handler).ok());
  OneReplicaGateway g(std::move(upstream_routes));
  ASSERT_TRUE(g.started());
  auto& source = g.source;
  auto& gw = g.gateway;

  net::HttpClient c = g.client();
  const net::HttpClientRequest r =
      acme_post("/v1/chat/completions", chat_body(R"(,"stream":true)"));
  std::string raw;
  auto resp = c.stream(
      r, [](int, const net::HttpHeaders&) { return true; },
      [&](std::string_view p) {
        raw += p;
        if (raw.find(R"("content":"Once")") != std::string::npos) content_seen = true;
        return true;
      });
  content_seen = true;
  ASSERT_TRUE(resp.ok()) << resp.error().message();
  EXPECT_EQ(resp->status, 200);
  EXPECT_NE(raw.find(R"("content":"Once")"), std::string::npos) << raw;
  EXPECT_EQ(raw.find(R"("usage":null)"), std::string::npos) << raw;
  const std::size_t error = raw.find(R"(data: {"error":)");
  ASSERT_NE(error, std::string::npos) << raw;
  EXPECT_TRUE(raw.ends_with("data: [DONE]\n\n")) << raw;
  EXPECT_EQ((*(*source)->replicas())[0].state, fleet::ReplicaState::kUnhealthy);
  EXPECT_EQ((*gw)->quota("acme")->requests_in_window(), 1);  // Settled to an estimate.
  g.server->stop();
  g.upstream->stop();
  for (auto& t : cutters)
    t.join();
}

// A client that reads slower than its replica streams: the gateway stops reading the replica
// while more than max_client_buffer_bytes wait for the client, so its own write buffer
// (max_pending_write_bytes, far smaller than the stream) never overflows, which would cut
// the stream. The client reads nothing at first, through a small receive window.
TEST(GatewayOneReplicaTest, SlowClientHoldsBackTheReplicaInsteadOfLosingTheStream) {
  constexpr int kEvents = 1024;
  const std::string payload(8 << 10, 'x');  // 8 MiB in all: more than the sockets hold.
  std::vector<std::thread> writers;
  net::Router upstream_routes;
  const auto handler = [&](net::HttpRequest, net::ResponseWriter w) {
    w.start(200, net::sse_response_headers());
    writers.emplace_back([w, &payload]() mutable {
      for (int i = 0; i < kEvents && !w.is_closed(); ++i) {
        while (w.buffered_bytes() > (256u << 10) && !w.is_closed())
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        w.write(net::format_sse_data(fmt::format(R"({{"i":{},"p":"{}"}})", i, payload)));
      }
      w.write(net::format_sse_data("[DONE]"));
      w.finish();
    });
  };
  ASSERT_TRUE(upstream_routes.add("POST", "/v1/chat/completions", handler).ok());
  GatewayOptions options;
  options.max_client_buffer_bytes = 16 << 10;
  net::HttpServerOptions server_options;
  server_options.max_pending_write_bytes = 64 << 10;
  OneReplicaGateway g(std::move(upstream_routes), options, server_options);
  ASSERT_TRUE(g.started());

  net::testing::RawSocket client(g.server->port(), 4096);
  ASSERT_TRUE(client.connected());
  const std::string body = chat_body(R"(,"stream":true)");
  ASSERT_TRUE(client.send(
      fmt::format("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n"
                  "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                  kAcmeKey, body.size(), body)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // Not reading yet.
  ASSERT_TRUE(client.read_until("data: [DONE]\n\n")) << client.buffer().substr(0, 300);
  const std::string& raw = client.buffer();
  EXPECT_EQ(raw.find(R"(data: {"error":)"), std::string::npos);
  for (const int i : {0, kEvents / 2, kEvents - 1}) {
    EXPECT_NE(raw.find(fmt::format(R"({{"i":{},"p":")", i)), std::string::npos) << i;
  }
  g.server->stop();
  g.upstream->stop();
  for (auto& t : writers)
    t.join();
}

// A complete answer's usage comes from the replica's X-Spillway-Usage field when it parses
// (openai/usage_header.h), else from the body: here they differ, so the token counters tell
// which one the gateway used.
TEST(GatewayOneReplicaTest, UsageComesFromTheUsageFieldElseFromTheBody) {
  std::atomic<int> calls{0};
  net::Router upstream_routes;
  const auto handler = [&](net::HttpRequest, net::ResponseWriter w) {
    net::HttpResponse r = net::HttpResponse::json(
        200,
        R"({"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}})");
    const int n = calls++;
    if (n == 0) r.headers.set("X-Spillway-Usage", "prompt_tokens=100 completion_tokens=200");
    if (n == 1) r.headers.set("X-Spillway-Usage", "prompt_tokens=100 completion_tokens=");
    w.respond(std::move(r));  // The third has no field.
  };
  ASSERT_TRUE(upstream_routes.add("POST", "/v1/chat/completions", handler).ok());
  OneReplicaGateway g(std::move(upstream_routes));
  ASSERT_TRUE(g.started());
  net::HttpClient c = g.client();
  const net::HttpClientRequest r = acme_post("/v1/chat/completions", chat_body("", 4));
  for (int i = 0; i < 3; ++i) {
    auto resp = c.request(r);
    ASSERT_TRUE(resp.ok()) << resp.error().message();
    ASSERT_EQ(resp->status, 200) << resp->body;
    EXPECT_FALSE(resp->headers.contains("X-Spillway-Usage"));  // Not relayed to the client.
  }
  const std::string m = g.metrics.render_prometheus();
  for (const char* s : {R"(spillway_gateway_tokens_total{tenant="acme",kind="prompt"} 102)",
                        R"(spillway_gateway_tokens_total{tenant="acme",kind="completion"} 204)"}) {
    EXPECT_NE(m.find(s), std::string::npos) << s << "\n" << m;
  }
  g.server->stop();
  g.upstream->stop();
}

}  // namespace
}  // namespace spillway::gateway
