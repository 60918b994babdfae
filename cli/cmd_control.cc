// spillway control: the control plane alone — local replicas of a fleet file, health,
// restarts, drain, placement, autoscaling — serving the fleet API for standalone gateways
// (`spillway gateway --control URL`).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/clock.h"
#include "core/metrics.h"

#include "net/http_server.h"

#include "control/admin_auth.h"
#include "control/control_plane.h"
#include "control/fleet_api.h"
#include "fleet/fleet_spec.h"
#include "fleet/secure_random.h"

#include "cli/commands.h"
#include "cli/fleet_models.h"
#include "cli/fleet_runtime.h"

namespace spillway::cli {
namespace {

struct ControlFlags {
  std::string config;
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8081;
  std::string admin_key_file;
  std::string internal_key_file;
  int ready_timeout_s = 120;
};

int run_control(const ControlFlags& f) {
  auto fail = [](const Error& e) { return command_failed("control", e); };
  const sigset_t signals = block_stop_signals();

  auto spec = fleet::load_fleet_spec(f.config);
  if (!spec.ok()) return fail(spec.error());
  fleet::SecureRandom random;
  auto admin_key = admin_key_from(f.admin_key_file);
  if (!admin_key.ok()) return fail(admin_key.error());
  const net::AdminAuth admin = control::make_admin_auth(*admin_key, random);
  control::ControlOptions options;
  auto internal_key = internal_key_from(f.internal_key_file, /*create=*/true, random);
  if (!internal_key.ok()) return fail(internal_key.error());
  options.internal_api_key = std::move(*internal_key);
  if (!f.model.empty()) {
    for (const auto& m : spec->models)
      options.model_paths[m.name] = f.model;
  }

  if (Status s = check_local_pool_models(*spec, options.model_paths); !s.ok()) {
    return fail(s.error());
  }
  MetricsRegistry metrics;
  SteadyClock clock;
  control::ControlPlane control(*spec, options, clock, &metrics);
  if (Status s = control.start(); !s.ok()) return fail(s.error());
  net::Router router;
  Status routes = control::add_fleet_routes(router, control, admin);
  if (routes.ok()) {
    routes = router.add("GET", "/health", [](net::HttpRequest, net::ResponseWriter w) {
      w.respond(net::HttpResponse::json(200, R"({"status":"ok"})"));
    });
  }
  if (routes.ok()) {
    routes = router.add("GET", "/metrics", [&metrics](net::HttpRequest, net::ResponseWriter w) {
      w.respond(net::HttpResponse::with_body(200, metrics.render_prometheus(),
                                             "text/plain; version=0.0.4; charset=utf-8"));
    });
  }
  if (!routes.ok()) return fail(routes.error());
  auto started = start_http_server(f.host, f.port, metrics, std::move(router));
  if (!started.ok()) return fail(started.error());
  net::HttpServer& server = **started;

  if (Status s = wait_for_ready_replicas(control, signals, std::chrono::seconds(f.ready_timeout_s));
      !s.ok()) {
    server.stop();
    control.stop();
    return s.error().code() == ErrorCode::kCancelled ? 0 : fail(s.error());
  }
  const std::string base = fmt::format("http://{}:{}", f.host, server.port());
  std::printf("Spillway control plane is up: %s   Fleet API: %s/v1/fleet\n", base.c_str(),
              base.c_str());
  for (const auto& m : spec->models)
    std::printf("Model: %s\n", m.name.c_str());
  std::printf("Press Ctrl-C to stop.\n");
  std::fflush(stdout);

  wait_for_stop_signal(signals);
  stop_server(server);
  control.stop();
  return 0;
}

}  // namespace

Command add_control_command(CLI::App& root) {
  auto f = std::make_shared<ControlFlags>();
  CLI::App* app = root.add_subcommand(
      "control", "Run the control plane alone: local replicas of a fleet and the fleet API");
  app->add_option("--config", f->config, "Fleet file (TOML; see docs/FLEET.md)")
      ->required()
      ->check(CLI::ExistingFile);
  app->add_option("--model", f->model, "GGUF file to serve for every model of the fleet file")
      ->check(CLI::ExistingFile);
  add_listen_options(*app, f->host, f->port, "the fleet API");
  app->add_option("--admin-key-file", f->admin_key_file,
                  "File holding the admin key drain/undrain require (default: SPILLWAY_ADMIN_KEY; "
                  "without either, only local clients may drain)");
  app->add_option("--internal-key-file", f->internal_key_file,
                  "File holding the key replicas accept, shared with `spillway gateway`; created "
                  "(mode 0600) when absent (default: SPILLWAY_INTERNAL_KEY)");
  app->add_option("--ready-timeout", f->ready_timeout_s,
                  "Seconds to wait for the first ready replica of every model")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  return {app, [f] { return run_control(*f); }};
}

}  // namespace spillway::cli
