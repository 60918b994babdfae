// RemoteReplicaSource against a real HTTP server standing in for the control plane's fleet API
// (its body is set by each test), on a ManualClock; and a gateway routing through it to a real
// `spillway serve` replica.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "core/log.h"

#include "net/http_client.h"
#include "net/http_server.h"

#include "fleet/api_key.h"
#include "gateway/gateway.h"
#include "gateway/remote_replica_source.h"

#include "serve/model_server.h"

#include "test_support.h"

namespace spillway::gateway {
namespace {

namespace json = boost::json;
using fleet::ReplicaState;

std::string replica_json(const std::string& id, const std::string& state,
                         const std::string& url = "http://127.0.0.1:9001") {
  return fmt::format(
      R"({{"id":"{}","model":"stories","provider":"azure","region":"east","pool":"azure-east",)"
      R"("url":"{}","state":"{}","pid":42,"running":2,"waiting":1,"kv_usage":0.25,)"
      R"("ttft_p50_s":0.5,"restarts":0,"gpus":1,"capacity":"reserved",)"
      R"("cost_per_gpu_hour":2.5,"rtt_ms":3}})",
      id, url, state);
}

std::string list_json(const std::vector<std::string>& entries) {
  std::string data;
  for (const auto& e : entries)
    data += (data.empty() ? "" : ",") + e;
  return R"({"object":"list","data":[)" + data + "]}";
}

// The fake control plane: a real HttpServer answering GET /v1/fleet/replicas and /v1/fleet
// with whatever the test set last.
class FakeControl {
 public:
  FakeControl() {
    net::Router router;
    EXPECT_TRUE(router
                    .add("GET", "/v1/fleet/replicas",
                         [this](net::HttpRequest, net::ResponseWriter w) {
                           std::lock_guard lock(mu_);
                           ++replica_polls_;
                           w.respond(net::HttpResponse::json(status_, replicas_));
                         })
                    .ok());
    EXPECT_TRUE(router
                    .add("GET", "/v1/fleet",
                         [this](net::HttpRequest, net::ResponseWriter w) {
                           std::lock_guard lock(mu_);
                           w.respond(net::HttpResponse::json(200, fleet_));
                         })
                    .ok());
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{}, std::move(router));
    EXPECT_TRUE(server_->start().ok());
  }
  ~FakeControl() { stop(); }

  void set(std::string replicas, int status = 200) {
    std::lock_guard lock(mu_);
    replicas_ = std::move(replicas);
    status_ = status;
  }
  void set_fleet(std::string fleet) {
    std::lock_guard lock(mu_);
    fleet_ = std::move(fleet);
  }
  int replica_polls() {
    std::lock_guard lock(mu_);
    return replica_polls_;
  }
  void stop() {
    if (server_) server_->stop();
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}", server_->port()); }

