#include "control/replica_launcher.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "core/log.h"

extern char** environ;

namespace spillway::control {
namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

ExitStatus decode_wait_status(int status) {
  ExitStatus out;
  if (WIFEXITED(status)) {
    out.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

// Closes both ends of a pipe that failed to become useful.
void close_fds(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace

std::vector<std::string> replica_argv(const ReplicaCommand& c) {
  std::vector<std::string> argv = {c.binary,         "serve",
                                   "--model",        c.model_path,
                                   "--port",         std::to_string(c.port),
                                   "--host",         c.host,
                                   "--threads",      std::to_string(c.threads),
                                   "--kv-cache-mib", std::to_string(c.kv_cache_mib),
                                   "--kv-type",      c.kv_type};
  if (!c.model_name.empty()) {
    argv.emplace_back("--model-name");
    argv.push_back(c.model_name);
  }
  argv.insert(argv.end(), c.extra_args.begin(), c.extra_args.end());
  return argv;
}

std::vector<std::string> replica_environment(const ReplicaCommand& c,
                                             const char* const* inherited) {
  std::vector<std::string> env;
  for (const char* const* e = inherited; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool secret = std::find(std::begin(kScrubbedSecretEnv), std::end(kScrubbedSecretEnv),
                                  name) != std::end(kScrubbedSecretEnv);
    if (!secret) env.emplace_back(entry);
  }
  if (!c.api_key.empty()) {
    env.push_back(fmt::format("{}={}", kReplicaApiKeysEnv, c.api_key));
    env.push_back(fmt::format("{}={}", kReplicaTrustedKeysEnv, c.api_key));
  }
  return env;
}

std::optional<ReadyAddress> parse_ready_line(std::string_view line) {
  constexpr std::string_view kMarker = " ready url=http://";
  const std::size_t at = line.find(kMarker);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = line.substr(at + kMarker.size());
  const std::size_t end = rest.find_first_of(" \t");
  rest = rest.substr(0, end);  // "HOST:PORT/v1"
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const std::size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  const std::string_view port_text = authority.substr(colon + 1);
  int port = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port < 1 || port > 65535) {
    return std::nullopt;
  }
  return ReadyAddress{std::string(authority.substr(0, colon)), port};
}

Result<std::string> current_executable() {
  std::error_code ec;
  const auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return make_error(ErrorCode::kInternal, "cannot resolve /proc/self/exe: {}", ec.message());
  }
  return path.string();
}

Result<std::unique_ptr<ReplicaProcess>> ReplicaProcess::launch(const ReplicaCommand& command,
                                                               const LaunchOptions& options) {
  if (command.model_path.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "replica {}: no model path", options.replica_id);
  }
  if (command.binary.empty() || ::access(command.binary.c_str(), X_OK) != 0) {
    return make_error(ErrorCode::kNotFound, "replica {}: '{}' is not an executable file",
                      options.replica_id, command.binary);
  }

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  const std::vector<std::string> args = replica_argv(command);
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::vector<std::string> env_entries = replica_environment(command, environ);
  std::vector<char*> envp;
  envp.reserve(env_entries.size() + 1);
  for (const std::string& e : env_entries)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int out_pipe[2] = {-1, -1};  // Child's stderr → reader thread.
  int err_pipe[2] = {-1, -1};  // exec failure errno → parent; closed by a successful exec.
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return make_error(ErrorCode::kInternal, "pipe2: {}", errno_text(errno));
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    close_fds({out_pipe[0], out_pipe[1]});
    return make_error(ErrorCode::kInternal, "pipe2: {}", errno_text(err));
  }
  const int dev_null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (dev_null < 0) {
    const int err = errno;
    close_fds({out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]});
    return make_error(ErrorCode::kInternal, "open /dev/null: {}", errno_text(err));
  }
  long max_fd = ::sysconf(_SC_OPEN_MAX);
  if (max_fd < 0 || max_fd > 65536) max_fd = 65536;
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    close_fds({out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], dev_null});
    return make_error(ErrorCode::kInternal, "fork: {}", errno_text(err));
  }
  if (pid == 0) {
    // Child. Die with the launching thread; if the parent already died, do not start at all.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(dev_null, STDIN_FILENO);
    ::dup2(dev_null, STDOUT_FILENO);
    ::dup2(out_pipe[1], STDERR_FILENO);
    // Every other descriptor closes at exec (err_pipe[1] must stay open until then).
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < max_fd; ++fd)
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::execve(argv[0], argv.data(), envp.data());
    const int err = errno;
    [[maybe_unused]] const ssize_t n = ::write(err_pipe[1], &err, sizeof err);
    ::_exit(127);
  }

  close_fds({out_pipe[1], err_pipe[1], dev_null});
  int child_errno = 0;
  ssize_t n = 0;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    close_fds({out_pipe[0]});
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return make_error(ErrorCode::kInternal, "replica {}: exec {}: {}", options.replica_id,
                      command.binary, errno_text(child_errno));
  }

  const std::vector<std::string>& shown = args;  // Holds no secret.
  std::string line;
  for (const std::string& a : shown) {
    if (!line.empty()) line += ' ';
    line += a;
  }
  log_info("replica launched",
           {kv("replica", options.replica_id), kv("pid", pid), kv("command", line)});
  std::unique_ptr<ReplicaProcess> process(new ReplicaProcess(pid, out_pipe[0], options));
  process->reader_ = std::thread([p = process.get()] { p->read_stderr(); });
  return process;
}

