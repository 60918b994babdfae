// The simulator's event loop and report assembly; the fleet and gateway parts of SimRun are in
// sim_fleet.cc and sim_gateway.cc.
#include "sim/simulator.h"

#include <fmt/format.h>

#include <algorithm>

#include "sim/sim_run.h"

namespace spillway::sim {

Status SimOptions::validate() const {
  if (!policy.empty() && !fleet::is_routing_policy_name(policy)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "policy: unknown routing policy '{}' (known: {})", policy,
                      fmt::join(fleet::routing_policy_names(), ", "));
  }
  SPW_TRY(routing.validate());
  SPW_TRY(autoscaler.validate());
  if (replica_model != "exact" && replica_model != "fast" && replica_model != "auto") {
    return make_error(ErrorCode::kInvalidArgument, "replica_model: '{}' is not exact, fast or auto",
                      replica_model);
  }
  if (duration < Nanos{0}) return Error(ErrorCode::kInvalidArgument, "duration: negative");
  if (drain_limit < Nanos{0}) return Error(ErrorCode::kInvalidArgument, "drain_limit: negative");
  if (!(kv_memory_fraction > 0 && kv_memory_fraction <= 1)) {
    return make_error(ErrorCode::kInvalidArgument, "kv_memory_fraction: {} is not in (0, 1]",
                      kv_memory_fraction);
  }
  if (replica.block_tokens < 1 || replica.max_batch_tokens < 1 || replica.max_running < 1 ||
      replica.max_waiting < 0 || replica.kv_blocks < 0 || replica.max_context < 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "replica: block_tokens, max_batch_tokens and max_running must be >= 1, "
                 "max_waiting, kv_blocks and max_context >= 0");
  }
  if (autoscale_interval <= Nanos{0}) {
    return Error(ErrorCode::kInvalidArgument, "autoscale_interval: not > 0");
  }
  if (sample_interval <= Nanos{0}) {
    return Error(ErrorCode::kInvalidArgument, "sample_interval: not > 0");
  }
  if (cold_start_fixed < Nanos{0} || (cold_start && *cold_start < Nanos{0})) {
    return Error(ErrorCode::kInvalidArgument, "cold_start: negative");
  }
  if (!(load_bytes_per_s > 0)) {
    return Error(ErrorCode::kInvalidArgument, "load_bytes_per_s: not > 0");
  }
  if (max_attempts < 1 || max_attempts > 16) {
    return make_error(ErrorCode::kInvalidArgument, "max_attempts: {} is not in [1, 16]",
                      max_attempts);
  }
  if (queue_capacity < 1) return Error(ErrorCode::kInvalidArgument, "queue_capacity: not >= 1");
  if (max_queue_wait <= Nanos{0}) {
    return Error(ErrorCode::kInvalidArgument, "max_queue_wait: not > 0");
  }
  if (max_open_reservations < 1) {
    return Error(ErrorCode::kInvalidArgument, "max_open_reservations: not >= 1");
  }
  for (const GpuProfile& g : gpu_profiles)
    SPW_TRY(g.validate());
  return Status();
}

