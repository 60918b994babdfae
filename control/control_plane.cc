#include "control/control_plane.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <tuple>
#include <utility>

#include "core/log.h"

#include "control/health.h"
#include "control/replica_launcher.h"
#include "fleet/api_key.h"
#include "fleet/placement.h"
#include "fleet/secure_random.h"

namespace spillway::control {
namespace {

// Stopped replicas kept for display (the oldest go first).
constexpr std::size_t kStoppedKept = 32;

}  // namespace

enum class ReplicaPhase {
  kStarting,   // Process launched, not ready yet.
  kReady,      // Takes traffic.
  kUnhealthy,  // Failing health checks or ejected; process alive.
  kBackoff,    // Crashed; relaunch at restart_at.
  kDraining,   // No new traffic; waiting for in-flight work to end.
  kStopping,   // SIGTERM sent; waiting for the exit.
  kStopped,    // Gone.
};

// One health check, on a thread of its own: a replica that answers slowly (or not at all, until
// health_timeout) delays neither the loop nor the checks of the other replicas.
struct ControlPlane::Probe {
  std::shared_ptr<HealthChecker> checker;  // Shared: outlives a replica that lets go of it.
  TimePoint started{};
  std::optional<Result<HealthReport>> result;  // Written by the thread before `done`.
  std::atomic<bool> done{false};
  std::thread thread;

  ~Probe() {
    if (thread.joinable()) thread.join();
  }
};

struct ControlPlane::Replica {
  std::string id;
  std::uint64_t seq = 0;
  const fleet::ModelSpec* model = nullptr;
  const fleet::PoolSpec* pool = nullptr;
  int slot = 0;  // Index within the pool, for port_base + slot.
  ReplicaPhase phase = ReplicaPhase::kStarting;
  std::unique_ptr<ReplicaProcess> process;
  std::shared_ptr<HealthChecker> checker;
  std::unique_ptr<Probe> probe;  // The health check in flight, if any.
  pid_t pid = 0;
  std::string url;
  std::int64_t running = 0;
  std::int64_t waiting = 0;
  double kv_usage = 0;
  double ttft_p50_s = 0;
  std::int64_t restarts = 0;
  int crash_streak = 0;
  TimePoint launched_at{};
  std::optional<TimePoint> ready_since;
  TimePoint restart_at{};
  TimePoint next_health{};
  TimePoint drain_started{};
  TimePoint term_sent{};
  bool killed = false;
  bool probed_since_drain = false;
  int health_failures = 0;
  int reported_failures = 0;

