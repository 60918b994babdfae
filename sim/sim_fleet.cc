// The simulated fleet: pools, replicas, placement (fleet::choose_pool), autoscaling
// (fleet::Autoscaler) and fleet events. Part of SimRun (sim/sim_run.h).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "sim/sim_run.h"

namespace spillway::sim::internal {

namespace {

fleet::ReplicaView base_view(const SimReplica& r, const fleet::ModelSpec& model,
                             const fleet::PoolSpec& pool, fleet::ReplicaState state) {
  fleet::ReplicaView v;
  v.id = r.id;
  v.model = model.name;
  v.provider = pool.provider;
  v.region = pool.region;
  v.pool = pool.name;
  v.state = state;
  v.rtt_ms = pool.rtt_ms;
  v.cost_per_gpu_hour = pool.cost_per_gpu_hour;
  v.capacity = pool.capacity;
  return v;
}

// Removes slot `slot` of (views, owners) by swapping in the last one; returns the replica
// that moved into `slot`, if any.
std::optional<std::size_t> swap_remove(std::vector<fleet::ReplicaView>& views,
                                       std::vector<std::size_t>& owners, std::size_t slot) {
  const std::size_t last = views.size() - 1;
  std::optional<std::size_t> moved;
  if (slot != last) {
    views[slot] = std::move(views[last]);
    owners[slot] = owners[last];
    moved = owners[slot];
  }
  views.pop_back();
  owners.pop_back();
  return moved;
}

}  // namespace

Status SimRun::setup_pools() {
  std::map<std::string, GpuProfile, std::less<>> overrides;
  for (const GpuProfile& g : options_.gpu_profiles)
    overrides[g.name] = g;
  for (const fleet::PoolSpec* spec : fleet_.pools()) {
    SimPool pool;
    pool.spec = spec;
    for (std::size_t i = 0; i < providers_.size(); ++i) {
      if (providers_[i].name == spec->provider) pool.provider = i;
    }
    if (providers_.empty() || providers_[pool.provider].name != spec->provider) {
      providers_.push_back(ProviderReport{});
      providers_.back().name = spec->provider;
      pool.provider = providers_.size() - 1;
    }
    if (auto it = overrides.find(spec->gpu); it != overrides.end()) {
      pool.gpu = it->second;
    } else if (auto builtin = builtin_gpu_profile(spec->gpu); builtin.ok()) {
      pool.gpu = *builtin;
    } else if (spec->accepts_inference()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "pool '{}': unknown GPU '{}' (built-in: {}; or pass --gpu-profile FILE)",
                        spec->name, spec->gpu, fmt::join(builtin_gpu_profile_names(), ", "));
    }
    pool.report.name = spec->name;
    pool.report.provider = spec->provider;
    pool.report.region = spec->region;
    pool.report.gpu = spec->gpu;
    pool.report.capacity = std::string(fleet::capacity_kind_name(spec->capacity));
    pool.report.gpus = spec->gpus;
    pool_by_name_[spec->name] = pools_.size();
    pools_.push_back(std::move(pool));
  }
  return Status();
}

Result<ModelProfile> resolve_model_profile(const fleet::ModelSpec& model) {
  std::error_code ec;
  if (!model.path.empty() && std::filesystem::is_regular_file(model.path, ec)) {
    auto profile = model_profile_from_gguf(model.path);
    if (!profile.ok()) {
      return make_error(profile.error().code(), "model '{}': {}", model.name,
                        profile.error().message());
    }
    return profile;
  }
  auto builtin = builtin_model_profile(model.name);
  if (builtin.ok()) return builtin;
  return make_error(ErrorCode::kNotFound,
                    "model '{}': no file at '{}' and no built-in shape of that name (built-in: {})",
                    model.name, model.path, fmt::join(builtin_model_profile_names(), ", "));
}

Status SimRun::setup_models() {
  for (const fleet::ModelSpec& spec : fleet_.models) {
    SimModel m;
    m.spec = &spec;
    SPW_ASSIGN_OR_RETURN(m.profile, resolve_model_profile(spec));
    m.autoscaler = std::make_unique<fleet::Autoscaler>(spec, options_.autoscaler, clock_);
    m.queue = std::make_unique<fleet::AdmissionQueue>(options_.queue_capacity);
    m.report.name = spec.name;
    model_by_name_[spec.name] = models_.size();
    models_.push_back(std::move(m));
  }
  perf_.resize(pools_.size() * models_.size());
  kv_blocks_.assign(pools_.size() * models_.size(), -1);
  return Status();
}

