// ControlPlane with real `spillway serve` replicas: placement across providers, restarts with
// backoff, pool drain and undrain, scale-in by draining, the circuit breaker, the fleet API,
// and no orphan process after stop() or after the control plane is SIGKILLed.
#include "control/control_plane.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "core/log.h"
#include "core/metrics.h"

#include "net/http_server.h"

#include "control/fleet_api.h"
#include "control/prometheus_text.h"
#include "fleet/fleet_spec.h"

#include "control_test_support.h"

extern char** environ;

namespace spillway::control {
namespace {

namespace json = boost::json;
using fleet::ReplicaState;
using fleet::ReplicaView;
using testing::client_for;
using testing::model_path;
using testing::port_of;
using testing::process_exists;
using testing::wait_until;

// Two providers with one local pool each (2 GPU slots): azure reserved at 1/h, oci on-demand
// at 2/h.
fleet::FleetSpec two_provider_fleet(int min_replicas, int max_replicas) {
  const std::string toml = fmt::format(R"(
[[providers]]
name = "azure"
  [[providers.regions]]
  name = "eastus"
  rtt_ms = 1.0
    [[providers.regions.pools]]
    name = "azure-local"
    gpu = "cpu-local"
    gpus = 2
    gpus_per_node = 1
    cost_per_gpu_hour = 1.0
    capacity = "reserved"
    workloads = ["inference"]
      [providers.regions.pools.local]
      threads = 1
      kv_cache_mib = 4
[[providers]]
name = "oci"
  [[providers.regions]]
  name = "phx"
  rtt_ms = 2.0
    [[providers.regions.pools]]
    name = "oci-local"
    gpu = "cpu-local"
    gpus = 2
    gpus_per_node = 1
    cost_per_gpu_hour = 2.0
    capacity = "on-demand"
    workloads = ["inference"]
      [providers.regions.pools.local]
      threads = 1
      kv_cache_mib = 4
[[models]]
name = "stories"
path = "{}"
min_replicas = {}
max_replicas = {}
)",
                                       model_path(), min_replicas, max_replicas);
  auto spec = fleet::parse_fleet_spec(toml, "");
  EXPECT_TRUE(spec.ok()) << spec.error().to_string();
  return std::move(spec).value();
}

ControlOptions fast_options() {
  ControlOptions o;
  o.reconcile_interval = std::chrono::milliseconds(50);
  o.health_interval = std::chrono::milliseconds(100);
  o.health_timeout = std::chrono::milliseconds(2'000);
  o.restart_backoff_initial = std::chrono::milliseconds(200);
  o.restart_backoff_max = std::chrono::seconds(2);
  o.drain_timeout = std::chrono::seconds(30);
  o.terminate_grace = std::chrono::seconds(30);
  o.spillway_bin = testing::spillway_bin();
  return o;
}

std::vector<ReplicaView> in_state(const ControlPlane& cp, ReplicaState state) {
  std::vector<ReplicaView> out;
  for (auto& r : cp.replicas()) {
    if (r.state == state) out.push_back(r);
  }
  return out;
}

// Log lines, captured while it lives (set_log_sink is process-wide).
class LogCapture {
 public:
  LogCapture() {
    set_log_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { set_log_sink({}); }
  // Lines containing every one of `parts`, in order of arrival.
  std::vector<std::string> find(std::initializer_list<std::string_view> parts) const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& l : lines_) {
      if (std::all_of(parts.begin(), parts.end(),
                      [&](std::string_view p) { return l.find(p) != std::string::npos; })) {
        out.push_back(l);
      }
    }
    return out;
  }
  // Index of the first line containing all parts; -1 when none.
  long index_of(std::initializer_list<std::string_view> parts) const {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < lines_.size(); ++i) {
      if (std::all_of(parts.begin(), parts.end(),
                      [&](std::string_view p) { return lines_[i].find(p) != std::string::npos; })) {
        return static_cast<long>(i);
      }
    }
    return -1;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

net::HttpClientResponse call(int port, const std::string& method, const std::string& target) {
  auto client = client_for(port);
  net::HttpClientRequest req;
  req.method = method;
  req.target = target;
  auto r = client.request(req);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  return r.ok() ? *r : net::HttpClientResponse{};
}

TEST(ControlPlane, PlacesOneReplicaPerProviderAndServesTheFleetApi) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  MetricsRegistry metrics;
  ControlPlane cp(two_provider_fleet(2, 3), fast_options(), SteadyClock::instance(), &metrics);
  ASSERT_TRUE(cp.start().ok());
  EXPECT_EQ(cp.start().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(wait_until([&] { return in_state(cp, ReplicaState::kReady).size() == 2; }));
  const auto ready = in_state(cp, ReplicaState::kReady);
  std::set<std::string> providers;
  for (const auto& r : ready) {
    providers.insert(r.provider);
    EXPECT_EQ(r.model, "stories");
    EXPECT_GT(port_of(r.url), 0);
  }
  EXPECT_EQ(providers, (std::set<std::string>{"azure", "oci"}));
  EXPECT_EQ(cp.internal_api_key().rfind("sk-spw-", 0), 0u);

  // The fleet API on a server of its own.
  net::Router router;
  ASSERT_TRUE(add_fleet_routes(router, cp).ok());
  EXPECT_EQ(add_fleet_routes(router, cp).code(), ErrorCode::kAlreadyExists);
  net::HttpServer server(net::HttpServerOptions{}, std::move(router));
  ASSERT_TRUE(server.start().ok());

  const auto fleet_body = call(server.port(), "GET", "/v1/fleet");
  EXPECT_EQ(fleet_body.status, 200);
  const json::object f = json::parse(fleet_body.body).as_object();
  EXPECT_DOUBLE_EQ(f.at("cost_per_hour").to_number<double>(), 3.0);  // 1 GPU at 1/h + 1 at 2/h.
  EXPECT_EQ(f.at("gpus_total").as_int64(), 4);
  EXPECT_EQ(f.at("gpus_used").as_int64(), 2);
  const json::array& provs = f.at("providers").as_array();
  ASSERT_EQ(provs.size(), 2u);
  EXPECT_EQ(provs[1].at("name").as_string(), "oci");
  const json::object& oci_pool =
      provs[1].at("regions").as_array()[0].at("pools").as_array()[0].as_object();
  EXPECT_EQ(oci_pool.at("name").as_string(), "oci-local");
  EXPECT_EQ(oci_pool.at("gpus").as_int64(), 2);
  EXPECT_EQ(oci_pool.at("gpus_used").as_int64(), 1);
  EXPECT_EQ(oci_pool.at("gpus_free").as_int64(), 1);
  EXPECT_EQ(oci_pool.at("capacity").as_string(), "on-demand");
  EXPECT_DOUBLE_EQ(oci_pool.at("cost_per_gpu_hour").to_number<double>(), 2.0);
  EXPECT_FALSE(oci_pool.at("drained").as_bool());
  const json::object& model = f.at("models").as_array()[0].as_object();
  EXPECT_EQ(model.at("name").as_string(), "stories");
  EXPECT_EQ(model.at("desired_replicas").as_int64(), 2);
  EXPECT_EQ(model.at("actual_replicas").as_int64(), 2);
  EXPECT_EQ(model.at("ready_replicas").as_int64(), 2);

  const auto list_body = call(server.port(), "GET", "/v1/fleet/replicas");
  EXPECT_EQ(list_body.status, 200);
  const json::object list = json::parse(list_body.body).as_object();
  EXPECT_EQ(list.at("object").as_string(), "list");
  const json::array& data = list.at("data").as_array();
  ASSERT_EQ(data.size(), 2u);
  std::vector<pid_t> pids;
  for (const auto& v : data) {
    const json::object& r = v.as_object();
    for (const char* key : {"id", "model", "provider", "region", "pool", "url", "state", "pid",
                            "running", "waiting", "kv_usage", "restarts"}) {
      EXPECT_TRUE(r.contains(key)) << key;
    }
    EXPECT_EQ(r.at("state").as_string(), "ready");
    EXPECT_EQ(r.at("restarts").as_int64(), 0);
    pids.push_back(static_cast<pid_t>(r.at("pid").as_int64()));
    EXPECT_TRUE(process_exists(pids.back()));
  }

  const auto missing = call(server.port(), "POST", "/v1/fleet/pools/nope/drain");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(json::parse(missing.body).as_object().contains("error"));
  EXPECT_EQ(call(server.port(), "POST", "/v1/fleet/pools/nope/undrain").status, 404);

  // Metrics, read back with the control plane's own parser.
  const auto samples = parse_prometheus_text(metrics.render_prometheus());
  ASSERT_TRUE(samples.ok());
  EXPECT_EQ(find_sample(*samples, "spillway:fleet_replicas", {{"state", "ready"}}), 2.0);
  EXPECT_EQ(find_sample(*samples, "spillway:fleet_pool_gpus_used", {{"pool", "oci-local"}}), 1.0);
  EXPECT_EQ(find_sample(*samples, "spillway:fleet_cost_per_hour"), 3.0);
  EXPECT_EQ(find_sample(*samples, "spillway:fleet_desired_replicas", {{"model", "stories"}}), 2.0);

  server.stop();
  cp.stop();
  for (pid_t pid : pids)
    EXPECT_FALSE(process_exists(pid)) << pid;
  for (const auto& r : cp.replicas())
    EXPECT_EQ(r.state, ReplicaState::kStopped);
  EXPECT_EQ(cp.fleet_status().cost_per_hour, 0.0);
}

TEST(ControlPlane, RestartsAKilledReplicaWithExponentialBackoff) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  LogCapture logs;
  ControlPlane cp(two_provider_fleet(1, 1), fast_options(), SteadyClock::instance());
  ASSERT_TRUE(cp.start().ok());
  ASSERT_TRUE(wait_until([&] { return in_state(cp, ReplicaState::kReady).size() == 1; }));
  const std::string id = cp.replicas()[0].id;

  std::vector<pid_t> killed;
  for (int round = 1; round <= 2; ++round) {
    const auto before = cp.replica_details();
    ASSERT_EQ(before.size(), 1u);
    const pid_t pid = before[0].pid;
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    killed.push_back(pid);
    ASSERT_TRUE(wait_until([&] {
      const auto now = cp.replica_details();
      return now.size() == 1 && now[0].view.state == ReplicaState::kReady &&
             now[0].restarts == round && now[0].pid != pid;
    })) << "round "
        << round;
    EXPECT_EQ(cp.replicas()[0].id, id);  // Restarted in place, not replaced.
  }
  // Two crashes in a row: 200 ms, then 400 ms.
  const auto crashes = logs.find({"restarting after backoff", id.c_str()});
  ASSERT_EQ(crashes.size(), 2u);
  EXPECT_NE(crashes[0].find("backoff_ms=200"), std::string::npos) << crashes[0];
  EXPECT_NE(crashes[1].find("backoff_ms=400"), std::string::npos) << crashes[1];
  EXPECT_NE(crashes[0].find("signal=9"), std::string::npos) << crashes[0];
  for (pid_t pid : killed)
    EXPECT_FALSE(process_exists(pid));
  const pid_t last = cp.replica_details()[0].pid;
  cp.stop();
  EXPECT_FALSE(process_exists(last));
}

TEST(ControlPlane, DrainingAPoolMovesReplicasAndUndrainAllowsPlacementAgain) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  ControlPlane cp(two_provider_fleet(2, 2), fast_options(), SteadyClock::instance());
  ASSERT_TRUE(cp.start().ok());
  net::Router router;
  ASSERT_TRUE(add_fleet_routes(router, cp).ok());
  net::HttpServer server(net::HttpServerOptions{}, std::move(router));
  ASSERT_TRUE(server.start().ok());
  auto all_ready_in = [&](const std::string& pool) {
    int ready = 0;
    for (const auto& r : cp.replicas()) {
      if (r.state == ReplicaState::kStopped) continue;
      if (r.pool != pool || r.state != ReplicaState::kReady) return false;
      ++ready;
    }
    return ready == 2;
  };
  ASSERT_TRUE(wait_until([&] { return in_state(cp, ReplicaState::kReady).size() == 2; }));