 private:
  std::mutex mu_;
  std::string replicas_ = list_json({});
  std::string fleet_ = R"({"providers":[],"models":[]})";
  int status_ = 200;
  int replica_polls_ = 0;
  std::unique_ptr<net::HttpServer> server_;
};

RemoteReplicaSourceOptions manual_options(const std::string& url) {
  RemoteReplicaSourceOptions o;
  o.control_url = url;
  o.poll_interval = std::chrono::milliseconds(0);  // The tests poll.
  o.max_staleness = std::chrono::seconds(5);
  o.hold_down = std::chrono::seconds(2);
  return o;
}

std::unique_ptr<RemoteReplicaSource> make_source(const RemoteReplicaSourceOptions& o,
                                                 const Clock& clock) {
  auto s = RemoteReplicaSource::create(o, clock);
  EXPECT_TRUE(s.ok()) << s.error().message();
  return s.ok() ? std::move(s).value() : nullptr;
}

ReplicaState state_of(const RemoteReplicaSource& s, const std::string& id) {
  const ReplicaSnapshot list = s.replicas();  // Held through the loop.
  for (const auto& v : *list) {
    if (v.id == id) return v.state;
  }
  ADD_FAILURE() << "no replica " << id;
  return ReplicaState::kStopped;
}

// Captures log lines for the duration of a test.
class LogCapture {
 public:
  LogCapture() {
    set_log_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { set_log_sink({}); }
  int count(std::string_view needle) {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& l : lines_)
      n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST(RemoteReplicaSource, PollsTheListWithEveryField) {
  FakeControl control;
  control.set(list_json({replica_json("r1", "ready"), replica_json("r2", "starting", "")}));
  ManualClock clock;
  auto source = make_source(manual_options(control.url()), clock);
  ASSERT_TRUE(source);
  EXPECT_TRUE(source->replicas()->empty());  // Nothing before the first poll.
  EXPECT_FALSE(source->last_success().has_value());
  ASSERT_TRUE(source->poll_once().ok());
  const auto list = source->replicas();
  ASSERT_EQ(list->size(), 2u);
  const fleet::ReplicaView& r = (*list)[0];
  EXPECT_EQ(r.id, "r1");
  EXPECT_EQ(r.model, "stories");
  EXPECT_EQ(r.provider, "azure");
  EXPECT_EQ(r.region, "east");
  EXPECT_EQ(r.pool, "azure-east");
  EXPECT_EQ(r.url, "http://127.0.0.1:9001");
  EXPECT_EQ(r.state, ReplicaState::kReady);
  EXPECT_EQ(r.running, 2);
  EXPECT_EQ(r.waiting, 1);
  EXPECT_DOUBLE_EQ(r.kv_usage, 0.25);
  EXPECT_DOUBLE_EQ(r.ttft_p50_s, 0.5);
  EXPECT_DOUBLE_EQ(r.rtt_ms, 3);
  EXPECT_DOUBLE_EQ(r.cost_per_gpu_hour, 2.5);
  EXPECT_EQ(r.capacity, fleet::CapacityKind::kReserved);
  EXPECT_EQ((*list)[1].state, ReplicaState::kStarting);
  EXPECT_EQ(source->last_success(), clock.now());

  // The next poll replaces the list.
  control.set(list_json({replica_json("r3", "draining")}));
  ASSERT_TRUE(source->poll_once().ok());
  ASSERT_EQ(source->replicas()->size(), 1u);
  EXPECT_EQ(state_of(*source, "r3"), ReplicaState::kDraining);
}

TEST(RemoteReplicaSource, MalformedAnswersKeepTheLastListAndAreLogged) {
  LogCapture logs;
  FakeControl control;
  control.set(list_json({replica_json("r1", "ready")}));
  ManualClock clock;
  auto source = make_source(manual_options(control.url()), clock);
  ASSERT_TRUE(source->poll_once().ok());

  const std::vector<std::pair<std::string, int>> bad = {
      {"{not json", 200},
      {R"({"object":"list"})", 200},
      {list_json({R"({"id":"x"})"}), 200},
      {list_json({replica_json("a", "ready"), replica_json("a", "ready")}), 200},
      {list_json({replica_json("a", "sleeping")}), 200},
      {list_json({replica_json("a", "ready", "")}), 200},
      {list_json({replica_json("a", "ready", "https://host:1")}), 200},
      {list_json({R"({"id":"a","model":"m","provider":"p","region":"r","pool":"p",)"
                  R"("url":"","state":"starting","running":-1})"}),
       200},
      {list_json({replica_json("r9", "ready")}), 500},
  };
  for (const auto& [body, status] : bad) {
    control.set(body, status);
    const Status s = source->poll_once();
    EXPECT_FALSE(s.ok()) << body;
    ASSERT_EQ(source->replicas()->size(), 1u) << body;
    EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kReady) << body;
  }
  // One error line for the whole streak of failures, then one line when it recovers.
  EXPECT_EQ(logs.count("control plane poll failed"), 1);
  control.set(list_json({replica_json("r1", "ready"), replica_json("r2", "ready")}));
  ASSERT_TRUE(source->poll_once().ok());
  EXPECT_EQ(source->replicas()->size(), 2u);
  EXPECT_EQ(logs.count("control plane poll recovered"), 1);
}

TEST(RemoteReplicaSource, AnOversizedAnswerIsRefused) {
  FakeControl control;
  ManualClock clock;
  auto o = manual_options(control.url());
  o.max_response_bytes = 1500;
  o.max_replicas = 3;
  auto source = make_source(o, clock);
  control.set(list_json({replica_json("r1", "ready")}));
  ASSERT_TRUE(source->poll_once().ok());
  std::vector<std::string> many;
  for (int i = 0; i < 8; ++i)
    many.push_back(replica_json(fmt::format("big-{}", i), "ready"));
  control.set(list_json(many));
  EXPECT_FALSE(source->poll_once().ok());
  EXPECT_EQ(source->replicas()->size(), 1u);
  // Within the byte limit but over the count limit.
  control.set(list_json({replica_json("a", "ready"), replica_json("b", "ready"),
                         R"({"id":"c","model":"m","provider":"","region":"","pool":"","url":"",)"
                         R"("state":"stopped"})",
                         R"({"id":"d","model":"m","provider":"","region":"","pool":"","url":"",)"
                         R"("state":"stopped"})"}));
  const Status s = source->poll_once();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("limit"), std::string::npos) << s.error().message();
  EXPECT_EQ(source->replicas()->size(), 1u);
}

TEST(RemoteReplicaSource, AStaleListShowsEveryReplicaUnhealthy) {
  FakeControl control;
  control.set(list_json({replica_json("r1", "ready"), replica_json("r2", "stopped", "")}));
  ManualClock clock;
  auto source = make_source(manual_options(control.url()), clock);
  ASSERT_TRUE(source->poll_once().ok());
  control.stop();  // The control plane goes away: polls fail to connect.
  clock.advance(std::chrono::seconds(4));
  EXPECT_FALSE(source->poll_once().ok());
  EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kReady);  // Still within max_staleness.
  clock.advance(std::chrono::seconds(2));
  EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kUnhealthy);
  EXPECT_EQ(state_of(*source, "r2"), ReplicaState::kStopped);  // Stopped stays stopped.
}