Status SimRun::check_events() {
  for (const FleetEventSpec& e : options_.events) {
    if (e.kind == FleetEventSpec::Kind::kCrash) continue;
    auto it = pool_by_name_.find(e.pool);
    if (it == pool_by_name_.end()) {
      return make_error(ErrorCode::kInvalidArgument, "--event {}:{}: no pool named '{}'",
                        fleet_event_kind_name(e.kind), e.pool, e.pool);
    }
    if (e.kind == FleetEventSpec::Kind::kSpotPreempt &&
        pools_[it->second].spec->capacity != fleet::CapacityKind::kSpot) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--event spot-preempt:{}: the pool's capacity is '{}', not spot", e.pool,
                        fleet::capacity_kind_name(pools_[it->second].spec->capacity));
    }
  }
  return Status();
}

const PerfModel* SimRun::perf_for(std::size_t pool, std::size_t model) {
  std::unique_ptr<PerfModel>& slot = perf_[pool * models_.size() + model];
  if (!slot) {
    const auto tp = static_cast<std::int32_t>(models_[model].spec->gpus_per_replica);
    slot = std::make_unique<PerfModel>(*pools_[pool].gpu, models_[model].profile, tp);
  }
  return slot.get();
}

std::int32_t SimRun::kv_blocks_for(std::size_t pool, std::size_t model) {
  std::int32_t& blocks = kv_blocks_[pool * models_.size() + model];
  if (blocks < 0) {
    if (!pools_[pool].gpu) {
      blocks = 0;
    } else if (options_.replica.kv_blocks > 0) {
      blocks = options_.replica.kv_blocks;
    } else {
      blocks = perf_for(pool, model)
                   ->kv_cache_blocks(options_.replica.block_tokens, options_.kv_memory_fraction);
    }
  }
  return blocks;
}

Nanos SimRun::cold_start_of(std::size_t model, std::size_t /*pool*/) const {
  if (options_.cold_start) return *options_.cold_start;
  const double tp = static_cast<double>(models_[model].spec->gpus_per_replica);
  const double load_s = models_[model].profile.weight_bytes() / (tp * options_.load_bytes_per_s);
  return options_.cold_start_fixed + Nanos{static_cast<std::int64_t>(load_s * 1e9)};
}

bool SimRun::place_replica(std::size_t model, bool warm) {
  SimModel& m = models_[model];
  // Pools placement may not use for this model: down, or the model does not fit there.
  std::set<std::string> excluded;
  for (std::size_t p = 0; p < pools_.size(); ++p) {
    if (pools_[p].down > 0 || !pools_[p].spec->accepts_inference() ||
        kv_blocks_for(p, model) <= 0) {
      excluded.insert(pools_[p].spec->name);
    }
  }
  auto chosen = fleet::choose_pool(fleet_, *m.spec, used_, m.placed, excluded);
  if (!chosen.ok()) {
    ++m.report.placement_failures;
    return false;
  }
  const std::size_t pool = pool_by_name_.find(*chosen)->second;
  ReplicaConfig config = options_.replica;
  config.kv_blocks = kv_blocks_for(pool, model);
  if (config.max_context == 0)
    config.max_context = static_cast<std::int32_t>(m.spec->context_tokens);
  auto impl = make_replica_model(replica_kind_, *perf_for(pool, model), config);
  if (!impl.ok()) {
    ++m.report.placement_failures;
    return false;
  }
  const std::size_t index = replicas_.size();
  SimReplica r;
  r.id = fmt::format("{}-r{}", *chosen, next_replica_seq_++);
  r.model = model;
  r.pool = pool;
  r.impl = std::move(*impl);
  r.since = now_;
  r.phase = ReplicaPhase::kStarting;
  r.placed_slot = m.placed.size();
  m.placed.push_back(base_view(r, *m.spec, *pools_[pool].spec, fleet::ReplicaState::kStarting));
  m.placed_replica.push_back(index);
  replica_by_id_[r.id] = index;
  replicas_.push_back(std::move(r));
  used_[*chosen] += m.spec->gpus_per_replica;
  ++m.active;
  ++m.holding;
  m.report.peak_replicas = std::max(m.report.peak_replicas, m.holding);
  SimPool& sp = pools_[pool];
  ++sp.holding;
  sp.holding_gpus += m.spec->gpus_per_replica;
  sp.report.peak_replicas = std::max(sp.report.peak_replicas, sp.holding);
  sp.report.peak_gpus = std::max(sp.report.peak_gpus, sp.holding_gpus);
  if (warm) {
    make_ready(index);
  } else {
    events_.push(now_ + cold_start_of(model, pool), EventKind::kReplicaReady, index);
  }
  return true;
}

