// The control plane of a fleet of local replicas: keeps desired state (the fleet file's
// models, their autoscalers, drained pools) and actual state (replica processes and their
// health), and reconciles the two on a loop.
//
// Each reconcile (every options.reconcile_interval, on its own thread):
//   1. Processes: an exited replica that was not being stopped crashed: it is restarted in the
//      same pool after a backoff (initial, doubling, capped; the streak resets after a healthy
//      period); one not ready within start_timeout is killed and counts as a crash.
//   2. Health: each replica's /ready and /metrics (every health_interval) update its load; a
//      starting or unhealthy replica that passes becomes ready; a ready one failing
//      failures_to_unhealthy checks in a row becomes unhealthy. Each check runs on a thread of
//      its own and is applied by the first reconcile after it finished, so a replica that
//      hangs delays neither the loop nor the checks of the others (at most one check per
//      replica is in flight; stop() waits for them, each bounded by health_timeout).
//   3. Drains: a draining replica (scale-in, drained pool, drain_replica) takes no traffic; once
//      a health check after the drain shows nothing running or waiting, or drain_timeout
//      passed, it gets SIGTERM (it finishes in-flight requests), SIGKILL after
//      terminate_grace, and is then shown as stopped.
//   4. Scaling: per model, the desired count (its fleet::Autoscaler fed with the ready
//      replicas' load, or a set_desired_replicas override) is compared with the replicas that
//      are not draining; missing ones are placed by fleet::choose_pool over pools with a
//      [local] table that are not drained (GPUs counted per pool, gpus_per_replica each), and
//      surplus ones are drained (not ready first, then the most expensive capacity, then the
//      newest).
//
// Time for every policy decision comes from the Clock; the loop itself waits in real time.
// Replica processes are children of the reconcile thread and die with it (see
// replica_launcher.h), so none survives the control plane, even if it is SIGKILLed.
//
// Thread-safety: every public method is safe for concurrent use, except that start() and
// stop() must not race each other. The gateway calls replicas() and report_failure() from its
// I/O threads: both only take a mutex held for bookkeeping (never across a health check).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"

#include "control/control_options.h"
#include "fleet/autoscaler.h"
#include "fleet/fleet_spec.h"
#include "fleet/replica_state.h"

namespace spillway::control {

// A replica as the fleet API shows it.
struct ReplicaInfo {
  fleet::ReplicaView view;
  pid_t pid = 0;              // 0 while no process runs (waiting to restart, stopped).
  std::int64_t restarts = 0;  // Relaunches after crashes.
  std::int64_t gpus = 0;      // GPUs of its pool it holds (0 once stopped).
};

struct PoolStatus {
  std::string name;
  std::int64_t gpus_used = 0;
  std::int64_t replicas = 0;  // Not stopped.
  bool drained = false;
};

struct ModelStatus {
  std::string name;
  std::int64_t desired = 0;
  std::int64_t actual = 0;  // Starting, ready, unhealthy or waiting to restart (not draining).
  std::int64_t ready = 0;
};

struct FleetStatus {
  std::vector<PoolStatus> pools;    // Fleet file order.
  std::vector<ModelStatus> models;  // Fleet file order.
  double cost_per_hour = 0;         // Of the GPUs held by replicas that are not stopped.
};

class ControlPlane {
 public:
  // `clock` must outlive the control plane; so must `metrics` when given (gauges and counters
  // are registered at once and updated every reconcile).
  ControlPlane(fleet::FleetSpec fleet, ControlOptions options, const Clock& clock,
               MetricsRegistry* metrics = nullptr);
  ~ControlPlane();  // stop()
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // Validates the options, resolves the spillway binary and the internal key, and starts the
  // reconcile thread. Errors: kInvalidArgument (options, a model path override naming an
  // unknown model), kNotFound (the binary), kFailedPrecondition (started twice).
  Status start();
  // Stops the loop, sends SIGTERM to every replica, waits up to terminate_grace, SIGKILLs the
  // rest and reaps them all. Replicas are then shown as stopped. Idempotent.
  void stop();

