// spillway gateway: the gateway alone — one OpenAI endpoint (tenants, quotas, routing,
// failover, status page) in front of a control plane's replicas (--control URL) or of fixed
// `spillway serve` instances (--upstream URL).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/clock.h"
#include "core/metrics.h"

#include "net/http_server.h"

#include "control/admin_auth.h"
#include "fleet/fleet_spec.h"
#include "fleet/secure_random.h"
#include "gateway/gateway.h"
#include "gateway/remote_replica_source.h"
#include "gateway/static_replica_source.h"

#include "cli/commands.h"
#include "cli/fleet_runtime.h"
#include "cli/secrets.h"

namespace spillway::cli {
namespace {

struct GatewayFlags {
  std::string config;
  std::string control_url;
  std::vector<std::string> upstreams;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string internal_key_file;
  std::string upstream_key_file;
  std::string admin_key_file;
  int poll_interval_ms = 1000;
  int max_staleness_ms = 5000;
  // A standalone gateway polls (adaptively, net/poll_window.h) by default: it saves the two
  // wake-ups of each fast request and closes in front of slow upstreams. `up` does not: its
  // replicas share the cores.
  int busy_poll_us = 50;
};

// "[MODEL=]URL" → a static upstream; without MODEL the fleet must have exactly one model.
Result<std::vector<gateway::StaticUpstream>> parse_upstreams(const std::vector<std::string>& flags,
                                                             const fleet::FleetSpec& spec) {
  std::vector<gateway::StaticUpstream> out;
  for (const std::string& flag : flags) {
    gateway::StaticUpstream u;
    const std::size_t eq = flag.find('=');
    if (eq == std::string::npos) {
      if (spec.models.size() != 1) {
        return make_error(ErrorCode::kInvalidArgument,
                          "--upstream {}: the fleet has {} models; write MODEL=URL", flag,
                          spec.models.size());
      }
      u.model = spec.models.front().name;
      u.url = flag;
    } else {
      u.model = flag.substr(0, eq);
      u.url = flag.substr(eq + 1);
      if (spec.find_model(u.model) == nullptr) {
        return make_error(ErrorCode::kInvalidArgument,
                          "--upstream {}: model '{}' is not in the fleet file", flag, u.model);
      }
    }
    u.id = fmt::format("upstream-{}", out.size() + 1);
    u.provider = "upstream";
    u.region = "upstream";
    u.pool = "upstream";
    out.push_back(std::move(u));
  }
  return out;
}

int run_gateway(const GatewayFlags& f) {
  auto fail = [](const Error& e) { return command_failed("gateway", e); };
  const sigset_t signals = block_stop_signals();

  auto spec = fleet::load_fleet_spec(f.config);
  if (!spec.ok()) return fail(spec.error());
  fleet::SecureRandom random;
  auto admin_key = admin_key_from(f.admin_key_file);
  if (!admin_key.ok()) return fail(admin_key.error());
  const net::AdminAuth admin = control::make_admin_auth(*admin_key, random);

  SteadyClock clock;
  gateway::GatewayOptions options;
  std::unique_ptr<gateway::ReplicaSource> source;
  gateway::RemoteReplicaSource* remote = nullptr;
  if (!f.control_url.empty()) {
    auto key = internal_key_from(f.internal_key_file, /*create=*/false, random);
    if (!key.ok()) return fail(key.error());
    options.internal_api_key = std::move(*key);
    gateway::RemoteReplicaSourceOptions o;
    o.control_url = f.control_url;
    o.poll_interval = std::chrono::milliseconds(f.poll_interval_ms);
    o.max_staleness = std::chrono::milliseconds(f.max_staleness_ms);
    auto created = gateway::RemoteReplicaSource::create(std::move(o), clock);
    if (!created.ok()) return fail(created.error().with_context("--control"));
    remote = created->get();
    source = std::move(*created);
  } else {
    auto key = single_key_from(f.upstream_key_file, kUpstreamKeyEnv);
    if (!key.ok()) return fail(key.error());
    options.internal_api_key = std::move(*key);
    auto upstreams = parse_upstreams(f.upstreams, *spec);
    if (!upstreams.ok()) return fail(upstreams.error());
    gateway::StaticReplicaSourceOptions o;
    o.poll_interval = std::chrono::milliseconds(f.poll_interval_ms);
    auto created = gateway::StaticReplicaSource::create(std::move(*upstreams), o, clock);
    if (!created.ok()) return fail(created.error().with_context("--upstream"));
    source = std::move(*created);
  }

  MetricsRegistry metrics;
  auto gw = gateway::Gateway::create(*spec, options, *source, metrics, clock);
  if (!gw.ok()) return fail(gw.error());
  net::Router router;
  if (Status s = (*gw)->add_routes(router, admin); !s.ok()) return fail(s.error());
  if (remote != nullptr) {
    if (Status s = remote->add_fleet_routes(router); !s.ok()) return fail(s.error());
  }
  auto started = start_http_server(f.host, f.port, metrics, std::move(router),
                                   std::chrono::microseconds(f.busy_poll_us));
  if (!started.ok()) return fail(started.error());
  net::HttpServer& server = **started;

  const std::string base = fmt::format("http://{}:{}", f.host, server.port());
  std::printf("Spillway gateway is up: %s/v1 (OpenAI API)\n", base.c_str());
  std::printf("Status page: %s/   Replicas from: %s\n", base.c_str(),
              remote != nullptr ? f.control_url.c_str() : "--upstream");
  std::printf("Press Ctrl-C to stop.\n");
  std::fflush(stdout);

  wait_for_stop_signal(signals);
  stop_server(server);
  gw->reset();  // Before the source it reads.
  return 0;
}

}  // namespace

Command add_gateway_command(CLI::App& root) {
  auto f = std::make_shared<GatewayFlags>();
  CLI::App* app = root.add_subcommand(
      "gateway", "Run the gateway alone, in front of a control plane or fixed replicas");
  app->add_option("--config", f->config,
                  "Fleet file (TOML; see docs/FLEET.md): tenants, models, routing")
      ->required()
      ->check(CLI::ExistingFile);
  auto* control = app->add_option("--control", f->control_url,
                                  "Base URL of `spillway control` (http://HOST:PORT): replicas "
                                  "from its fleet API");
  auto* upstream = app->add_option("--upstream", f->upstreams,
                                   "[MODEL=]URL of a `spillway serve` replica (repeatable)");
  control->excludes(upstream);
  upstream->excludes(control);
  add_listen_options(*app, f->host, f->port, "the gateway");
  app->add_option("--internal-key-file", f->internal_key_file,
                  "With --control: file holding the replicas' key (the one `spillway control "
                  "--internal-key-file` wrote; default: SPILLWAY_INTERNAL_KEY)");
  app->add_option("--upstream-key-file", f->upstream_key_file,
                  "With --upstream: file holding the key the upstreams accept (default: "
                  "SPILLWAY_UPSTREAM_KEY; none: no Authorization header)");
  app->add_option("--admin-key-file", f->admin_key_file,
                  "File holding the admin key /v1/gateway/* accept from remote clients (default: "
                  "SPILLWAY_ADMIN_KEY)");
  app->add_option("--poll-interval-ms", f->poll_interval_ms,
                  "Between two polls of the control plane or probes of the upstreams")
      ->capture_default_str()
      ->check(CLI::Range(10, 600'000));
  app->add_option("--max-staleness-ms", f->max_staleness_ms,
                  "With --control: replicas count as unhealthy when no poll succeeded this long")
      ->capture_default_str()
      ->check(CLI::Range(10, 3'600'000));
  app->add_option("--busy-poll-us", f->busy_poll_us,
                  "The most an idle event loop polls before it sleeps, adapting to the gaps it "
                  "sees: cuts the wake-up cost from each fast request's latency at some CPU; 0 "
                  "sleeps at once, as beside replicas on the same cores (docs/FLEET.md)")
      ->capture_default_str()
      ->check(CLI::Range(0, static_cast<int>(net::HttpServerOptions::kMaxBusyPoll.count())));
  app->callback([app] {
    if (app->count("--control") == 0 && app->count("--upstream") == 0) {
      throw CLI::RequiredError("--control URL or --upstream URL");
    }
  });
  return {app, [f] { return run_gateway(*f); }};
}

}  // namespace spillway::cli
