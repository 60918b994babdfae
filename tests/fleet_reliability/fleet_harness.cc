#include "fleet_harness.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/random.h"

#include "net/http_client.h"

#include "control/fleet_api.h"
#include "control/prometheus_text.h"
#include "fleet/api_key.h"
#include "fleet/fleet_spec.h"

#include "test_support.h"

namespace spillway::reliability {

std::string spillway_bin() {
  return SPILLWAY_BIN;
}

std::string model_path() {
  return spillway::testing::shared_path("models/stories260K.gguf");
}

bool wait_until(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

bool process_exists(pid_t pid) {
  if (pid <= 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

std::string fleet_toml(const FleetConfig& config) {
  std::string out;
  for (const auto& [provider, capacity] :
       {std::pair{"azure", "reserved"}, std::pair{"oci", "on-demand"}}) {
    out += fmt::format(R"(
[[providers]]
name = "{0}"
  [[providers.regions]]
  name = "local"
  rtt_ms = 0.2
    [[providers.regions.pools]]
    name = "{0}-local"
    gpu = "cpu-local"
    gpus = 2
    gpus_per_node = 1
    cost_per_gpu_hour = 0.0
    capacity = "{1}"
    workloads = ["inference"]
      [providers.regions.pools.local]
      threads = 1
      kv_cache_mib = 4
)",
                       provider, capacity);
  }
  SeededRandom random(11);
  out += fmt::format(R"(
[[models]]
name = "{0}"
path = "{1}"
min_replicas = {2}
max_replicas = {2}
context_tokens = 512

[[tenants]]
name = "demo"
api_keys = ["{3}"]
priority = "interactive"
tokens_per_minute = {4}

[gateway]
routing = "spillway"
)",
                     kModel, model_path(), config.replicas, fleet::hash_api_key(kTenantKey, random),
                     config.tokens_per_minute);
  return out;
}

std::unique_ptr<Fleet> Fleet::start(FleetConfig config) {
  auto spec = fleet::parse_fleet_spec(fleet_toml(config), "fleet.toml");
  if (!spec.ok()) {
    ADD_FAILURE() << spec.error().to_string();
    return nullptr;
  }
  std::unique_ptr<Fleet> f(new Fleet());
  control::ControlOptions o;
  o.reconcile_interval = std::chrono::milliseconds(50);
  o.health_interval = std::chrono::milliseconds(100);
  o.health_timeout = config.health_timeout;
  o.restart_backoff_initial = std::chrono::milliseconds(200);
  o.restart_backoff_max = std::chrono::seconds(2);
  o.drain_timeout = std::chrono::seconds(30);
  o.terminate_grace = std::chrono::seconds(10);
  o.spillway_bin = spillway_bin();
  o.extra_serve_args = config.serve_args;
  f->control_ =
      std::make_unique<control::ControlPlane>(*spec, o, SteadyClock::instance(), &f->metrics_);
  if (Status s = f->control_->start(); !s.ok()) {
    ADD_FAILURE() << s.error().to_string();
    return nullptr;
  }
  f->source_ = std::make_unique<Source>(*f->control_);
  config.gateway.internal_api_key = f->control_->internal_api_key();
  auto gw = gateway::Gateway::create(*spec, config.gateway, *f->source_, f->metrics_,
                                     SteadyClock::instance());
  if (!gw.ok()) {
    ADD_FAILURE() << gw.error().to_string();
    return nullptr;
  }
  f->gateway_ = std::move(gw).value();
  net::Router router;
  if (Status s = f->gateway_->add_routes(router); !s.ok()) {
    ADD_FAILURE() << s.error().to_string();
    return nullptr;
  }
  if (Status s = control::add_fleet_routes(router, *f->control_); !s.ok()) {
    ADD_FAILURE() << s.error().to_string();
    return nullptr;
  }
  net::HttpServerOptions http;
  http.port = 0;
  http.io_threads = 2;
  http.metrics = &f->metrics_;
  f->server_ = std::make_unique<net::HttpServer>(http, std::move(router));
  if (Status s = f->server_->start(); !s.ok()) {
    ADD_FAILURE() << s.error().to_string();
    return nullptr;
  }
  control::ControlPlane& cp = *f->control_;
  if (!wait_until([&] { return cp.fleet_status().models.at(0).ready == config.replicas; })) {
    ADD_FAILURE() << "replicas not ready within " << kWaitLimit.count() << " s";
    return nullptr;
  }
  return f;
}

Fleet::~Fleet() {
  if (server_) server_->stop();
  gateway_.reset();
  if (control_) control_->stop();
}

namespace {

net::HttpClient client_for(int port) {
  net::HttpClientOptions o;
  o.port = port;
  o.connect_timeout = std::chrono::milliseconds(10'000);
  o.io_timeout = std::chrono::milliseconds(60'000);
  o.request_timeout = std::chrono::milliseconds(120'000);
  return net::HttpClient(o);
}

net::HttpClientRequest make_request(const std::string& method, const std::string& target,
                                    const std::string& body, std::string_view key,
                                    const net::HttpHeaders& headers) {
  net::HttpClientRequest r;
  r.method = method;
  r.target = target;
  r.body = body;
  r.headers = headers;
  if (!key.empty()) r.headers.set("Authorization", fmt::format("Bearer {}", key));
  if (!body.empty()) r.headers.set("Content-Type", "application/json");
  return r;
}

}  // namespace

Reply Fleet::call(const std::string& method, const std::string& target, const std::string& body,
                  std::string_view key, const net::HttpHeaders& headers) const {
  net::HttpClient client = client_for(port());
  auto r = client.request(make_request(method, target, body, key, headers));
  Reply out;
  if (!r.ok()) {
    out.transport = r.status();
    return out;
  }
  out.status = r->status;
  out.headers = r->headers;
  out.body = std::move(r->body);
  return out;
}

StreamReply Fleet::stream(const std::string& target, const std::string& body, const EventHook& hook,
                          const net::HttpHeaders& headers) const {
  net::HttpClient client = client_for(port());
  StreamReply out;
  auto r = client.stream(
      make_request("POST", target, body, kTenantKey, headers),
      [&](int status, const net::HttpHeaders& h) {
        out.status = status;
        out.headers = h;
        return true;
      },
      [&](std::string_view piece) {
        if (out.status != 200) {
          out.body.append(piece);
          return true;
        }
        out.rest.append(piece);
        std::size_t end;
        while ((end = out.rest.find("\n\n")) != std::string::npos) {
          std::string event = out.rest.substr(0, end);
          out.rest.erase(0, end + 2);
          if (event.starts_with("data: ")) event.erase(0, 6);
          out.events.push_back(std::move(event));
          if (hook && !hook(out.events)) return false;
        }
        return true;
      });
  if (!r.ok()) out.transport = r.status();
  return out;
}

std::vector<control::ReplicaInfo> Fleet::ready_replicas() const {
  std::vector<control::ReplicaInfo> out;
  for (auto& r : control_->replica_details()) {
    if (r.view.state == fleet::ReplicaState::kReady) out.push_back(r);
  }
  return out;
}

std::optional<double> Fleet::replica_metric(const std::string& url, std::string_view name) const {
  const auto colon = url.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  net::HttpClient client = client_for(std::atoi(url.c_str() + colon + 1));
  net::HttpClientRequest r;
  r.target = "/metrics";
  r.headers.set("Authorization", "Bearer " + control_->internal_api_key());
  auto reply = client.request(r);
  if (!reply.ok() || reply->status != 200) return std::nullopt;
  auto samples = control::parse_prometheus_text(reply->body);
  if (!samples.ok()) return std::nullopt;
  return control::find_sample(*samples, name);
}

ProcessUsage process_usage() {
  ProcessUsage u;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) u.rss_kib = std::atoll(line.c_str() + 6);
    if (line.starts_with("Threads:")) u.threads = std::atoll(line.c_str() + 8);
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++u.fds;
    std::error_code link_ec;
    const auto target = std::filesystem::read_symlink(it->path(), link_ec);
    if (!link_ec && target.string().starts_with("socket:")) ++u.sockets;
  }
  return u;
}

}  // namespace spillway::reliability