  // Outage drill on azure: both replicas end up in oci, azure holds nothing.
  auto r = call(server.port(), "POST", "/v1/fleet/pools/azure-local/drain");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(json::parse(r.body).at("drained").as_bool());
  for (const auto& v : cp.replicas()) {
    if (v.pool == "azure-local") {
      EXPECT_NE(v.state, ReplicaState::kReady);  // No new traffic.
    }
  }
  ASSERT_TRUE(wait_until([&] { return all_ready_in("oci-local"); }));
  auto status = cp.fleet_status();
  EXPECT_TRUE(status.pools[0].drained);
  EXPECT_EQ(status.pools[0].gpus_used, 0);
  EXPECT_EQ(status.pools[1].gpus_used, 2);

  // Undrain azure, drain oci: placement may use azure again, and does.
  r = call(server.port(), "POST", "/v1/fleet/pools/azure-local/undrain");
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(json::parse(r.body).at("drained").as_bool());
  ASSERT_TRUE(cp.drain_pool("oci-local").ok());
  ASSERT_TRUE(wait_until([&] { return all_ready_in("azure-local"); }));
  status = cp.fleet_status();
  EXPECT_FALSE(status.pools[0].drained);
  EXPECT_TRUE(status.pools[1].drained);
  EXPECT_EQ(cp.drain_pool("nope").code(), ErrorCode::kNotFound);
  server.stop();
  cp.stop();
}

