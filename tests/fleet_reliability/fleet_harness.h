// The whole fleet in one test process, as `spillway up` assembles it: a real control plane
// that launches real `spillway serve` replicas (the built binary, stories260K, one thread
// each) in two local pools standing in for two providers (azure: reserved; oci: on-demand),
// the real gateway and the fleet API on one real HTTP port, and blocking HTTP clients to drive
// it from test threads.
//
// Every wait is bounded (kWaitLimit) and polls state; reaching a bound is a failure. Client
// timeouts are generous so that a hang shows up as a kDeadlineExceeded transport error, which
// the tests assert never happens.
//
// Thread-safety: call(), stream() and the accessors may be used from any thread at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"

#include "net/http_headers.h"
#include "net/http_server.h"

#include "control/control_plane.h"
#include "gateway/gateway.h"
#include "gateway/replica_source.h"

namespace spillway::reliability {

// Bound of every wait in these tests.
inline constexpr std::chrono::seconds kWaitLimit{90};
// The test tenant's key (its salted hash is in the fleet file).
inline constexpr std::string_view kTenantKey = "sk-spw-ReliabilityTestKey00000000000001";
inline constexpr std::string_view kModel = "stories";

[[nodiscard]] std::string spillway_bin();
[[nodiscard]] std::string model_path();

// Polls `done` every 20 ms until it holds (true) or kWaitLimit passes (false).
[[nodiscard]] bool wait_until(const std::function<bool()>& done);
// Alive and not a zombie.
[[nodiscard]] bool process_exists(pid_t pid);

// Gateway options for the tests: every routing decision of a test is kept.
[[nodiscard]] inline gateway::GatewayOptions test_gateway_options() {
  gateway::GatewayOptions o;
  o.decisions_kept = 100'000;
  return o;
}

struct FleetConfig {
  std::int64_t replicas = 2;  // min = max replicas of the model (placement spreads them).
  std::int64_t tokens_per_minute = 0;
  std::vector<std::string> serve_args;              // Extra `spillway serve` arguments per replica.
  std::chrono::milliseconds health_timeout{2'000};  // The control plane's, per HTTP call.
  gateway::GatewayOptions gateway = test_gateway_options();  // internal_api_key is set.
};

// The fleet file for `config` (two providers, one model, tenant "demo" with kTenantKey).
[[nodiscard]] std::string fleet_toml(const FleetConfig& config);

struct Reply {
  Status transport;  // The client's own failure (never expected).
  int status = 0;
  net::HttpHeaders headers;
  std::string body;
};

struct StreamReply {
  Status transport;
  int status = 0;
  net::HttpHeaders headers;
  std::string body;                 // Non-200 answers only.
  std::vector<std::string> events;  // The data payloads, in order ("[DONE]" included).
  std::string rest;                 // Bytes after the last complete event (should be empty).
};

// Called after each event with the events so far; return false to hang up.
using EventHook = std::function<bool(const std::vector<std::string>& events)>;

class Fleet {
 public:
  // Starts control plane, gateway and server and waits until config.replicas replicas are
  // ready. Records a test failure and returns nullptr when that fails.
  [[nodiscard]] static std::unique_ptr<Fleet> start(FleetConfig config);
  ~Fleet();  // Server, then gateway, then control plane (which stops the replicas).
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  [[nodiscard]] control::ControlPlane& control() { return *control_; }
  [[nodiscard]] gateway::Gateway& gateway() { return *gateway_; }
  [[nodiscard]] MetricsRegistry& metrics() { return metrics_; }
  [[nodiscard]] int port() const { return server_->port(); }

  [[nodiscard]] Reply call(const std::string& method, const std::string& target,
                           const std::string& body = "", std::string_view key = kTenantKey,
                           const net::HttpHeaders& headers = {}) const;
  [[nodiscard]] StreamReply stream(const std::string& target, const std::string& body,
                                   const EventHook& hook = {},
                                   const net::HttpHeaders& headers = {}) const;

  // Ready replicas now.
  [[nodiscard]] std::vector<control::ReplicaInfo> ready_replicas() const;
  // A replica's own /metrics sample (e.g. "spillway:generation_tokens_total"); nullopt when
  // it cannot be read.
  [[nodiscard]] std::optional<double> replica_metric(const std::string& url,
                                                     std::string_view name) const;

 private:
  class Source final : public gateway::ReplicaSource {
   public:
    explicit Source(control::ControlPlane& control) : control_(control) {}
    [[nodiscard]] gateway::ReplicaSnapshot replicas() const override {
      return control_.replica_snapshot();
    }
    void report_failure(const std::string& replica_id) override {
      control_.report_failure(replica_id);
    }
    void report_success(const std::string& replica_id) override {
      control_.report_success(replica_id);
    }

   private:
    control::ControlPlane& control_;
  };

  Fleet() = default;

  MetricsRegistry metrics_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<gateway::Gateway> gateway_;
  std::unique_ptr<net::HttpServer> server_;
};

// Resident memory, threads and open descriptors of this process.
struct ProcessUsage {
  std::int64_t rss_kib = 0;
  std::int64_t threads = 0;
  std::int64_t fds = 0;
  std::int64_t sockets = 0;  // Of the fds.
};
[[nodiscard]] ProcessUsage process_usage();

}  // namespace spillway::reliability
