// spillway up: the whole platform on one machine — control plane, gateway and local replicas
// in two pools standing in for two clouds (azure and oci), behind one OpenAI endpoint.
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

#include "engine/ggml_type.h"
#include "engine/mkmodel.h"
#include "net/http_server.h"

#include "control/admin_auth.h"
#include "control/control_plane.h"
#include "control/fleet_api.h"
#include "fleet/api_key.h"
#include "fleet/fleet_spec.h"
#include "fleet/secure_random.h"
#include "gateway/gateway.h"
#include "gateway/replica_source.h"

#include "cli/commands.h"
#include "cli/fleet_models.h"
#include "cli/fleet_runtime.h"

namespace spillway::cli {
namespace {

struct UpFlags {
  std::string config;
  std::string model;
  std::string api_key;
  std::string admin_key_file;
  std::string host = "127.0.0.1";
  int port = 8080;
  int ready_timeout_s = 120;
};

// The fleet `spillway up` runs without --config: two providers with one pool each on this
// machine, one replica of the model in each, and a demo tenant.
std::string default_fleet(const std::string& model_name, const std::string& key_hash) {
  std::string pools;
  for (const auto& [provider, capacity] :
       {std::pair{"azure", "reserved"}, std::pair{"oci", "on-demand"}}) {
    pools += fmt::format(R"(
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
      kv_cache_mib = 64
      port_base = 0
)",
                         provider, capacity);
  }
  return pools + fmt::format(R"(
[[models]]
name = "{0}"
path = "model.gguf"
gpus_per_replica = 1
min_replicas = 2
max_replicas = 4
context_tokens = 512
slo_ttft_ms = 2000
slo_tpot_ms = 200

[[tenants]]
name = "demo"
api_keys = ["{1}"]
priority = "interactive"
tokens_per_minute = 200000
requests_per_minute = 1200
models = ["*"]
cache = "private"

[gateway]
routing = "spillway"
)",
                             model_name, key_hash);
}

// The smoke-test model: random weights, tiny shape, built-in byte vocabulary. Written once to
// the user's cache directory.
Result<std::string> smoke_model_path() {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path dir = cache && *cache ? std::filesystem::path(cache)
                              : home && *home ? std::filesystem::path(home) / ".cache"
                                              : std::filesystem::temp_directory_path();
  dir /= "spillway";
  const std::filesystem::path path = dir / "smoke-tiny-q8_0.gguf";
  if (std::filesystem::exists(path)) return path.string();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return make_error(ErrorCode::kUnavailable, "cannot create {}: {}", dir.string(), ec.message());
  engine::MkModelOptions o;
  SPW_ASSIGN_OR_RETURN(o.shape, engine::named_model_shape("tiny"));
  o.type = engine::GgmlType::kQ8_0;
  o.seed = 1;
  const std::filesystem::path tmp = dir / "smoke-tiny-q8_0.gguf.partial";
  o.out_path = tmp.string();
  SPW_TRY(engine::write_random_model(o));
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return make_error(ErrorCode::kUnavailable, "cannot write {}: {}", path.string(), ec.message());
  log_info("wrote the smoke-test model (random weights: its text is meaningless)",
           {kv("path", path.string())});
  return path.string();
}