TEST(ControlPlane, ScaleInDrainsTheReplicaBeforeTerminatingIt) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  LogCapture logs;
  ControlPlane cp(two_provider_fleet(1, 2), fast_options(), SteadyClock::instance());
  ASSERT_TRUE(cp.set_desired_replicas("stories", 2).ok());
  EXPECT_EQ(cp.set_desired_replicas("gpt", 2).code(), ErrorCode::kNotFound);
  ASSERT_TRUE(cp.start().ok());
  ASSERT_TRUE(wait_until([&] { return in_state(cp, ReplicaState::kReady).size() == 2; }));
  // Scale-in picks the more expensive capacity: the on-demand oci replica.
  ReplicaView victim;
  for (const auto& v : cp.replicas()) {
    if (v.pool == "oci-local") victim = v;
  }
  ASSERT_FALSE(victim.id.empty());

  // A long stream against the victim whose reader stalls after the first bytes.
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  bool release = false;
  std::string body;
  Status stream_status;
  std::thread reader([&] {
    auto client = client_for(port_of(victim.url));
    net::HttpClientRequest req;
    req.method = "POST";
    req.target = "/v1/completions";
    req.headers.set("Authorization", "Bearer " + cp.internal_api_key());
    req.body = R"({"model":"stories","prompt":"Once upon a time","max_tokens":300,"stream":true})";
    auto res = client.stream(
        req, [](int status, const net::HttpHeaders&) { return status == 200; },
        [&](std::string_view piece) {
          std::unique_lock lock(mu);
          body += piece;
          if (!started) {
            started = true;
            cv.notify_all();
            cv.wait_for(lock, testing::kWaitLimit, [&] { return release; });
          }
          return true;
        });
    std::lock_guard lock(mu);
    stream_status = res.status();
    started = true;
    cv.notify_all();
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, testing::kWaitLimit, [&] { return started; }));
  }
  ASSERT_TRUE(cp.set_desired_replicas("stories", 1).ok());
  ASSERT_TRUE(wait_until([&] {
    for (const auto& v : cp.replicas()) {
      if (v.id == victim.id) return v.state != ReplicaState::kReady;
    }
    return false;
  }));
  {
    std::lock_guard lock(mu);
    release = true;
    cv.notify_all();
  }
  reader.join();
  EXPECT_TRUE(stream_status.ok()) << stream_status.error().to_string();
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(body.find("\"error\""), std::string::npos);

  ASSERT_TRUE(wait_until([&] {
    for (const auto& v : cp.replicas()) {
      if (v.id == victim.id) return v.state == ReplicaState::kStopped;
    }
    return false;
  }));
  // Drained, then SIGTERM, then a clean exit; the other replica keeps serving.
  const long drained = logs.index_of({"draining replica", victim.id.c_str(), "scale-in"});
  const long terminated = logs.index_of({"replica drained; terminating", victim.id.c_str()});
  const long stopped = logs.index_of({"replica stopped", victim.id.c_str()});
  ASSERT_GE(drained, 0);
  EXPECT_GT(terminated, drained);
  EXPECT_GT(stopped, terminated);
  EXPECT_FALSE(logs.find({"replica stopped", victim.id.c_str(), "exit_code=0 signal=0"}).empty());
  const auto ready = in_state(cp, ReplicaState::kReady);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].pool, "azure-local");
  EXPECT_EQ(cp.fleet_status().models[0].desired, 1);
  cp.stop();
}

