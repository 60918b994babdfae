#include "cli/fleet_runtime.h"

#include <fmt/format.h>

#include <cstdio>

#include "core/log.h"

#include "openai/api_error.h"

#include "cli/secrets.h"

namespace spillway::cli {

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int wait_for_stop_signal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  log_info("shutting down", {kv("signal", sig == SIGINT ? "SIGINT" : "SIGTERM")});
  return sig;
}

Status wait_for_ready_replicas(const control::ControlPlane& control, const sigset_t& signals,
                               std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool all = true;
    for (const auto& m : control.fleet_status().models)
      all = all && m.ready > 0;
    if (all) return Status();
    timespec poll{0, 100'000'000};
    siginfo_t info;
    if (sigtimedwait(&signals, &info, &poll) > 0) {
      return make_error(ErrorCode::kCancelled, "stopped before the replicas were ready");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return make_error(ErrorCode::kDeadlineExceeded,
                        "no ready replica after {} s; see the replica logs above", timeout.count());
    }
  }
}

void add_listen_options(CLI::App& app, std::string& host, int& port, std::string_view what) {
  app.add_option("--host", host, fmt::format("Address of {}", what))->capture_default_str();
  app.add_option("--port", port, fmt::format("Port of {} (0: any free port)", what))
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
}

Result<std::unique_ptr<net::HttpServer>> start_http_server(const std::string& host, int port,
                                                           MetricsRegistry& metrics,
                                                           net::Router router,
                                                           std::chrono::microseconds busy_poll) {
  net::HttpServerOptions http;
  http.host = host;
  http.port = port;
  http.busy_poll = busy_poll;
  http.metrics = &metrics;
  // The server's own errors (404, 405, 413, ...) in the OpenAI shape, as `spillway serve` gives.
  http.error_renderer = [](int status, std::string_view message) {
    openai::ApiError e;
    e.http_status = status;
    e.type = status >= 500 ? "server_error" : "invalid_request_error";
    e.message = std::string(message);
    return net::HttpResponse::json(status, openai::render_error_body(e));
  };
  auto server = std::make_unique<net::HttpServer>(http, std::move(router));
  SPW_TRY(server->start());
  return server;
}

void stop_server(net::HttpServer& server, std::chrono::seconds drain) {
  server.stop_accepting();
  (void)server.drain(drain);
  server.stop();
}

Result<std::string> admin_key_from(const std::string& path) {
  return single_key_from(path, kAdminKeyEnv);
}

Result<std::string> internal_key_from(const std::string& path, bool create, Random& random) {
  if (!path.empty()) {
    return create ? load_or_create_key_file(path, random) : read_single_key_file(path);
  }
  SPW_ASSIGN_OR_RETURN(std::string key, single_key_from("", kInternalKeyEnv));
  if (key.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the internal replica key is needed: --internal-key-file FILE or {}",
                      kInternalKeyEnv);
  }
  return key;
}

int command_failed(std::string_view command, const Error& error) {
  std::fprintf(stderr, "spillway %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               error.message().c_str());
  return error.code() == ErrorCode::kInvalidArgument ? 2 : 1;
}

}  // namespace spillway::cli