int run_up(UpFlags& f) {
  auto fail = [](const Error& e) { return command_failed("up", e); };
  // Every thread started from here on inherits this mask; SIGINT/SIGTERM reach the sigwait.
  const sigset_t signals = block_stop_signals();

  fleet::SecureRandom random;
  std::string api_key = f.api_key;
  // The operator's key for drain/undrain and /v1/gateway/*: given, or generated and printed.
  auto admin_key = admin_key_from(f.admin_key_file);
  if (!admin_key.ok()) return fail(admin_key.error());
  const bool admin_key_generated = admin_key->empty();
  if (admin_key_generated) *admin_key = fleet::generate_api_key(random);
  const net::AdminAuth admin = control::make_admin_auth(*admin_key, random);
  control::ControlOptions control_options;
  Result<fleet::FleetSpec> spec = make_error(ErrorCode::kInternal, "unset");
  if (!f.config.empty()) {
    spec = fleet::load_fleet_spec(f.config);
    if (!spec.ok()) return fail(spec.error());
    if (!f.model.empty()) {
      for (const auto& m : spec->models)
        control_options.model_paths[m.name] = f.model;
    }
  } else {
    std::string model = f.model;
    if (model.empty()) {
      auto smoke = smoke_model_path();
      if (!smoke.ok()) return fail(smoke.error());
      model = *smoke;
    }
    const std::string name =
        f.model.empty() ? "smoke" : std::filesystem::path(model).stem().string();
    if (api_key.empty()) api_key = fleet::generate_api_key(random);
    spec = fleet::parse_fleet_spec(default_fleet(name, fleet::hash_api_key(api_key, random)),
                                   "(built-in fleet)");
    if (!spec.ok()) return fail(spec.error());
    control_options.model_paths[name] = model;
  }

  if (Status s = check_local_pool_models(*spec, control_options.model_paths); !s.ok()) {
    return fail(s.error());
  }
  MetricsRegistry metrics;
  SteadyClock clock;
  control::ControlPlane control(*spec, control_options, clock, &metrics);
  if (Status s = control.start(); !s.ok()) return fail(s.error());
  ControlPlaneSource source(control);
  gateway::GatewayOptions gateway_options;
  gateway_options.internal_api_key = control.internal_api_key();
  auto gw = gateway::Gateway::create(*spec, gateway_options, source, metrics, clock);
  if (!gw.ok()) return fail(gw.error());
  if (!f.api_key.empty() && !f.config.empty()) {
    // --api-key with a fleet file: the key also works for the file's first tenant.
    if (Status s =
            (*gw)->add_api_key(spec->tenants.front().name, fleet::hash_api_key(f.api_key, random));
        !s.ok()) {
      return fail(s.error());
    }
  }
  net::Router router;
  if (Status s = (*gw)->add_routes(router, admin); !s.ok()) return fail(s.error());
  if (Status s = control::add_fleet_routes(router, control, admin); !s.ok()) {
    return fail(s.error());
  }
  auto started = start_http_server(f.host, f.port, metrics, std::move(router));
  if (!started.ok()) return fail(started.error());
  net::HttpServer& server = **started;

  // Wait (bounded) until every model has a ready replica, so the first request succeeds.
  if (Status s = wait_for_ready_replicas(control, signals, std::chrono::seconds(f.ready_timeout_s));
      !s.ok()) {
    server.stop();
    control.stop();
    return s.error().code() == ErrorCode::kCancelled ? 0 : fail(s.error());
  }
  const std::string base = fmt::format("http://{}:{}", f.host, server.port());
  std::printf("Spillway is up: %s/v1 (OpenAI API)\n", base.c_str());
  std::printf("Status page: %s/   Fleet API: %s/v1/fleet\n", base.c_str(), base.c_str());
  for (const auto& m : spec->models)
    std::printf("Model: %s\n", m.name.c_str());
  if (!api_key.empty()) std::printf("API key: %s\n", api_key.c_str());
  if (admin_key_generated) std::printf("Admin key: %s\n", admin_key->c_str());
  std::printf("Press Ctrl-C to stop.\n");
  std::fflush(stdout);

  wait_for_stop_signal(signals);
  stop_server(server);
  control.stop();
  return 0;
}

}  // namespace

Command add_up_command(CLI::App& root) {
  auto f = std::make_shared<UpFlags>();
  CLI::App* app = root.add_subcommand(
      "up", "Run the platform on this machine: control plane, gateway and replicas in two pools");
  app->add_option("--config", f->config,
                  "Fleet file (TOML; see docs/FLEET.md). Default: two "
                  "local pools, azure and oci, one replica each")
      ->check(CLI::ExistingFile);
  app->add_option("--model", f->model,
                  "GGUF model to serve (default: a small random-weight smoke-test model)")
      ->check(CLI::ExistingFile);
  app->add_option("--api-key", f->api_key, "The demo tenant's key (default: generated)");
  app->add_option("--admin-key-file", f->admin_key_file,
                  "File holding the admin key for drain/undrain and /v1/gateway/* (default: "
                  "SPILLWAY_ADMIN_KEY, else generated and printed)");
  add_listen_options(*app, f->host, f->port, "the gateway");
  app->add_option("--ready-timeout", f->ready_timeout_s,
                  "Seconds to wait for the first ready replica of every model")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  return {app, [f] { return run_up(*f); }};
}

}  // namespace spillway::cli