  // The replicas for routing: identity, state and last known load. Safe from any thread.
  [[nodiscard]] std::vector<fleet::ReplicaView> replicas() const;
  // The same, shared: the list made at the first call after a change (a reconcile step, a
  // reported failure, a drain), which later calls return without a copy. Never null.
  [[nodiscard]] std::shared_ptr<const std::vector<fleet::ReplicaView>> replica_snapshot() const;
  [[nodiscard]] std::vector<ReplicaInfo> replica_details() const;
  [[nodiscard]] FleetStatus fleet_status() const;
  [[nodiscard]] const fleet::FleetSpec& fleet() const { return fleet_; }

  // A request to the replica failed at the connection level (refused, reset, timed out before
  // any byte). failures_to_eject in a row make a ready replica unhealthy until its next
  // successful health check. Unknown ids are ignored.
  void report_failure(std::string_view replica_id);
  // A request to the replica succeeded: resets its consecutive-failure count.
  void report_success(std::string_view replica_id);

  // Drains every replica of the pool and stops placing there; the models' replicas are
  // re-placed elsewhere by the next reconciles. kNotFound for an unknown pool. Idempotent.
  Status drain_pool(std::string_view pool);
  // Allows placement in the pool again (replicas return through normal reconciliation).
  Status undrain_pool(std::string_view pool);
  // Drains one replica (it is replaced if the model still wants it). kNotFound when unknown or
  // already stopped.
  Status drain_replica(std::string_view replica_id);
  // Pins a model's desired count (clamped to [min_replicas, max_replicas]) instead of the
  // autoscaler's; nullopt hands it back. kNotFound for an unknown model.
  Status set_desired_replicas(std::string_view model, std::optional<std::int64_t> count);

  // The key replicas accept; the gateway sends it as a Bearer token (and may then set the
  // X-Spillway-Tenant header). Empty before start(). Never log it.
  [[nodiscard]] std::string internal_api_key() const;

 private:
  struct Replica;
  struct ModelState;
  struct Probe;
  struct Metrics;

  void run_loop();
  void reconcile();
  // Steps of reconcile(); all REQUIRE mu_ held.
  void step_processes(TimePoint now);
  void start_probe(Replica& r, TimePoint now);
  void drop_probe(Replica& r);  // A probe whose replica no longer wants it: finishes unseen.
  void reap_probes();           // Destroys dropped probes that have finished.
  void apply_probe(Replica& r, const Probe& probe, TimePoint now);
  void step_scaling(TimePoint now);
  void launch(Replica& r, TimePoint now);
  void on_crash(Replica& r, TimePoint now, std::string_view why);
  void begin_drain(Replica& r, TimePoint now, std::string_view why);
  void trim_stopped();
  void update_metrics();
  [[nodiscard]] fleet::ReplicaView view_of(const Replica& r) const;
  [[nodiscard]] Replica* find(std::string_view id);

  const fleet::FleetSpec fleet_;
  ControlOptions options_;
  const Clock& clock_;
  std::unique_ptr<Metrics> metrics_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool started_ = false;                                   // Guarded by mu_.
  bool stopping_ = false;                                  // Guarded by mu_.
  std::string binary_;                                     // Set by start().
  std::string api_key_;                                    // Guarded by mu_; set by start().
  std::vector<std::unique_ptr<Replica>> replicas_;         // Guarded by mu_; creation order.
  std::map<std::string, ModelState, std::less<>> models_;  // Guarded by mu_.
  std::set<std::string> drained_pools_;                    // Guarded by mu_.
  std::uint64_t next_replica_seq_ = 1;                     // Guarded by mu_.
  std::vector<std::unique_ptr<Probe>> orphan_probes_;      // Guarded by mu_.
  // Guarded by mu_: replica_snapshot()'s list; reset by every change to what it shows.
  mutable std::shared_ptr<const std::vector<fleet::ReplicaView>> snapshot_;
  std::thread loop_;
};

}  // namespace spillway::control