  [[nodiscard]] bool holds_gpus() const { return phase != ReplicaPhase::kStopped; }
  [[nodiscard]] bool active() const {  // Counts toward the model's desired replicas.
    return phase == ReplicaPhase::kStarting || phase == ReplicaPhase::kReady ||
           phase == ReplicaPhase::kUnhealthy || phase == ReplicaPhase::kBackoff;
  }
};

struct ControlPlane::ModelState {
  std::unique_ptr<fleet::Autoscaler> autoscaler;
  std::optional<std::int64_t> pinned;
  std::int64_t desired = 0;
  std::string last_placement_error;  // Logged once per distinct message.
};

struct ControlPlane::Metrics {
  std::map<fleet::ReplicaState, Gauge*> replicas_by_state;
  Counter* restarts = nullptr;
  std::map<std::string, Gauge*, std::less<>> pool_gpus_used;
  std::map<std::string, Gauge*, std::less<>> pool_drained;
  std::map<std::string, Gauge*, std::less<>> model_desired;
  Gauge* cost_per_hour = nullptr;
};

ControlPlane::ControlPlane(fleet::FleetSpec fleet, ControlOptions options, const Clock& clock,
                           MetricsRegistry* metrics)
    : fleet_(std::move(fleet)), options_(std::move(options)), clock_(clock) {
  if (metrics != nullptr) {
    metrics_ = std::make_unique<Metrics>();
    for (auto s : {fleet::ReplicaState::kStarting, fleet::ReplicaState::kReady,
                   fleet::ReplicaState::kDraining, fleet::ReplicaState::kUnhealthy,
                   fleet::ReplicaState::kStopped}) {
      metrics_->replicas_by_state[s] =
          &metrics->gauge("spillway:fleet_replicas", "Replicas by state.",
                          {{"state", std::string(fleet::replica_state_name(s))}});
    }
    metrics_->restarts = &metrics->counter("spillway:fleet_replica_restarts_total",
                                           "Replica relaunches after a crash.");
    for (const fleet::PoolSpec* pool : fleet_.pools()) {
      metrics_->pool_gpus_used[pool->name] =
          &metrics->gauge("spillway:fleet_pool_gpus_used", "GPUs held by replicas, per pool.",
                          {{"pool", pool->name}, {"provider", pool->provider}});
      metrics_->pool_drained[pool->name] = &metrics->gauge(
          "spillway:fleet_pool_drained", "1 when the pool is drained.", {{"pool", pool->name}});
    }
    for (const fleet::ModelSpec& m : fleet_.models) {
      metrics_->model_desired[m.name] = &metrics->gauge(
          "spillway:fleet_desired_replicas", "Desired replicas per model.", {{"model", m.name}});
    }
    metrics_->cost_per_hour = &metrics->gauge(
        "spillway:fleet_cost_per_hour", "Cost per hour of the GPUs held by running replicas.");
  }
}

ControlPlane::~ControlPlane() {
  stop();
}

Status ControlPlane::start() {
  SPW_TRY(options_.validate());
  for (const auto& [name, path] : options_.model_paths) {
    if (fleet_.find_model(name) == nullptr) {
      return make_error(ErrorCode::kInvalidArgument,
                        "control.model_paths: model '{}' is not in the fleet", name);
    }
  }
  // Every model a local replica may run must be readable now: a typo in a path is an error
  // here, not a crash loop of replicas later.
  const auto pools = fleet_.pools();
  if (std::any_of(pools.begin(), pools.end(),
                  [](const fleet::PoolSpec* p) { return p->local.has_value(); })) {
    for (std::size_t i = 0; i < fleet_.models.size(); ++i) {
      const fleet::ModelSpec& m = fleet_.models[i];
      const auto override_path = options_.model_paths.find(m.name);
      const bool overridden = override_path != options_.model_paths.end();
      const std::string& path = overridden ? override_path->second : m.path;
      std::string problem;
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        problem = "no such file";
      } else if (!std::filesystem::is_regular_file(path, ec)) {
        problem = "not a regular file";
      } else if (::access(path.c_str(), R_OK) != 0) {
        problem = std::strerror(errno);
      }
      if (!problem.empty()) {
        const std::string key = overridden ? fmt::format("control.model_paths[{}]", m.name)
                                           : fmt::format("models[{}].path", i);
        return make_error(ErrorCode::kNotFound, "{}: cannot read '{}': {}", key, path, problem);
      }
    }
  }
  std::string binary = options_.spillway_bin;
  if (binary.empty()) {
    SPW_ASSIGN_OR_RETURN(binary, current_executable());
  }
  if (::access(binary.c_str(), X_OK) != 0) {
    return make_error(ErrorCode::kNotFound, "control.spillway_bin: '{}' is not executable", binary);
  }
  std::lock_guard lock(mu_);
  if (started_) return make_error(ErrorCode::kFailedPrecondition, "control plane already started");
  started_ = true;
  binary_ = std::move(binary);
  if (options_.internal_api_key.empty()) {
    fleet::SecureRandom random;
    api_key_ = fleet::generate_api_key(random);
  } else {
    api_key_ = options_.internal_api_key;
  }
  for (const fleet::ModelSpec& m : fleet_.models) {
    ModelState& state = models_[m.name];
    state.autoscaler = std::make_unique<fleet::Autoscaler>(m, options_.autoscaler, clock_);
    state.desired = state.autoscaler->desired();
  }
  log_info("control plane started", {kv("models", fleet_.models.size()),
                                     kv("pools", fleet_.pools().size()), kv("binary", binary_)});
  loop_ = std::thread([this] { run_loop(); });
  return Status();
}