TEST(RemoteReplicaSource, AReportedReplicaWaitsOutTheHoldDownAndAReadyPoll) {
  FakeControl control;
  control.set(list_json({replica_json("r1", "ready"), replica_json("r2", "ready")}));
  ManualClock clock;
  auto source = make_source(manual_options(control.url()), clock);
  ASSERT_TRUE(source->poll_once().ok());
  source->report_failure("r1");
  source->report_failure("nobody");  // Unknown ids are ignored.
  EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kUnhealthy);
  EXPECT_EQ(state_of(*source, "r2"), ReplicaState::kReady);

  // Within the hold-down a ready poll does not re-admit it.
  clock.advance(std::chrono::seconds(1));
  ASSERT_TRUE(source->poll_once().ok());
  EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kUnhealthy);
  // After it, a poll that does not show it ready does not either.
  clock.advance(std::chrono::seconds(2));
  control.set(list_json({replica_json("r1", "unhealthy"), replica_json("r2", "ready")}));
  ASSERT_TRUE(source->poll_once().ok());
  EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kUnhealthy);
  control.set(list_json({replica_json("r1", "ready"), replica_json("r2", "ready")}));
  EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kUnhealthy);  // Until the next poll.
  ASSERT_TRUE(source->poll_once().ok());
  EXPECT_EQ(state_of(*source, "r1"), ReplicaState::kReady);

  // A replica that leaves the list forgets its ejection.
  source->report_failure("r2");
  control.set(list_json({replica_json("r1", "ready")}));
  ASSERT_TRUE(source->poll_once().ok());
  control.set(list_json({replica_json("r1", "ready"), replica_json("r2", "ready")}));
  ASSERT_TRUE(source->poll_once().ok());
  EXPECT_EQ(state_of(*source, "r2"), ReplicaState::kReady);
}

TEST(RemoteReplicaSource, RejectsBadOptions) {
  ManualClock clock;
  RemoteReplicaSourceOptions o;
  o.control_url = "https://127.0.0.1:1";
  EXPECT_EQ(RemoteReplicaSource::create(o, clock).error().code(), ErrorCode::kInvalidArgument);
  o.control_url = "http://127.0.0.1:1";
  o.max_staleness = std::chrono::milliseconds(0);
  EXPECT_EQ(RemoteReplicaSource::create(o, clock).error().code(), ErrorCode::kInvalidArgument);
  o = {};
  o.control_url = "http://127.0.0.1:1";
  o.max_response_bytes = 0;
  EXPECT_EQ(RemoteReplicaSource::create(o, clock).error().code(), ErrorCode::kInvalidArgument);
}

