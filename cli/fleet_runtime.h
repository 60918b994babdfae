// What `spillway up`, `spillway control` and `spillway gateway` share: stop signals, the wait
// for ready replicas, the orderly shutdown of a server, the control plane as the gateway's
// replica source, and the admin key from a file or the environment.
//
// Thread-safety: block_stop_signals() must run on the main thread before any other thread is
// started (threads inherit the mask); the rest are plain functions of their arguments.
#pragma once

#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/metrics.h"
#include "core/random.h"
#include "core/status.h"

#include "net/admin_auth.h"
#include "net/http_server.h"

#include "control/control_plane.h"
#include "gateway/replica_source.h"

namespace spillway::cli {

// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread it starts later) and
// returns the set, for wait_for_stop_signal.
[[nodiscard]] sigset_t block_stop_signals();

// Blocks until SIGINT or SIGTERM arrives; logs and returns it.
int wait_for_stop_signal(const sigset_t& signals);

// Waits (bounded) until every model of `control` has a ready replica. kCancelled when a stop
// signal arrived first, kDeadlineExceeded after `timeout`.
[[nodiscard]] Status wait_for_ready_replicas(const control::ControlPlane& control,
                                             const sigset_t& signals, std::chrono::seconds timeout);

// --host and --port (0: any free port) of a command's HTTP server; `what` names the server.
void add_listen_options(CLI::App& app, std::string& host, int& port, std::string_view what);

// An HTTP server on host:port with `router`, its metrics in `metrics`, started; `busy_poll` as
// HttpServerOptions::busy_poll (validated there).
[[nodiscard]] Result<std::unique_ptr<net::HttpServer>> start_http_server(
    const std::string& host, int port, MetricsRegistry& metrics, net::Router router,
    std::chrono::microseconds busy_poll = std::chrono::microseconds(0));

// Stops accepting, gives in-flight requests up to `drain` to finish, then stops the server.
void stop_server(net::HttpServer& server, std::chrono::seconds drain = std::chrono::seconds(10));

// The gateway reads the replicas of an in-process control plane.
class ControlPlaneSource final : public gateway::ReplicaSource {
 public:
  explicit ControlPlaneSource(control::ControlPlane& control) : control_(control) {}
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

// The admin key of --admin-key-file (when `path` is set) or SPILLWAY_ADMIN_KEY; "" when neither
// is given.
[[nodiscard]] Result<std::string> admin_key_from(const std::string& path);

// The internal replica key of --internal-key-file or SPILLWAY_INTERNAL_KEY. With `create`, a
// missing file is created (mode 0600) with a fresh key. kInvalidArgument when neither is given.
[[nodiscard]] Result<std::string> internal_key_from(const std::string& path, bool create,
                                                    Random& random);

// The exit code of a failed command: 2 for kInvalidArgument (usage), else 1; prints
// "spillway COMMAND: message" to stderr.
int command_failed(std::string_view command, const Error& error);

}  // namespace spillway::cli