void ControlPlane::stop() {
  {
    std::lock_guard lock(mu_);
    if (!started_ || stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (loop_.joinable()) loop_.join();

  // The loop has ended, so only this thread creates or destroys processes now; the waiting
  // below runs without the lock so replicas() callers are not held up meanwhile.
  std::vector<ReplicaProcess*> processes;
  {
    std::lock_guard lock(mu_);
    snapshot_.reset();
    for (auto& r : replicas_) {
      drop_probe(*r);
      if (!r->process) continue;
      r->phase = ReplicaPhase::kStopping;
      r->process->signal_terminate();
      processes.push_back(r->process.get());
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.terminate_grace;
  for (ReplicaProcess* p : processes) {
    while (!p->poll() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!p->poll()) {
      log_warn("replica did not stop in time; killing it", {kv("pid", p->pid())});
      p->kill();
    }
  }
  std::vector<std::unique_ptr<Probe>> probes;
  {
    std::lock_guard lock(mu_);
    probes.swap(orphan_probes_);
  }
  probes.clear();  // Joins the probe threads (each bounded by the health timeout).
  std::lock_guard lock(mu_);
  snapshot_.reset();
  for (auto& r : replicas_) {
    r->process.reset();  // Reaps and joins the stderr reader.
    r->checker.reset();
    r->phase = ReplicaPhase::kStopped;
    r->pid = 0;
    r->url.clear();
    r->running = r->waiting = 0;
    r->kv_usage = r->ttft_p50_s = 0;
  }
  update_metrics();
  log_info("control plane stopped");
}

void ControlPlane::run_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    reconcile();
    lock.lock();
    wake_.wait_for(lock, options_.reconcile_interval, [&] { return stopping_; });
  }
}

void ControlPlane::reconcile() {
  std::lock_guard lock(mu_);
  snapshot_.reset();  // Every step may change a replica's state or load.
  const TimePoint now = clock_.now();
  step_processes(now);
  step_scaling(now);
  trim_stopped();
  reap_probes();
  update_metrics();
}

void ControlPlane::start_probe(Replica& r, TimePoint now) {
  auto probe = std::make_unique<Probe>();
  probe->checker = r.checker;
  probe->started = now;
  Probe* p = probe.get();
  try {
    probe->thread = std::thread([p] {
      p->result = p->checker->check();  // Network calls: no lock held.
      p->done.store(true, std::memory_order_release);
    });
  } catch (const std::system_error& e) {
    log_warn("cannot start a health check thread", {kv("replica", r.id), kv("error", e.what())});
    return;  // Tried again at the next health interval.
  }
  r.probe = std::move(probe);
}

void ControlPlane::drop_probe(Replica& r) {
  if (r.probe) orphan_probes_.push_back(std::move(r.probe));
}

void ControlPlane::reap_probes() {
  std::erase_if(orphan_probes_, [](const std::unique_ptr<Probe>& p) {
    return p->done.load(std::memory_order_acquire);  // Joined by the destructor at once.
  });
}

void ControlPlane::step_processes(TimePoint now) {
  for (auto& owned : replicas_) {
    Replica& r = *owned;
    if (r.process) {
      if (const auto exit = r.process->poll()) {
        if (r.phase == ReplicaPhase::kDraining || r.phase == ReplicaPhase::kStopping) {
          log_info("replica stopped", {kv("replica", r.id), kv("exit_code", exit->exit_code),
                                       kv("signal", exit->signal)});
          r.process.reset();
          drop_probe(r);
          r.checker.reset();
          r.phase = ReplicaPhase::kStopped;
          r.pid = 0;
          r.running = r.waiting = 0;
          r.kv_usage = r.ttft_p50_s = 0;
          continue;
        }
        const auto output = r.process->recent_output();
        on_crash(r, now,
                 fmt::format("exit_code={} signal={} last_line={}", exit->exit_code, exit->signal,
                             output.empty() ? std::string() : output.back()));
        continue;
      }
      if (!r.checker) {
        if (const auto port = r.process->port()) {
          r.url = fmt::format("http://127.0.0.1:{}", *port);
          HealthOptions h;
          h.port = *port;
          h.timeout = options_.health_timeout;
          h.api_key = api_key_;
          r.checker = std::make_shared<HealthChecker>(std::move(h));
          r.next_health = now;
        }
      }
      if (r.phase == ReplicaPhase::kStarting && now - r.launched_at > options_.start_timeout) {
        log_warn("replica not ready in time; killing it", {kv("replica", r.id)});
        r.process->kill();  // The next reconcile sees the exit as a crash.
      }
      if (r.phase == ReplicaPhase::kReady && r.ready_since &&
          now - *r.ready_since >= options_.backoff_reset_after) {
        r.crash_streak = 0;
      }
      if (r.phase == ReplicaPhase::kDraining) {
        const bool idle = r.probed_since_drain && r.running + r.waiting == 0;
        if (idle || !r.checker || now - r.drain_started >= options_.drain_timeout) {
          log_info("replica drained; terminating",
                   {kv("replica", r.id), kv("idle", idle), kv("pid", r.pid)});
          r.process->signal_terminate();
          r.phase = ReplicaPhase::kStopping;
          r.term_sent = now;
        }
      }
      if (r.phase == ReplicaPhase::kStopping && !r.killed &&
          now - r.term_sent > options_.terminate_grace) {
        log_warn("replica ignored SIGTERM; killing it", {kv("replica", r.id)});
        r.process->kill();
        r.killed = true;
      }
      if (r.probe && r.probe->done.load(std::memory_order_acquire)) {
        const std::unique_ptr<Probe> finished = std::move(r.probe);
        apply_probe(r, *finished, now);
      }
      if (r.checker && !r.probe && r.phase != ReplicaPhase::kStopping && now >= r.next_health) {
        r.next_health = now + options_.health_interval;
        start_probe(r, now);
      }
      continue;
    }
    // No process.
    if (r.phase == ReplicaPhase::kDraining || r.phase == ReplicaPhase::kStopping) {
      r.phase = ReplicaPhase::kStopped;
    } else if (r.phase == ReplicaPhase::kBackoff && now >= r.restart_at) {
      ++r.restarts;
      if (metrics_) metrics_->restarts->inc();
      launch(r, now);
    }
  }
}

void ControlPlane::apply_probe(Replica& r, const Probe& probe, TimePoint now) {
  if (!r.process || r.phase == ReplicaPhase::kStopped) return;
  const Result<HealthReport>& result = *probe.result;
  if (result.ok()) {
    r.running = result->running;
    r.waiting = result->waiting;
    r.kv_usage = result->kv_usage;
    r.ttft_p50_s = result->ttft_p50_s;
    if ((r.phase == ReplicaPhase::kDraining || r.phase == ReplicaPhase::kStopping) &&
        probe.started >= r.drain_started) {
      r.probed_since_drain = true;
    }
  }
  if (result.ok() && result->ready) {
    r.health_failures = 0;
    if (r.phase == ReplicaPhase::kStarting || r.phase == ReplicaPhase::kUnhealthy) {
      log_info(r.phase == ReplicaPhase::kStarting ? "replica ready" : "replica healthy again",
               {kv("replica", r.id), kv("url", r.url), kv("pool", r.pool->name)});
      r.phase = ReplicaPhase::kReady;
      r.ready_since = now;
      r.reported_failures = 0;
    }
    return;
  }
  if (r.phase == ReplicaPhase::kStarting) return;  // Not ready yet is normal while starting.
  ++r.health_failures;
  if (r.phase == ReplicaPhase::kReady && r.health_failures >= options_.failures_to_unhealthy) {
    log_warn("replica unhealthy",
             {kv("replica", r.id), kv("failures", r.health_failures),
              kv("error", result.ok() ? std::string("not ready") : result.error().to_string())});
    r.phase = ReplicaPhase::kUnhealthy;
    r.ready_since.reset();
  }
}

void ControlPlane::on_crash(Replica& r, TimePoint now, std::string_view why) {
  r.process.reset();
  drop_probe(r);
  r.checker.reset();
  r.pid = 0;
  r.url.clear();
  r.running = r.waiting = 0;
  r.kv_usage = r.ttft_p50_s = 0;
  r.ready_since.reset();
  ++r.crash_streak;
  Nanos backoff = options_.restart_backoff_initial;
  for (int i = 1; i < r.crash_streak && backoff < options_.restart_backoff_max; ++i)
    backoff *= 2;
  backoff = std::min(backoff, options_.restart_backoff_max);
  r.phase = ReplicaPhase::kBackoff;
  r.restart_at = now + backoff;
  log_warn(
      "replica exited unexpectedly; restarting after backoff",
      {kv("replica", r.id), kv("details", why), kv("crashes_in_a_row", r.crash_streak),
       kv("backoff_ms", std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count())});
}

void ControlPlane::launch(Replica& r, TimePoint now) {
  ReplicaCommand command;
  command.binary = binary_;
  const auto path = options_.model_paths.find(r.model->name);
  command.model_path = path != options_.model_paths.end() ? path->second : r.model->path;
  command.model_name = r.model->name;
  const fleet::LocalPoolSpec local = r.pool->local.value_or(fleet::LocalPoolSpec{});
  command.port = local.port_base == 0 ? 0 : local.port_base + r.slot;
  command.threads = options_.threads_override > 0 ? options_.threads_override : local.threads;
  command.kv_cache_mib = local.kv_cache_mib;
  command.kv_type = local.kv_type;
  command.api_key = api_key_;
  command.extra_args = options_.extra_serve_args;
  LaunchOptions launch_options;
  launch_options.replica_id = r.id;
  launch_options.max_line_bytes = options_.max_log_line_bytes;
  r.launched_at = now;
  r.killed = false;
  r.health_failures = 0;
  r.reported_failures = 0;
  auto process = ReplicaProcess::launch(command, launch_options);
  if (!process.ok()) {
    log_error("replica launch failed",
              {kv("replica", r.id), kv("error", process.error().to_string())});
    on_crash(r, now, process.error().message());
    return;
  }
  r.process = std::move(process).value();
  r.pid = r.process->pid();
  r.phase = ReplicaPhase::kStarting;
}

void ControlPlane::begin_drain(Replica& r, TimePoint now, std::string_view why) {
  if (!r.active()) return;
  log_info("draining replica", {kv("replica", r.id), kv("reason", why)});
  r.phase = r.process ? ReplicaPhase::kDraining : ReplicaPhase::kStopped;
  r.drain_started = now;
  r.probed_since_drain = false;
}

void ControlPlane::step_scaling(TimePoint now) {
  // GPUs in use and the pools placement may not use (drained, or not local).
  fleet::PoolUsage used;
  std::int64_t holding = 0;
  for (const auto& r : replicas_) {
    if (!r->holds_gpus()) continue;
    used[r->pool->name] += r->model->gpus_per_replica;
    ++holding;
  }
  std::set<std::string> excluded = drained_pools_;
  for (const fleet::PoolSpec* pool : fleet_.pools()) {
    if (!pool->local) excluded.insert(pool->name);
  }

  for (const fleet::ModelSpec& model : fleet_.models) {
    ModelState& state = models_[model.name];
    std::vector<Replica*> active;
    fleet::AutoscaleSample sample;
    double kv_sum = 0;
    double ttft_sum = 0;
    int ttft_known = 0;
    for (const auto& r : replicas_) {
      if (r->model != &model) continue;
      if (r->active()) active.push_back(r.get());
      if (r->phase != ReplicaPhase::kReady) continue;
      ++sample.replicas;
      sample.waiting += r->waiting;
      kv_sum += r->kv_usage;
      if (r->ttft_p50_s > 0) {
        ttft_sum += r->ttft_p50_s;
        ++ttft_known;
      }
    }
    if (sample.replicas > 0) sample.kv_usage = kv_sum / static_cast<double>(sample.replicas);
    if (ttft_known > 0) sample.ttft_p50_s = ttft_sum / ttft_known;
    const std::int64_t scaled = state.autoscaler->observe(sample);
    state.desired = state.pinned ? *state.pinned : scaled;

    auto count = static_cast<std::int64_t>(active.size());
    while (count < state.desired) {
      if (holding >= options_.max_replicas) {
        const std::string msg = fmt::format("max_replicas ({}) reached", options_.max_replicas);
        if (msg != state.last_placement_error) {
          log_warn("cannot add replica", {kv("model", model.name), kv("reason", msg)});
          state.last_placement_error = msg;
        }
        break;
      }
      std::vector<fleet::ReplicaView> views;
      for (Replica* r : active)
        views.push_back(view_of(*r));
      const auto pool_name = fleet::choose_pool(fleet_, model, used, views, excluded);
      if (!pool_name.ok()) {
        if (pool_name.error().message() != state.last_placement_error) {
          log_warn("cannot place replica",
                   {kv("model", model.name), kv("reason", pool_name.error().message())});
          state.last_placement_error = pool_name.error().message();
        }
        break;
      }
      state.last_placement_error.clear();
      const fleet::PoolSpec* pool = fleet_.find_pool(*pool_name);
      auto replica = std::make_unique<Replica>();
      replica->seq = next_replica_seq_++;
      replica->id = fmt::format("{}-r{}", pool->name, replica->seq);
      replica->model = &model;
      replica->pool = pool;
      std::set<int> slots;
      for (const auto& r : replicas_) {
        if (r->pool == pool && r->holds_gpus()) slots.insert(r->slot);
      }
      while (slots.contains(replica->slot))
        ++replica->slot;
      log_info("placing replica", {kv("replica", replica->id), kv("model", model.name),
                                   kv("pool", pool->name), kv("provider", pool->provider)});
      launch(*replica, now);
      used[pool->name] += model.gpus_per_replica;
      ++holding;
      active.push_back(replica.get());
      replicas_.push_back(std::move(replica));
      ++count;
    }
    if (count > state.desired) {
      // Scale in: not ready first, then the most expensive capacity, then the newest.
      auto rank = [](const Replica* r) {
        const int readiness = r->phase == ReplicaPhase::kReady ? 1 : 0;
        return std::make_tuple(readiness, -static_cast<int>(r->pool->capacity),
                               -r->pool->cost_per_gpu_hour, -static_cast<double>(r->seq));
      };
      std::sort(active.begin(), active.end(),
                [&](const Replica* a, const Replica* b) { return rank(a) < rank(b); });
      for (std::int64_t i = 0; i < count - state.desired; ++i) {
        begin_drain(*active[static_cast<std::size_t>(i)], now, "scale-in");
      }
    }
  }
}

void ControlPlane::trim_stopped() {
  std::size_t stopped = 0;
  for (const auto& r : replicas_)
    stopped += r->phase == ReplicaPhase::kStopped ? 1 : 0;
  for (auto it = replicas_.begin(); stopped > kStoppedKept && it != replicas_.end();) {
    if ((*it)->phase == ReplicaPhase::kStopped) {
      it = replicas_.erase(it);
      --stopped;
    } else {
      ++it;
    }
  }
}

void ControlPlane::update_metrics() {
  if (!metrics_) return;
  std::map<fleet::ReplicaState, int> by_state;
  std::map<std::string, std::int64_t, std::less<>> used;
  double cost = 0;
  for (const auto& r : replicas_) {
    ++by_state[view_of(*r).state];
    if (!r->holds_gpus()) continue;
    used[r->pool->name] += r->model->gpus_per_replica;
    cost += static_cast<double>(r->model->gpus_per_replica) * r->pool->cost_per_gpu_hour;
  }
  for (auto& [state, gauge] : metrics_->replicas_by_state)
    gauge->set(by_state[state]);
  for (auto& [pool, gauge] : metrics_->pool_gpus_used) {
    const auto it = used.find(pool);
    gauge->set(it == used.end() ? 0.0 : static_cast<double>(it->second));
  }
  for (auto& [pool, gauge] : metrics_->pool_drained) {
    gauge->set(drained_pools_.contains(pool) ? 1.0 : 0.0);
  }
  for (auto& [model, gauge] : metrics_->model_desired) {
    const auto it = models_.find(model);
    gauge->set(it == models_.end() ? 0.0 : static_cast<double>(it->second.desired));
  }
  metrics_->cost_per_hour->set(cost);
}

fleet::ReplicaView ControlPlane::view_of(const Replica& r) const {
  fleet::ReplicaView v;
  v.id = r.id;
  v.model = r.model->name;
  v.provider = r.pool->provider;
  v.region = r.pool->region;
  v.pool = r.pool->name;
  v.url = r.url;
  switch (r.phase) {
    case ReplicaPhase::kStarting:
      v.state = fleet::ReplicaState::kStarting;
      break;
    case ReplicaPhase::kReady:
      v.state = fleet::ReplicaState::kReady;
      break;
    case ReplicaPhase::kUnhealthy:
    case ReplicaPhase::kBackoff:
      v.state = fleet::ReplicaState::kUnhealthy;
      break;
    case ReplicaPhase::kDraining:
    case ReplicaPhase::kStopping:
      v.state = fleet::ReplicaState::kDraining;
      break;
    case ReplicaPhase::kStopped:
      v.state = fleet::ReplicaState::kStopped;
      break;
  }
  v.running = r.running;
  v.waiting = r.waiting;
  v.kv_usage = r.kv_usage;
  v.ttft_p50_s = r.ttft_p50_s;
  v.rtt_ms = r.pool->rtt_ms;
  v.cost_per_gpu_hour = r.pool->cost_per_gpu_hour;
  v.capacity = r.pool->capacity;
  return v;
}

ControlPlane::Replica* ControlPlane::find(std::string_view id) {
  for (auto& r : replicas_) {
    if (r->id == id) return r.get();
  }
  return nullptr;
}

std::vector<fleet::ReplicaView> ControlPlane::replicas() const {
  return *replica_snapshot();
}

std::shared_ptr<const std::vector<fleet::ReplicaView>> ControlPlane::replica_snapshot() const {
  std::lock_guard lock(mu_);
  if (!snapshot_) {
    auto out = std::make_shared<std::vector<fleet::ReplicaView>>();
    out->reserve(replicas_.size());
    for (const auto& r : replicas_)
      out->push_back(view_of(*r));
    snapshot_ = std::move(out);
  }
  return snapshot_;
}

std::vector<ReplicaInfo> ControlPlane::replica_details() const {
  std::lock_guard lock(mu_);
  std::vector<ReplicaInfo> out;
  out.reserve(replicas_.size());
  for (const auto& r : replicas_) {
    out.push_back(ReplicaInfo{view_of(*r), r->pid, r->restarts,
                              r->holds_gpus() ? r->model->gpus_per_replica : 0});
  }
  return out;
}

FleetStatus ControlPlane::fleet_status() const {
  std::lock_guard lock(mu_);
  FleetStatus status;
  for (const fleet::PoolSpec* pool : fleet_.pools()) {
    PoolStatus p;
    p.name = pool->name;
    p.drained = drained_pools_.contains(pool->name);
    for (const auto& r : replicas_) {
      if (r->pool != pool || !r->holds_gpus()) continue;
      p.gpus_used += r->model->gpus_per_replica;
      ++p.replicas;
      status.cost_per_hour +=
          static_cast<double>(r->model->gpus_per_replica) * pool->cost_per_gpu_hour;
    }
    status.pools.push_back(std::move(p));
  }
  for (const fleet::ModelSpec& model : fleet_.models) {
    ModelStatus m;
    m.name = model.name;
    const auto it = models_.find(model.name);
    m.desired = it != models_.end() ? it->second.desired : model.min_replicas;
    for (const auto& r : replicas_) {
      if (r->model != &model) continue;
      m.actual += r->active() ? 1 : 0;
      m.ready += r->phase == ReplicaPhase::kReady ? 1 : 0;
    }
    status.models.push_back(std::move(m));
  }
  return status;
}

void ControlPlane::report_failure(std::string_view replica_id) {
  std::lock_guard lock(mu_);
  Replica* r = find(replica_id);
  if (r == nullptr) return;
  ++r->reported_failures;
  if (r->phase == ReplicaPhase::kReady && r->reported_failures >= options_.failures_to_eject) {
    log_warn("replica ejected after failed requests",
             {kv("replica", r->id), kv("failures", r->reported_failures)});
    r->phase = ReplicaPhase::kUnhealthy;
    r->ready_since.reset();
    snapshot_.reset();
  }
}

void ControlPlane::report_success(std::string_view replica_id) {
  std::lock_guard lock(mu_);
  if (Replica* r = find(replica_id)) r->reported_failures = 0;
}

Status ControlPlane::drain_pool(std::string_view pool) {
  if (fleet_.find_pool(pool) == nullptr) {
    return make_error(ErrorCode::kNotFound, "no pool named '{}'", pool);
  }
  {
    std::lock_guard lock(mu_);
    if (!drained_pools_.insert(std::string(pool)).second) return Status();
    log_info("draining pool", {kv("pool", pool)});
    snapshot_.reset();
    const TimePoint now = clock_.now();
    for (auto& r : replicas_) {
      if (r->pool->name == pool) begin_drain(*r, now, "pool drained");
    }
    update_metrics();
  }
  wake_.notify_all();
  return Status();
}

Status ControlPlane::undrain_pool(std::string_view pool) {
  if (fleet_.find_pool(pool) == nullptr) {
    return make_error(ErrorCode::kNotFound, "no pool named '{}'", pool);
  }
  {
    std::lock_guard lock(mu_);
    if (drained_pools_.erase(std::string(pool)) > 0) log_info("pool undrained", {kv("pool", pool)});
    update_metrics();
  }
  wake_.notify_all();
  return Status();
}

Status ControlPlane::drain_replica(std::string_view replica_id) {
  {
    std::lock_guard lock(mu_);
    Replica* r = find(replica_id);
    if (r == nullptr || !r->active()) {
      return make_error(ErrorCode::kNotFound, "no active replica named '{}'", replica_id);
    }
    begin_drain(*r, clock_.now(), "requested");
    snapshot_.reset();
  }
  wake_.notify_all();
  return Status();
}

Status ControlPlane::set_desired_replicas(std::string_view model,
                                          std::optional<std::int64_t> count) {
  const fleet::ModelSpec* spec = fleet_.find_model(model);
  if (spec == nullptr) return make_error(ErrorCode::kNotFound, "no model named '{}'", model);
  {
    std::lock_guard lock(mu_);
    ModelState& state = models_[spec->name];
    if (count) {
      state.pinned = std::clamp(*count, spec->min_replicas, spec->max_replicas);
      state.desired = *state.pinned;
    } else {
      state.pinned.reset();
    }
  }
  wake_.notify_all();
  return Status();
}

std::string ControlPlane::internal_api_key() const {
  std::lock_guard lock(mu_);
  return api_key_;
}

}  // namespace spillway::control