void SimRun::make_ready(std::size_t r) {
  SimReplica& rep = replicas_[r];
  if (rep.phase != ReplicaPhase::kStarting) return;  // Lost while starting.
  rep.phase = ReplicaPhase::kReady;
  SimModel& m = models_[rep.model];
  m.placed[rep.placed_slot].state = fleet::ReplicaState::kReady;
  rep.view_slot = m.views.size();
  m.views.push_back(base_view(rep, *m.spec, *pools_[rep.pool].spec, fleet::ReplicaState::kReady));
  m.view_replica.push_back(r);
  m.queue_dirty = true;
}

void SimRun::leave_ready(std::size_t r) {
  SimReplica& rep = replicas_[r];
  if (rep.phase != ReplicaPhase::kReady) return;
  SimModel& m = models_[rep.model];
  if (auto moved = swap_remove(m.views, m.view_replica, rep.view_slot)) {
    replicas_[*moved].view_slot = rep.view_slot;
  }
}

void SimRun::refresh_view(std::size_t r) {
  const SimReplica& rep = replicas_[r];
  fleet::ReplicaView& v = models_[rep.model].views[rep.view_slot];
  const ReplicaLoad load = rep.impl->load();
  v.running = load.running;
  v.waiting = load.waiting;
  v.kv_usage = load.kv_usage;
}

void SimRun::stop_replica(std::size_t r) {
  SimReplica& rep = replicas_[r];
  if (rep.phase == ReplicaPhase::kStopped) return;
  leave_ready(r);
  SimModel& m = models_[rep.model];
  if (rep.phase == ReplicaPhase::kStarting || rep.phase == ReplicaPhase::kReady) --m.active;
  --m.holding;
  if (auto moved = swap_remove(m.placed, m.placed_replica, rep.placed_slot)) {
    replicas_[*moved].placed_slot = rep.placed_slot;
  }
  rep.phase = ReplicaPhase::kStopped;
  SimPool& pool = pools_[rep.pool];
  --pool.holding;
  pool.holding_gpus -= m.spec->gpus_per_replica;
  used_[pool.spec->name] -= m.spec->gpus_per_replica;
  const double gpus = static_cast<double>(m.spec->gpus_per_replica);
  const ReplicaStats& stats = rep.impl->stats();
  pool.report.gpu_hours += to_seconds(now_ - rep.since) * gpus / 3600;
  pool.report.busy_gpu_hours += to_seconds(stats.busy) * gpus / 3600;
  retired_stats_.prefill_tokens += stats.prefill_tokens;
  retired_stats_.decode_tokens += stats.decode_tokens;
  retired_stats_.prefix_query_tokens += stats.prefix_query_tokens;
  retired_stats_.prefix_hit_tokens += stats.prefix_hit_tokens;
  retired_stats_.preemptions += stats.preemptions;
  rep.impl.reset();
  ++rep.generation;  // Its pending step event, if any, is stale now.
  rep.scheduled.reset();
}

void SimRun::lose_replica(std::size_t r) {
  SimReplica& rep = replicas_[r];
  if (rep.phase == ReplicaPhase::kStopped) return;
  std::vector<RequestId> lost = rep.impl->fail_all();
  rep.inflight = 0;
  stop_replica(r);
  requests_lost(r, lost);
}

void SimRun::drain_replica(std::size_t r) {
  SimReplica& rep = replicas_[r];
  if (rep.phase == ReplicaPhase::kStarting) {
    stop_replica(r);
    return;
  }
  if (rep.phase != ReplicaPhase::kReady) return;
  leave_ready(r);
  --models_[rep.model].active;
  rep.phase = ReplicaPhase::kDraining;
  SimModel& m = models_[rep.model];
  m.placed[rep.placed_slot].state = fleet::ReplicaState::kDraining;
  if (rep.inflight == 0) stop_replica(r);
}

void SimRun::schedule_replica(std::size_t r) {
  SimReplica& rep = replicas_[r];
  if (!rep.impl) return;
  std::optional<Nanos> next = rep.impl->next_event_time();
  if (next && *next < now_) next = now_;
  if (next == rep.scheduled) return;
  ++rep.generation;
  rep.scheduled = next;
  if (next) events_.push(*next, EventKind::kReplicaStep, r, rep.generation);
}

void SimRun::advance_replica(std::size_t r, Nanos t) {
  SimReplica& rep = replicas_[r];
  if (!rep.impl) return;
  rep.impl->advance(t, *this);
  if (rep.phase == ReplicaPhase::kReady || rep.phase == ReplicaPhase::kDraining) {
    models_[rep.model].queue_dirty = true;
  }
}