ReplicaProcess::ReplicaProcess(pid_t pid, int stderr_fd, LaunchOptions options)
    : pid_(pid), stderr_fd_(stderr_fd), options_(std::move(options)) {}

ReplicaProcess::~ReplicaProcess() {
  kill();
  wait_blocking();
  if (reader_.joinable()) reader_.join();
  ::close(stderr_fd_);
}

void ReplicaProcess::read_stderr() {
  std::string pending;
  bool truncating = false;  // Dropping the rest of an over-long line.
  std::array<char, 4096> buf{};
  while (true) {
    const ssize_t n = ::read(stderr_fd_, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
    while (!chunk.empty()) {
      const std::size_t nl = chunk.find('\n');
      const std::string_view piece = chunk.substr(0, nl);
      if (!truncating) {
        const std::size_t room =
            options_.max_line_bytes - std::min(options_.max_line_bytes, pending.size());
        pending.append(piece.substr(0, room));
        if (piece.size() > room) truncating = true;
      }
      if (nl == std::string_view::npos) break;
      handle_line(std::move(pending));
      pending.clear();
      truncating = false;
      chunk.remove_prefix(nl + 1);
    }
  }
  if (!pending.empty()) handle_line(std::move(pending));
  std::lock_guard lock(mu_);
  output_closed_ = true;
  port_cv_.notify_all();
}

void ReplicaProcess::handle_line(std::string line) {
  if (options_.forward_to_log) {
    log_info("replica output", {kv("replica", options_.replica_id), kv("line", line)});
  }
  const auto ready = parse_ready_line(line);
  std::lock_guard lock(mu_);
  if (ready && !port_) {
    port_ = ready->port;
    port_cv_.notify_all();
  }
  recent_.push_back(std::move(line));
  while (recent_.size() > options_.kept_lines)
    recent_.pop_front();
}

std::optional<int> ReplicaProcess::port() const {
  std::lock_guard lock(mu_);
  return port_;
}

bool ReplicaProcess::wait_for_port(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  port_cv_.wait_for(lock, timeout, [&] { return port_.has_value() || output_closed_; });
  return port_.has_value();
}

std::optional<ExitStatus> ReplicaProcess::poll() {
  std::lock_guard lock(mu_);
  if (exit_) return exit_;
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_ = decode_wait_status(status);
  } else if (r < 0) {
    exit_ = ExitStatus{};  // ECHILD: someone else reaped it; it is gone either way.
  }
  return exit_;
}

void ReplicaProcess::signal_terminate() {
  std::lock_guard lock(mu_);
  if (!exit_) ::kill(pid_, SIGTERM);
}

void ReplicaProcess::kill() {
  std::lock_guard lock(mu_);
  if (!exit_) ::kill(pid_, SIGKILL);
}

ExitStatus ReplicaProcess::wait_blocking() {
  while (true) {
    if (auto status = poll()) return *status;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

ExitStatus ReplicaProcess::terminate(std::chrono::milliseconds grace) {
  signal_terminate();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto status = poll()) return *status;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill();
  return wait_blocking();
}

std::vector<std::string> ReplicaProcess::recent_output() const {
  std::lock_guard lock(mu_);
  return {recent_.begin(), recent_.end()};
}

}  // namespace spillway::control