TEST(RemoteReplicaSource, PollsInTheBackground) {
  FakeControl control;
  control.set(list_json({replica_json("r1", "ready")}));
  auto o = manual_options(control.url());
  o.poll_interval = std::chrono::milliseconds(10);
  auto source = make_source(o, SteadyClock::instance());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (control.replica_polls() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(control.replica_polls(), 3);
  ASSERT_EQ(source->replicas()->size(), 1u);
  source.reset();  // Stops and joins the poller.
  const int polls = control.replica_polls();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(control.replica_polls(), polls);
}

// The read-only copies of the fleet API, and a gateway that routes through the source to a
// real replica.
TEST(RemoteReplicaSource, GatewayRoutesThroughItAndServesTheFleetCopies) {
  const std::string model = testing::shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(model);
  constexpr std::string_view kInternal = "sk-spw-RemoteSourceInternal000000000001";
  constexpr std::string_view kTenantKey = "sk-spw-RemoteSourceTenant00000000000001";
  serve::ServeOptions so;
  so.model_path = model;
  so.model_name = "stories";
  so.api_keys = {std::string(kInternal)};
  so.trusted_keys = {std::string(kInternal)};
  so.engine.threads = 1;
  so.engine.kv_cache_blocks = 64;
  so.shutdown_timeout = std::chrono::milliseconds(0);
  auto replica = serve::ModelServer::start(so);
  ASSERT_TRUE(replica.ok()) << replica.error().message();

  FakeControl control;
  control.set(list_json(
      {replica_json("azure-1", "ready", fmt::format("http://127.0.0.1:{}", (*replica)->port()))}));
  control.set_fleet(R"({"providers":[{"name":"azure","regions":[]}],"models":[]})");
  ManualClock clock;
  auto source = make_source(manual_options(control.url()), clock);

  SeededRandom random(9);
  auto spec = fleet::parse_fleet_spec(fmt::format(R"(
[[providers]]
name = "azure"
  [[providers.regions]]
  name = "east"
    [[providers.regions.pools]]
    name = "azure-east"
    gpu = "cpu-local"
    gpus = 1
    gpus_per_node = 1
    cost_per_gpu_hour = 2.5
    capacity = "reserved"
    workloads = ["inference"]
[[models]]
name = "stories"
path = "stories260K.gguf"
context_tokens = 512
[[tenants]]
name = "acme"
api_keys = ["{}"]
)",
                                                  fleet::hash_api_key(kTenantKey, random)),
                                      "fleet.toml");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  GatewayOptions go;
  go.internal_api_key = std::string(kInternal);
  MetricsRegistry metrics;
  auto gw = Gateway::create(*spec, go, *source, metrics, SteadyClock::instance());
  ASSERT_TRUE(gw.ok()) << gw.error().message();
  net::Router router;
  ASSERT_TRUE((*gw)->add_routes(router).ok());
  ASSERT_TRUE(source->add_fleet_routes(router).ok());
  net::HttpServer server(net::HttpServerOptions{}, std::move(router));
  ASSERT_TRUE(server.start().ok());
  net::HttpClientOptions co;
  co.port = server.port();
  net::HttpClient client(co);
  auto get = [&](const std::string& target) {
    net::HttpClientRequest r;
    r.target = target;
    auto resp = client.request(r);
    EXPECT_TRUE(resp.ok()) << resp.error().message();
    return resp.ok() ? *resp : net::HttpClientResponse{};
  };
  net::HttpClientRequest chat;
  chat.method = "POST";
  chat.target = "/v1/chat/completions";
  chat.headers.set("Authorization", fmt::format("Bearer {}", kTenantKey));
  chat.body = R"({"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":4})";

  // Before the first poll: no replica, no fleet copy.
  EXPECT_EQ(client.request(chat)->status, 503);
  EXPECT_EQ(get("/v1/fleet/replicas").status, 503);

  ASSERT_TRUE(source->poll_once().ok());
  const auto answer = client.request(chat);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->status, 200) << answer->body;
  EXPECT_EQ(json::parse(answer->body).at("usage").at("completion_tokens").as_int64(), 4);

  const auto replicas = get("/v1/fleet/replicas");
  EXPECT_EQ(replicas.status, 200);
  EXPECT_EQ(json::parse(replicas.body).at("data").at(0).at("id").as_string(), "azure-1");
  const auto fleet_copy = get("/v1/fleet");
  EXPECT_EQ(fleet_copy.status, 200);
  EXPECT_EQ(json::parse(fleet_copy.body).at("providers").at(0).at("name").as_string(), "azure");
  // The operator view from this machine needs no key (loopback rule).
  EXPECT_EQ(get("/v1/gateway/replicas").status, 200);

  // Stale: the gateway stops routing and the copies say so.
  clock.advance(std::chrono::seconds(6));
  EXPECT_EQ(client.request(chat)->status, 503);
  EXPECT_EQ(get("/v1/fleet").status, 503);
  server.stop();
}

}  // namespace
}  // namespace spillway::gateway
