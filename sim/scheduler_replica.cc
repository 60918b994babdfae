#include "sim/scheduler_replica.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/scheduler.h"

namespace spillway::sim {
namespace {

// Synthetic token ids. Shared-prefix tokens are a function of (prefix_id, position) only, in
// [0, 2^30); every other token is a function of (request id, position), in [2^30, 2^31), so a
// request's own tokens never match another request's prefix. The namespace separates caches
// in the scheduler itself (SequenceSpec::cache_namespace).
constexpr std::uint64_t kTokenMask = (1u << 30) - 1;

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::int32_t prefix_token(std::uint64_t prefix_id, std::int32_t position) {
  const std::uint64_t h = mix(mix(prefix_id) ^ static_cast<std::uint64_t>(position));
  return static_cast<std::int32_t>(h & kTokenMask);
}

std::int32_t own_token(RequestId id, std::int32_t position) {
  const std::uint64_t h =
      mix(mix(id ^ 0x5bd1e9955bd1e995ull) + static_cast<std::uint64_t>(position));
  return static_cast<std::int32_t>((1u << 30) | (h & kTokenMask));
}

// The scheduler runs higher values first; fleet::Priority lists interactive (0) first.
std::int32_t scheduler_priority(fleet::Priority p) {
  return fleet::kNumPriorities - 1 - static_cast<std::int32_t>(p);
}

Status validate_config(const ReplicaConfig& c) {
  if (c.kv_blocks < 1) {
    return make_error(ErrorCode::kInvalidArgument, "replica kv_blocks must be at least 1 (got {})",
                      c.kv_blocks);
  }
  if (c.max_waiting < 0) {
    return make_error(ErrorCode::kInvalidArgument, "replica max_waiting must be >= 0 (got {})",
                      c.max_waiting);
  }
  if (c.max_context < 0) {
    return make_error(ErrorCode::kInvalidArgument, "replica max_context must be >= 0 (got {})",
                      c.max_context);
  }
  return Status();
}

class SchedulerReplica final : public ReplicaModel {
 public:
  SchedulerReplica(const PerfModel& perf, const ReplicaConfig& config,
                   const engine::SchedulerOptions& options)
      : perf_(perf),
        config_(config),
        options_(options),
        scheduler_(std::make_unique<engine::Scheduler>(options)) {}

  Status submit(const SimRequest& request, Nanos now) override;
  std::optional<Nanos> next_event_time() const override {
    if (!step_) return std::nullopt;
    return step_->end;
  }
  void advance(Nanos t, ReplicaEventSink& sink) override;
  std::vector<RequestId> fail_all() override;
  bool cancel(RequestId id) override;
  ReplicaLoad load() const override;
  const ReplicaStats& stats() const override { return stats_; }

 private:
  struct Live {
    std::int32_t prompt_tokens = 0;
    std::int32_t output_tokens = 0;
    std::int32_t generated = 0;
    bool admitted = false;  // Has been in a step (the engine's queue bound counts the others).
  };
  struct Step {
    engine::StepPlan plan;
    StepShape shape;
    Nanos start{0};
    Nanos end{0};
  };

  // `after_idle`: the replica had no request in flight (the engine's step thread was asleep).
  void start_step(Nanos at, bool after_idle);
  void complete_step(ReplicaEventSink& sink);
  void sync_scheduler_stats();