namespace internal {

SimRun::SimRun(const fleet::FleetSpec& fleet, const SimOptions& options)
    : fleet_(fleet), options_(options), random_(options.seed ^ 0x726f'7574'696e'67ull) {}

Status SimRun::init(const WorkloadSpec& workload) {
  SPW_TRY(options_.validate());
  policy_name_ = options_.policy.empty() ? fleet_.gateway.routing : options_.policy;
  SPW_ASSIGN_OR_RETURN(policy_, fleet::make_routing_policy(policy_name_, options_.routing));
  if (options_.replica_model == "auto") {
    std::int64_t max_replicas = 0;
    for (const fleet::ModelSpec& m : fleet_.models)
      max_replicas += m.max_replicas;
    replica_kind_ = max_replicas <= options_.auto_exact_max_replicas ? "exact" : "fast";
  } else {
    replica_kind_ = options_.replica_model;
  }
  SPW_TRY(setup_pools());
  SPW_TRY(setup_models());
  SPW_TRY(check_events());

  for (const fleet::TenantSpec& t : fleet_.tenants) {
    if (t.tokens_per_minute == 0 && t.requests_per_minute == 0) continue;
    fleet::QuotaOptions q;
    q.max_open_reservations = options_.max_open_reservations;
    quotas_[t.name] = std::make_unique<fleet::TokenQuota>(
        fleet::QuotaLimits{t.tokens_per_minute, t.requests_per_minute}, clock_, q);
  }

  WorkloadOptions wo;
  wo.tenants =
      options_.tenants.empty() ? default_tenant_mix(fleet_, options_.tenant_mix) : options_.tenants;
  wo.duration = options_.duration;
  wo.seed = options_.seed;
  for (const fleet::ModelSpec& m : fleet_.models) {
    const auto ctx = static_cast<std::int32_t>(m.context_tokens);
    if (wo.max_context == 0 || ctx < wo.max_context) wo.max_context = ctx;
  }
  for (const TenantShare& t : wo.tenants) {
    auto m = model_by_name_.find(t.model);
    if (m != model_by_name_.end()) {
      models_[m->second].demand_weight += t.weight * models_[m->second].profile.params();
    }
  }
  SPW_ASSIGN_OR_RETURN(workload_, make_workload(workload, wo));

  place_initial();
  for (std::size_t i = 0; i < options_.events.size(); ++i) {
    const FleetEventSpec& e = options_.events[i];
    events_.push(e.start, EventKind::kFleetEvent, i, 0);
    if (e.end) events_.push(*e.end, EventKind::kFleetEvent, i, 1);
  }
  next_arrival_ = workload_->next();
  if (next_arrival_) {
    events_.push(next_arrival_->arrival, EventKind::kArrival, next_arrival_->id);
  } else {
    arrivals_done_ = true;
  }
  events_.push(options_.autoscale_interval, EventKind::kAutoscaleTick);
  if (options_.timeseries) {
    std::string header = "time_s,offered_rps,finished_rps,running,waiting,queued,ttft_p90_ms";
    for (const SimPool& p : pools_)
      header += ",replicas_" + p.spec->name;
    *options_.timeseries << header << "\n";
    events_.push(options_.sample_interval, EventKind::kSample);
  }
  return Status();
}

void SimRun::set_now(Nanos t) {
  if (t < now_) t = now_;
  now_ = t;
  clock_.set(TimePoint{t});
}

bool SimRun::work_remains() const {
  return !arrivals_done_ || !pending_.empty();
}

void SimRun::after_event() {
  // Replicas that went idle while draining, inside a replica's advance().
  for (const std::size_t r : to_stop_)
    stop_replica(r);
  to_stop_.clear();
  for (std::size_t m = 0; m < models_.size(); ++m) {
    if (models_[m].queue_dirty) {
      if (models_[m].queue->empty()) {
        models_[m].queue_dirty = false;
      } else {
        drain_queue(m);
      }
    }
  }
}

void SimRun::sample() {
  std::int64_t running = 0;
  std::int64_t waiting = 0;
  std::uint64_t queued = 0;
  for (const SimModel& m : models_) {
    queued += m.queue->size();
    for (const std::size_t r : m.placed_replica) {
      if (!replicas_[r].impl) continue;
      const ReplicaLoad load = replicas_[r].impl->load();
      running += load.running;
      waiting += load.waiting;
    }
  }
  const double interval = to_seconds(options_.sample_interval);
  std::string row = fmt::format("{:.3f},{:.3f},{:.3f},{},{},{},{:.3f}", to_seconds(now_),
                                static_cast<double>(window_arrivals_) / interval,
                                static_cast<double>(window_finished_) / interval, running, waiting,
                                queued, to_seconds(window_ttft_.quantile(0.9)) * 1e3);
  for (const SimPool& p : pools_)
    row += fmt::format(",{}", p.holding);
  *options_.timeseries << row << "\n";
  window_arrivals_ = window_finished_ = 0;
  window_ttft_.clear();
}

SimReport SimRun::run() {
  std::optional<Nanos> stop_at;
  while (!events_.empty() && work_remains()) {
    if (arrivals_done_ && !stop_at) stop_at = last_arrival_ + options_.drain_limit;
    if (stop_at && events_.top()->at > *stop_at) break;
    const Event e = *events_.pop();
    set_now(e.at);
    ++report_.events;
    switch (e.kind) {
      case EventKind::kArrival: {
        const SimRequest request = std::move(*next_arrival_);
        last_arrival_ = request.arrival;
        next_arrival_ = workload_->next();
        if (next_arrival_) {
          events_.push(std::max(next_arrival_->arrival, now_), EventKind::kArrival,
                       next_arrival_->id);
        } else {
          arrivals_done_ = true;
        }
        arrive(request);
        break;
      }
      case EventKind::kReplicaStep: {
        SimReplica& rep = replicas_[e.a];
        if (!rep.impl || rep.generation != e.b) break;
        rep.scheduled.reset();
        advance_replica(e.a, now_);
        schedule_replica(e.a);
        break;
      }
      case EventKind::kReplicaReady:
        make_ready(e.a);
        break;
      case EventKind::kAutoscaleTick:
        autoscale_tick();
        events_.push(now_ + options_.autoscale_interval, EventKind::kAutoscaleTick);
        break;
      case EventKind::kSample:
        sample();
        events_.push(now_ + options_.sample_interval, EventKind::kSample);
        break;
      case EventKind::kFleetEvent:
        fleet_event(e.a, e.b == 1);
        break;
      case EventKind::kQueueTimeout:
        queue_timeout(e.a, e.b);
        break;
    }
    after_event();
  }
  finalize();
  return std::move(report_);
}

void SimRun::finalize() {
  report_.policy = policy_name_;
  report_.replica_model = replica_kind_;
  report_.seed = options_.seed;
  report_.offered_window_s =
      to_seconds(options_.duration > Nanos{0} ? options_.duration : last_arrival_);
  report_.end_s = to_seconds(now_);
  report_.unfinished = pending_.size();
  // Charge the replicas still holding GPUs up to now.
  for (std::size_t r = 0; r < replicas_.size(); ++r) {
    if (replicas_[r].phase == ReplicaPhase::kStopped) continue;
    ++pools_[replicas_[r].pool].report.final_replicas;
    ++models_[replicas_[r].model].report.final_replicas;
    stop_replica(r);
  }
  report_.prefill_tokens = retired_stats_.prefill_tokens;
  report_.decode_tokens = retired_stats_.decode_tokens;
  report_.prefix_query_tokens = retired_stats_.prefix_query_tokens;
  report_.prefix_hit_tokens = retired_stats_.prefix_hit_tokens;
  report_.preemptions = retired_stats_.preemptions;
  std::uint64_t served = 0;
  for (SimPool& p : pools_) {
    p.report.cost = p.report.gpu_hours * p.spec->cost_per_gpu_hour;
    ProviderReport& prov = providers_[p.provider];
    prov.gpu_hours += p.report.gpu_hours;
    prov.cost += p.report.cost;
    prov.busy_gpu_hours += p.report.busy_gpu_hours;
    prov.served += p.report.served;
    served += p.report.served;
    report_.pools.push_back(p.report);
  }
  for (std::size_t mi = 0; mi < models_.size(); ++mi)
    report_.models.push_back(models_[mi].report);
  for (const SimPool& p : pools_)
    providers_[p.provider].peak_gpus += p.report.peak_gpus;
  for (ProviderReport& prov : providers_) {
    prov.served_share =
        served > 0 ? static_cast<double>(prov.served) / static_cast<double>(served) : 0;
    report_.providers.push_back(prov);
  }
}

}  // namespace internal

Result<SimReport> run_simulation(const fleet::FleetSpec& fleet, const WorkloadSpec& workload,
                                 const SimOptions& options) {
  internal::SimRun run(fleet, options);
  SPW_TRY(run.init(workload));
  return run.run();
}

}  // namespace spillway::sim