TEST(ControlPlane, CircuitBreakerEjectsAfterReportedFailuresAndHealthChecksReadmit) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  ControlOptions o = fast_options();
  o.failures_to_eject = 3;
  o.health_interval = std::chrono::seconds(1);
  ControlPlane cp(two_provider_fleet(1, 1), o, SteadyClock::instance());
  ASSERT_TRUE(cp.start().ok());
  ASSERT_TRUE(wait_until([&] { return in_state(cp, ReplicaState::kReady).size() == 1; }));
  const std::string id = cp.replicas()[0].id;
  cp.report_failure(id);
  cp.report_failure(id);
  cp.report_success(id);  // Not consecutive any more.
  cp.report_failure(id);
  cp.report_failure(id);
  EXPECT_EQ(cp.replicas()[0].state, ReplicaState::kReady);
  cp.report_failure(id);
  EXPECT_EQ(cp.replicas()[0].state, ReplicaState::kUnhealthy);
  cp.report_failure("no-such-replica");  // Ignored.
  ASSERT_TRUE(wait_until([&] { return cp.replicas()[0].state == ReplicaState::kReady; }));
  EXPECT_EQ(cp.replica_details()[0].restarts, 0);  // Re-admitted, not restarted.
  cp.stop();
}

TEST(ControlPlane, StartRejectsBadOptions) {
  ControlOptions o = fast_options();
  o.spillway_bin = "/nonexistent/spillway";
  ControlPlane a(two_provider_fleet(1, 1), o, SteadyClock::instance());
  EXPECT_EQ(a.start().code(), ErrorCode::kNotFound);
  o = fast_options();
  o.model_paths["gpt"] = "/x.gguf";
  ControlPlane b(two_provider_fleet(1, 1), o, SteadyClock::instance());
  EXPECT_EQ(b.start().code(), ErrorCode::kInvalidArgument);
  o = fast_options();
  o.health_timeout = std::chrono::milliseconds(0);
  ControlPlane c(two_provider_fleet(1, 1), o, SteadyClock::instance());
  EXPECT_EQ(c.start().code(), ErrorCode::kInvalidArgument);
}

