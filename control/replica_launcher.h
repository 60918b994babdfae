// One local replica: a `spillway serve` child process started with fork+exec, its stderr
// read line by line, and its listening port learned from the "ready url=http://HOST:PORT/v1"
// line it logs once it serves.
//
// Process hygiene: the child gets stdin/stdout on /dev/null, stderr on a pipe, no other
// inherited descriptor, an empty signal mask, and PR_SET_PDEATHSIG(SIGTERM): when the thread
// that launched it ends (or the whole parent, even by SIGKILL) the kernel sends it SIGTERM, so
// no replica outlives its control plane. Hence: launch from a thread that lives as long as the
// replica should (the control plane's reconcile thread).
//
// Secrets: the internal API key travels in the child's environment (kReplicaApiKeysEnv and
// kReplicaTrustedKeysEnv, which `spillway serve` reads), never on its command line:
// /proc/PID/cmdline is world-readable, /proc/PID/environ only to the owner. The child inherits
// this process's environment minus every variable in kScrubbedSecretEnv. The key is never
// logged.
//
// Thread-safety: all methods are safe for concurrent use. The destructor kills (SIGKILL) and
// reaps a child still running, and joins the reader thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"

namespace spillway::control {

// What to run: `<binary> serve --model ... --port ...`.
struct ReplicaCommand {
  std::string binary;  // Path of the spillway executable.
  std::string model_path;
  std::string model_name;
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port.
  int threads = 1;
  int kv_cache_mib = 64;
  std::string kv_type = "f16";  // `--kv-type`.
  std::string api_key;          // Accepted as both --api-key and --trusted-key; empty: no auth.
  std::vector<std::string> extra_args;
};

// Environment variables `spillway serve` reads its keys from (comma-separated lists).
inline constexpr std::string_view kReplicaApiKeysEnv = "SPILLWAY_API_KEYS";
inline constexpr std::string_view kReplicaTrustedKeysEnv = "SPILLWAY_TRUSTED_KEYS";
// Secrets of this process a replica must not inherit.
inline constexpr std::string_view kScrubbedSecretEnv[] = {
    kReplicaApiKeysEnv, kReplicaTrustedKeysEnv, "SPILLWAY_INTERNAL_KEY", "SPILLWAY_ADMIN_KEY",
    "SPILLWAY_UPSTREAM_KEY"};

// The argv of `command` (argv[0] = binary). It never holds the key (see Secrets above):
// /proc/PID/cmdline is readable by every user.
[[nodiscard]] std::vector<std::string> replica_argv(const ReplicaCommand& command);

// The child's environment: `inherited` ("NAME=value" entries, e.g. from `environ`) without the
// kScrubbedSecretEnv variables, plus the key variables when command.api_key is set.
[[nodiscard]] std::vector<std::string> replica_environment(const ReplicaCommand& command,
                                                           const char* const* inherited);

// Where a "ready" log line says the replica listens: "url=http://127.0.0.1:8000/v1" gives
// host "127.0.0.1", port 8000. nullopt for any other line (text log format only).
struct ReadyAddress {
  std::string host;
  int port = 0;
};
[[nodiscard]] std::optional<ReadyAddress> parse_ready_line(std::string_view line);

// The path of the running executable (/proc/self/exe resolved).
[[nodiscard]] Result<std::string> current_executable();

struct LaunchOptions {
  std::string replica_id;             // Added to every forwarded log line as replica=<id>.
  std::size_t max_line_bytes = 8192;  // Longer stderr lines are cut (the rest is dropped).
  std::size_t kept_lines = 32;        // Last lines kept for recent_output().
  bool forward_to_log = true;         // Forward each stderr line to the log at info level.
};

// How a child ended, from waitpid.
struct ExitStatus {
  int exit_code = -1;  // When it exited; -1 when killed by a signal.
  int signal = 0;      // The signal that killed it; 0 when it exited.
};

class ReplicaProcess {
 public:
  // Starts the child. Errors: kNotFound (binary missing or not executable), kInvalidArgument
  // (empty model path), kInternal (pipe/fork/exec failed; the message names the call and errno).
  [[nodiscard]] static Result<std::unique_ptr<ReplicaProcess>> launch(const ReplicaCommand& command,
                                                                      const LaunchOptions& options);

  ~ReplicaProcess();
  ReplicaProcess(const ReplicaProcess&) = delete;
  ReplicaProcess& operator=(const ReplicaProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  // The port from the ready line; nullopt until it was seen.
  [[nodiscard]] std::optional<int> port() const;
  // Blocks until the ready line was seen (true), the child's stderr closed (it died), or
  // `timeout` passed (false).
  bool wait_for_port(std::chrono::milliseconds timeout);

  // Non-blocking: the exit status once the child has ended (reaps it), else nullopt.
  [[nodiscard]] std::optional<ExitStatus> poll();
  // Sends SIGTERM (graceful shutdown) unless the child was already reaped.
  void signal_terminate();
  // Sends SIGKILL unless the child was already reaped.
  void kill();
  // SIGTERM, waits up to `grace` for the exit, then SIGKILL; returns the exit status (blocks).
  ExitStatus terminate(std::chrono::milliseconds grace);

  // The last LaunchOptions::kept_lines lines of stderr.
  [[nodiscard]] std::vector<std::string> recent_output() const;

 private:
  ReplicaProcess(pid_t pid, int stderr_fd, LaunchOptions options);
  void read_stderr();
  void handle_line(std::string line);
  // Blocks until the child exits. REQUIRES: mu_ not held.
  ExitStatus wait_blocking();

  const pid_t pid_;
  const int stderr_fd_;
  const LaunchOptions options_;

  mutable std::mutex mu_;
  std::condition_variable port_cv_;
  std::optional<int> port_;         // Guarded by mu_.
  bool output_closed_ = false;      // Guarded by mu_.
  std::optional<ExitStatus> exit_;  // Guarded by mu_; set once reaped.
  std::deque<std::string> recent_;  // Guarded by mu_.
  std::thread reader_;
};

}  // namespace spillway::control