  const PerfModel& perf_;
  ReplicaConfig config_;
  engine::SchedulerOptions options_;
  std::unique_ptr<engine::Scheduler> scheduler_;
  std::unordered_map<RequestId, Live> live_;  // Lookups only; never iterated into output.
  std::optional<Step> step_;
  Nanos now_{0};  // The latest time seen: a step end, a submit or an advance.
  std::uint64_t next_arrival_ = 0;
  std::int32_t queued_ = 0;         // Requests never admitted yet: what max_waiting bounds.
  engine::SchedulerStats retired_;  // Of schedulers dropped by fail_all().
  ReplicaStats stats_;
};

Status SchedulerReplica::submit(const SimRequest& request, Nanos now) {
  SPW_TRY(validate_sim_request(request));
  // Never-fits before queue-full: a retry would not help.
  const std::int64_t total = std::int64_t{request.prompt_tokens} + request.output_tokens;
  if (total > options_.max_context) {
    return make_error(ErrorCode::kOutOfRange,
                      "request {} needs {} positions; the replica's context is {}", request.id,
                      total, options_.max_context);
  }
  const std::int64_t blocks = (total + options_.block_tokens - 1) / options_.block_tokens;
  if (blocks > options_.num_blocks) {
    return make_error(ErrorCode::kOutOfRange, "request {} needs {} KV blocks; the replica has {}",
                      request.id, blocks, options_.num_blocks);
  }
  if (request.id > static_cast<RequestId>(std::numeric_limits<engine::SeqId>::max())) {
    return make_error(ErrorCode::kInvalidArgument, "request id {} is beyond the replica's range",
                      request.id);
  }
  if (live_.contains(request.id)) {
    return make_error(ErrorCode::kInvalidArgument, "request {} is already on this replica",
                      request.id);
  }
  if (queued_ >= config_.max_waiting) {
    return make_error(ErrorCode::kResourceExhausted, "the replica's queue is full ({} waiting)",
                      queued_);
  }
  engine::SequenceSpec spec;
  spec.id = static_cast<engine::SeqId>(request.id);
  spec.priority = scheduler_priority(request.priority);
  spec.arrival = next_arrival_;
  spec.cache_namespace = request.cache_namespace;
  spec.max_new_tokens = request.output_tokens;
  spec.prompt.resize(static_cast<std::size_t>(request.prompt_tokens));
  for (std::int32_t p = 0; p < request.prompt_tokens; ++p) {
    spec.prompt[static_cast<std::size_t>(p)] =
        p < request.prefix_tokens ? prefix_token(request.prefix_id, p) : own_token(request.id, p);
  }
  // The serving engine's step thread sleeps while no request is in flight; this one wakes it.
  const bool was_idle = live_.empty();
  SPW_TRY(scheduler_->add(std::move(spec)));
  ++next_arrival_;
  live_.emplace(request.id, Live{request.prompt_tokens, request.output_tokens, 0, false});
  ++queued_;
  now_ = std::max(now_, now);
  if (!step_) start_step(now_, was_idle);
  return Status();
}

void SchedulerReplica::start_step(Nanos at, bool after_idle) {
  engine::StepPlan plan = scheduler_->schedule();
  sync_scheduler_stats();
  if (plan.empty()) return;
  StepShape shape;
  shape.after_idle = after_idle;
  for (const engine::ScheduledChunk& c : plan.chunks) {
    Live& r = live_.at(static_cast<RequestId>(c.id));
    if (!r.admitted) {
      r.admitted = true;
      --queued_;
    }
    const std::int64_t start = c.start;
    const std::int64_t count = c.count;
    if (count == 1 && c.start >= scheduler_->prompt_length(c.id)) {
      ++shape.decode_tokens;
    } else {
      shape.prefill_tokens += count;
    }
    // Position p attends to positions [0, p]: p + 1 of them.
    shape.attended_positions += count * start + count * (count + 1) / 2;
    shape.kv_positions += start + count;
  }
  // A step takes time; a zero-length one would let time stand still.
  const Nanos duration = std::max(perf_.step_time(shape), Nanos{1});
  step_ = Step{std::move(plan), shape, at, at + duration};
}

void SchedulerReplica::complete_step(ReplicaEventSink& sink) {
  Step step = std::move(*step_);
  step_.reset();
  now_ = std::max(now_, step.end);
  scheduler_->commit(step.plan);
  ++stats_.steps;
  stats_.busy += step.end - step.start;
  stats_.prefill_tokens += static_cast<std::uint64_t>(step.shape.prefill_tokens);
  stats_.decode_tokens += static_cast<std::uint64_t>(step.shape.decode_tokens);

  // (id, 0) = first token, (id, 1) = finished: reported in id order, first token first.
  std::vector<std::pair<RequestId, int>> events;
  std::vector<RequestId> done;
  for (const engine::ScheduledChunk& c : step.plan.chunks) {
    if (!c.want_logits) continue;
    const auto id = static_cast<RequestId>(c.id);
    Live& r = live_.at(id);
    ++r.generated;
    if (r.generated == 1) events.emplace_back(id, 0);
    if (r.generated >= r.output_tokens) {
      events.emplace_back(id, 1);
      done.push_back(id);
    } else {
      scheduler_->append_token(c.id, own_token(id, r.prompt_tokens + r.generated - 1));
    }
  }
  std::sort(events.begin(), events.end());
  for (const auto& [id, kind] : events) {
    if (kind == 0) {
      sink.on_first_token(id, step.end);
    } else {
      sink.on_finished(id, step.end);
    }
  }
  for (const RequestId id : done) {
    scheduler_->finish(static_cast<engine::SeqId>(id));
    live_.erase(id);
  }
  start_step(step.end, false);
}

void SchedulerReplica::advance(Nanos t, ReplicaEventSink& sink) {
  while (step_ && step_->end <= t)
    complete_step(sink);
  now_ = std::max(now_, t);
}

std::vector<RequestId> SchedulerReplica::fail_all() {
  std::vector<RequestId> ids;
  ids.reserve(live_.size());
  for (const auto& [id, r] : live_)
    ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  live_.clear();
  queued_ = 0;
  step_.reset();
  // A crashed replica loses its cache too: start from an empty scheduler.
  const engine::SchedulerStats& s = scheduler_->stats();
  retired_.prefix_query_tokens += s.prefix_query_tokens;
  retired_.prefix_hit_tokens += s.prefix_hit_tokens;
  retired_.computed_tokens += s.computed_tokens;
  retired_.preemptions += s.preemptions;
  scheduler_ = std::make_unique<engine::Scheduler>(options_);
  sync_scheduler_stats();
  return ids;
}

bool SchedulerReplica::cancel(RequestId id) {
  const auto it = live_.find(id);
  if (it == live_.end()) return false;
  if (!it->second.admitted) --queued_;
  live_.erase(it);
  const auto seq = static_cast<engine::SeqId>(id);
  scheduler_->finish(seq);
  // The step in flight still takes its time, but nothing of the request is committed.
  if (step_) std::erase_if(step_->plan.chunks, [&](const auto& c) { return c.id == seq; });
  return true;
}

ReplicaLoad SchedulerReplica::load() const {
  ReplicaLoad l;
  l.running = scheduler_->num_running();
  l.waiting = scheduler_->num_waiting();
  const engine::BlockPool& pool = scheduler_->pool();
  l.kv_usage = static_cast<double>(pool.used()) / pool.num_blocks();
  return l;
}

void SchedulerReplica::sync_scheduler_stats() {
  const engine::SchedulerStats& s = scheduler_->stats();
  stats_.prefix_query_tokens = retired_.prefix_query_tokens + s.prefix_query_tokens;
  stats_.prefix_hit_tokens = retired_.prefix_hit_tokens + s.prefix_hit_tokens;
  stats_.preemptions = retired_.preemptions + s.preemptions;
}

}  // namespace

Result<std::unique_ptr<ReplicaModel>> make_scheduler_replica(const PerfModel& perf,
                                                             const ReplicaConfig& config) {
  SPW_TRY(validate_config(config));
  engine::SchedulerOptions options;
  options.num_blocks = config.kv_blocks;
  options.block_tokens = config.block_tokens;
  options.max_batch_tokens = config.max_batch_tokens;
  options.max_running = config.max_running;
  options.max_context = config.max_context > 0 ? config.max_context : perf.model().n_ctx;
  if (Status ok = engine::validate_scheduler_options(options); !ok.ok()) {
    return make_error(ok.error().code(), "replica config: {}", ok.error().message());
  }
  return std::unique_ptr<ReplicaModel>(new SchedulerReplica(perf, config, options));
}

}  // namespace spillway::sim