// Run as a separate process by the next test (skipped otherwise): a control plane that writes
// its replica's pid to the file named by SPILLWAY_CONTROL_CHILD and waits to be killed.
TEST(ControlPlaneChild, RunUntilKilled) {
  const char* pid_file = std::getenv("SPILLWAY_CONTROL_CHILD");
  if (pid_file == nullptr) GTEST_SKIP() << "helper for ReplicasDieWithAKilledControlPlane";
  ControlPlane cp(two_provider_fleet(1, 1), fast_options(), SteadyClock::instance());
  ASSERT_TRUE(cp.start().ok());
  ASSERT_TRUE(wait_until([&] { return in_state(cp, ReplicaState::kReady).size() == 1; }));
  {
    std::ofstream out(std::string(pid_file) + ".tmp");
    out << cp.replica_details()[0].pid << "\n";
  }
  std::rename((std::string(pid_file) + ".tmp").c_str(), pid_file);
  std::this_thread::sleep_for(testing::kWaitLimit);  // Killed long before this ends.
}

TEST(ControlPlane, ReplicasDieWithAKilledControlPlane) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  const auto dir = spillway::testing::temp_dir("control_sigkill");
  const std::string pid_file = (dir / "replica.pid").string();
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  // Everything the child needs is built before fork (only exec runs after it).
  std::vector<std::string> env_strings = {"SPILLWAY_CONTROL_CHILD=" + pid_file};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).rfind("SPILLWAY_CONTROL_CHILD=", 0) != 0) env_strings.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string filter = "--gtest_filter=ControlPlaneChild.RunUntilKilled";
  char* argv[] = {const_cast<char*>(self.c_str()), filter.data(), nullptr};
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execve(argv[0], argv, envp.data());
    ::_exit(127);
  }
  pid_t replica = 0;
  const bool got_pid = wait_until([&] {
    std::ifstream in(pid_file);
    return static_cast<bool>(in >> replica);
  });
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(got_pid);
  ASSERT_GT(replica, 0);
  EXPECT_TRUE(wait_until([&] { return !process_exists(replica); }));
}

}  // namespace
}  // namespace spillway::control