void SimRun::place_initial() {
  if (options_.start == StartReplicas::kMin) {
    for (std::size_t m = 0; m < models_.size(); ++m) {
      for (std::int64_t i = 0; i < models_[m].spec->min_replicas; ++i) {
        if (!place_replica(m, /*warm=*/true)) break;
      }
    }
  } else {
    // Fill: the model with the fewest GPUs per unit of demand gets the next replica.
    std::vector<bool> done(models_.size(), false);
    for (;;) {
      std::optional<std::size_t> pick;
      double best = std::numeric_limits<double>::infinity();
      for (std::size_t m = 0; m < models_.size(); ++m) {
        const SimModel& sm = models_[m];
        if (done[m] || sm.demand_weight <= 0) continue;
        if (sm.holding >= sm.spec->max_replicas) continue;
        const double gpus = static_cast<double>(sm.holding * sm.spec->gpus_per_replica);
        const double score = gpus / sm.demand_weight;
        if (score < best) {
          best = score;
          pick = m;
        }
      }
      if (!pick) break;
      if (!place_replica(*pick, /*warm=*/true)) done[*pick] = true;
    }
    // Every model gets at least min_replicas when the pools allow it.
    for (std::size_t m = 0; m < models_.size(); ++m) {
      while (models_[m].holding < models_[m].spec->min_replicas) {
        if (!place_replica(m, /*warm=*/true)) break;
      }
    }
  }
  for (SimModel& m : models_) {
    m.report.initial_replicas = m.holding;
    m.target = m.holding;
    m.report.placement_failures = 0;  // Filling ends with a failure by design.
  }
}

void SimRun::autoscale_tick() {
  for (std::size_t mi = 0; mi < models_.size(); ++mi) {
    SimModel& m = models_[mi];
    if (options_.autoscale) {
      fleet::AutoscaleSample sample;
      double kv_sum = 0;
      for (std::size_t slot = 0; slot < m.views.size(); ++slot) {
        const ReplicaLoad load = replicas_[m.view_replica[slot]].impl->load();
        sample.waiting += load.waiting;
        kv_sum += load.kv_usage;
      }
      sample.replicas = static_cast<std::int64_t>(m.views.size());
      if (sample.replicas > 0) sample.kv_usage = kv_sum / static_cast<double>(sample.replicas);
      sample.ttft_p50_s = to_seconds(m.ttft_window.quantile(0.5));
      m.ttft_window.clear();
      const std::int64_t before = m.target;
      m.target = m.autoscaler->observe(sample);
      if (m.target > before) m.report.scale_outs += static_cast<std::uint64_t>(m.target - before);
      if (m.target < before) m.report.scale_ins += static_cast<std::uint64_t>(before - m.target);
    }
    reconcile(mi);
  }
}

void SimRun::reconcile(std::size_t model) {
  SimModel& m = models_[model];
  while (m.active < m.target) {
    if (!place_replica(model, /*warm=*/false)) break;
  }
  while (m.active > m.target) {
    // Newest starting replica first (it serves nobody yet), else the least-loaded ready one.
    std::optional<std::size_t> victim;
    for (std::size_t i = m.placed_replica.size(); i-- > 0;) {
      const std::size_t r = m.placed_replica[i];
      if (replicas_[r].phase == ReplicaPhase::kStarting && (!victim || r > *victim)) victim = r;
    }
    if (!victim) {
      std::int64_t best = std::numeric_limits<std::int64_t>::max();
      for (const std::size_t r : m.view_replica) {
        const ReplicaLoad load = replicas_[r].impl->load();
        const std::int64_t l = load.running + load.waiting;
        if (l < best || (l == best && r < *victim)) {
          best = l;
          victim = r;
        }
      }
    }
    if (!victim) break;
    drain_replica(*victim);
  }
}

void SimRun::fleet_event(std::size_t index, bool end) {
  const FleetEventSpec& e = options_.events[index];
  if (e.kind == FleetEventSpec::Kind::kCrash) {
    const auto r = static_cast<std::size_t>(e.replica_index);
    if (r < replicas_.size() && replicas_[r].phase != ReplicaPhase::kStopped) {
      ++report_.crashes;
      lose_replica(r);
    }
    return;
  }
  SimPool& pool = pools_[pool_by_name_.find(e.pool)->second];
  if (end) {
    --pool.down;
    return;
  }
  ++pool.down;
  const std::size_t pool_index = pool_by_name_.find(e.pool)->second;
  for (std::size_t r = 0; r < replicas_.size(); ++r) {
    if (replicas_[r].pool == pool_index && replicas_[r].phase != ReplicaPhase::kStopped) {
      ++report_.replicas_lost;
      lose_replica(r);
    }
  }
}

}  // namespace spillway::sim::internal
