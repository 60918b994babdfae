#include "engine/serving_engine.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <utility>

#include "engine/detokenizer.h"
#include "engine/stop_strings.h"

namespace spillway::engine {

struct ServingEngine::Choice {
  Choice(Active& a, std::int32_t i, SeqId s, const SamplingParams& params, const Model& model,
         const EngineRequest& req)
      : request(&a),
        index(i),
        seq(s),
        sampler(params, model.config().n_vocab),
        detok(model.tokenizer(), DetokenizeOptions{.strip_leading_space = req.strip_leading_space}),
        stops(req.stop) {
    sampler.add_prompt(req.prompt);
  }
  Active* request;
  std::int32_t index;
  SeqId seq;
  Sampler sampler;
  StreamingDetokenizer detok;
  StopMatcher stops;
  std::int32_t generated = 0;
  bool done = false;
  std::optional<TimePoint> last_token;
};

struct ServingEngine::Active {
  EngineRequest req;
  std::shared_ptr<RequestStream> stream;
  TimePoint arrival;
  bool admitted = false;
  bool first_token = false;
  std::int32_t open = 0;
  std::int32_t cached_prompt_tokens = 0;
  std::int32_t prompt_scored = 1;  // prompt_logprobs: the next prompt position to score.
  std::vector<std::unique_ptr<Choice>> choices;
};

struct ServingEngine::Metrics {
  std::unique_ptr<MetricsRegistry> own;  // When the caller gave no registry.
  Gauge* running = nullptr;
  Gauge* waiting = nullptr;
  Gauge* kv_usage = nullptr;
  Gauge* kv_used = nullptr;
  Gauge* kv_total = nullptr;
  Counter* prompt_tokens = nullptr;
  Counter* generation_tokens = nullptr;
  Counter* prefix_queries = nullptr;
  Counter* prefix_hits = nullptr;
  Counter* preemptions = nullptr;
  Counter* finished[4] = {};
  Histogram* ttft = nullptr;
  Histogram* itl = nullptr;
  Histogram* e2e = nullptr;
  Histogram* queue = nullptr;
  SchedulerStats reported;  // Scheduler counters already added to the registry.
};

namespace {

double seconds(Nanos d) {
  return std::chrono::duration<double>(d).count();
}

constexpr std::int64_t kMiB = 1 << 20;
constexpr std::int64_t kMaxKvCacheMib = std::int64_t{1} << 40;  // Keeps MiB * kMiB in range.

}  // namespace

Result<std::unique_ptr<ServingEngine>> ServingEngine::create(const Model& model,
                                                             const ServingOptions& options,
                                                             MetricsRegistry* metrics,
                                                             const Clock* clock) {
  const ModelConfig& config = model.config();
  if (options.threads < 1 || options.threads > 512) {
    return make_error(ErrorCode::kInvalidArgument, "threads must be in [1, 512] (got {})",
                      options.threads);
  }
  if (options.context < 0) {
    return make_error(ErrorCode::kInvalidArgument, "context must be >= 0 (got {})",
                      options.context);
  }
  if (options.max_waiting < 0 || options.max_n < 1 || options.max_stop_strings < 0 ||
      options.max_stop_bytes < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "max_waiting must be >= 0, max_n >= 1, max_stop_strings >= 0 and "
                      "max_stop_bytes >= 1");
  }
  if (options.kv_cache_blocks < 0 || options.kv_cache_tokens < 0 || options.kv_cache_mib < 0) {
    return make_error(ErrorCode::kInvalidArgument, "the KV cache size must not be negative");
  }
  if (options.kv_cache_mib > kMaxKvCacheMib) {
    return make_error(ErrorCode::kOutOfRange, "kv_cache_mib must be at most {} (got {})",
                      kMaxKvCacheMib, options.kv_cache_mib);
  }
  if (options.block_tokens < 1 || options.block_tokens > 4096) {
    return make_error(ErrorCode::kInvalidArgument, "block_tokens must be in [1, 4096] (got {})",
                      options.block_tokens);
  }
  SPW_TRY(check_kv_type(config, options.kv_type));
  const std::int32_t context =
      options.context == 0 ? config.n_ctx_train : std::min(options.context, config.n_ctx_train);
  const std::size_t block_bytes = KvCache::bytes_per_token(config, options.kv_type) *
                                  static_cast<std::size_t>(options.block_tokens);
  std::int64_t blocks = options.kv_cache_blocks;
  if (blocks == 0 && options.kv_cache_tokens > 0) {
    blocks = options.kv_cache_tokens / options.block_tokens +
             (options.kv_cache_tokens % options.block_tokens != 0 ? 1 : 0);
  }
  if (blocks == 0) {
    blocks = options.kv_cache_mib * kMiB / static_cast<std::int64_t>(block_bytes);
    if (blocks < 1) {
      return make_error(ErrorCode::kInvalidArgument,
                        "a KV cache of {} MiB holds no block of {} tokens ({} bytes each)",
                        options.kv_cache_mib, options.block_tokens, block_bytes);
    }
  }
  if (blocks > (1 << 24)) {
    return make_error(ErrorCode::kOutOfRange, "{} KV-cache blocks is beyond the limit of {}",
                      blocks, 1 << 24);
  }
  SchedulerOptions sched;
  sched.num_blocks = static_cast<std::int32_t>(blocks);
  sched.block_tokens = options.block_tokens;
  sched.max_batch_tokens = options.max_batch_tokens;
  sched.max_running = options.max_running;
  sched.max_context = context;
  // No step computes more positions than max_batch_tokens, so no more rows are ever needed.
  sched.max_prompt_logits_tokens =
      std::min(options.max_prompt_logprob_tokens, options.max_batch_tokens);
  SPW_TRY(validate_scheduler_options(sched));
  SPW_ASSIGN_OR_RETURN(KvCache cache, KvCache::create(config, {options.block_tokens,
                                                               sched.num_blocks, options.kv_type}));
  static const SteadyClock steady;
  return std::unique_ptr<ServingEngine>(new ServingEngine(model, options, context, std::move(cache),
                                                          sched, metrics, clock ? *clock : steady));
}

ServingEngine::ServingEngine(const Model& model, const ServingOptions& options,
                             std::int32_t context, KvCache cache, const SchedulerOptions& sched,
                             MetricsRegistry* metrics, const Clock& clock)
    : model_(model),
      options_(options),
      context_(context),
      clock_(clock),
      cache_(std::move(cache)),
      pool_(options.threads),
      forward_(model, cache_, pool_, options.max_batch_tokens),
      scheduler_(sched),
      logits_((static_cast<std::size_t>(options.max_running) +
               static_cast<std::size_t>(sched.max_prompt_logits_tokens)) *
              static_cast<std::size_t>(model.config().n_vocab)),
      metrics_(std::make_unique<Metrics>()) {
  if (metrics == nullptr) {
    metrics_->own = std::make_unique<MetricsRegistry>();
    metrics = metrics_->own.get();
  }
  register_metrics(*metrics);
  stats_.kv_blocks_total = sched.num_blocks;
  update_gauges();
  thread_ = std::thread([this] { run(); });
}

ServingEngine::~ServingEngine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    accepting_ = false;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ServingEngine::register_metrics(MetricsRegistry& m) {
  Metrics& x = *metrics_;
  x.running = &m.gauge("spillway:num_requests_running", "Requests with sequences in the batch.");
  x.waiting = &m.gauge("spillway:num_requests_waiting", "Requests waiting to be admitted.");
  x.kv_usage = &m.gauge("spillway:kv_cache_usage_perc",
                        "Fraction of KV-cache blocks referenced by sequences (0 to 1).");
  x.kv_used = &m.gauge("spillway:kv_cache_blocks_used", "KV-cache blocks referenced.");
  x.kv_total = &m.gauge("spillway:kv_cache_blocks_total", "KV-cache blocks in all.");
  x.prompt_tokens = &m.counter("spillway:prompt_tokens_total", "Prompt tokens admitted.");
  x.generation_tokens = &m.counter("spillway:generation_tokens_total", "Tokens generated.");
  x.prefix_queries = &m.counter("spillway:prefix_cache_queries_total",
                                "Prompt tokens looked up in the prefix cache.");
  x.prefix_hits =
      &m.counter("spillway:prefix_cache_hits_total", "Prompt tokens found in the prefix cache.");
  x.preemptions = &m.counter("spillway:num_preemptions_total",
                             "Sequences preempted (to be recomputed) for lack of KV blocks.");
  for (const FinishReason r : {FinishReason::kStop, FinishReason::kLength, FinishReason::kCancelled,
                               FinishReason::kError}) {
    x.finished[static_cast<int>(r)] =
        &m.counter("spillway:request_success_total", "Requests finished, by finish reason.",
                   {{"finished_reason", std::string(finish_reason_name(r))}});
  }
  x.ttft = &m.histogram("spillway:time_to_first_token_seconds",
                        "From submission to the first generated token.", latency_buckets_seconds());
  x.itl = &m.histogram("spillway:inter_token_latency_seconds",
                       "Between consecutive tokens of a sequence.", latency_buckets_seconds());
  x.e2e = &m.histogram("spillway:e2e_request_latency_seconds",
                       "From submission to the last choice's end.", latency_buckets_seconds());
  x.queue = &m.histogram("spillway:request_queue_time_seconds",
                         "From submission to admission into the batch.", latency_buckets_seconds());
}

Result<std::shared_ptr<RequestStream>> ServingEngine::submit(EngineRequest request) {
  const std::int32_t n_vocab = model_.config().n_vocab;
  if (request.n < 1 || request.n > options_.max_n) {
    return make_error(ErrorCode::kInvalidArgument, "n must be in [1, {}] (got {})", options_.max_n,
                      request.n);
  }
  const std::int32_t min_tokens = request.prompt_logprobs ? 0 : 1;
  if (request.max_tokens < min_tokens) {
    return make_error(ErrorCode::kInvalidArgument, "max_tokens must be at least {} (got {})",
                      min_tokens, request.max_tokens);
  }
  if (request.prompt_top_logprobs < 0 || request.prompt_top_logprobs > 20) {
    return make_error(ErrorCode::kInvalidArgument,
                      "prompt_top_logprobs = {} is out of range [0, 20]",
                      request.prompt_top_logprobs);
  }
  if (request.prompt.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "the prompt has no tokens");
  }
  for (const std::int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) {
      return make_error(ErrorCode::kInvalidArgument,
                        "prompt token id {} is outside the vocabulary (size {})", t, n_vocab);
    }
  }
  SPW_TRY(validate_sampling_params(request.sampling));
  if (static_cast<std::int64_t>(request.stop.size()) > options_.max_stop_strings) {
    return make_error(ErrorCode::kInvalidArgument, "at most {} stop strings are allowed (got {})",
                      options_.max_stop_strings, request.stop.size());
  }
  for (const std::string& s : request.stop) {
    if (s.empty() || static_cast<std::int64_t>(s.size()) > options_.max_stop_bytes) {
      return make_error(ErrorCode::kInvalidArgument,
                        "each stop string must have 1 to {} bytes (got {})",
                        options_.max_stop_bytes, s.size());
    }
  }
  // A prompt only scored (max_tokens 0) still computes one position past the prompt's logits.
  const std::int64_t total =
      static_cast<std::int64_t>(request.prompt.size()) + std::max(request.max_tokens, 1);
  if (total > context_) {
    return make_error(ErrorCode::kOutOfRange,
                      "this model's maximum context length is {} tokens; the request asks for {} "
                      "({} in the prompt, {} to generate)",
                      context_, total, request.prompt.size(), request.max_tokens);
  }
  const std::int64_t capacity = static_cast<std::int64_t>(scheduler_.options().num_blocks) *
                                scheduler_.options().block_tokens;
  if (total > capacity) {
    return make_error(ErrorCode::kOutOfRange,
                      "the request needs {} tokens of KV cache but the whole cache holds {}", total,
                      capacity);
  }

  auto active = std::make_shared<Active>();
  active->stream = std::make_shared<RequestStream>(request.id, request.n);
  active->arrival = clock_.now();
  active->open = request.n;
  active->req = std::move(request);
  auto stream = active->stream;
  {
    std::lock_guard lock(mu_);
    if (!accepting_) {
      return make_error(ErrorCode::kUnavailable, "the engine is shutting down");
    }
    if (queued_ >= options_.max_waiting) {
      return make_error(ErrorCode::kResourceExhausted,
                        "the waiting queue is full ({} requests); retry later", queued_);
    }
    ++queued_;
    ++in_flight_;
    inbox_.push_back(std::move(active));
  }
  wake_.notify_one();
  return stream;
}

EngineStats ServingEngine::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void ServingEngine::cancel_all() {
  {
    std::lock_guard lock(mu_);
    cancel_all_ = true;
  }
  wake_.notify_one();
}

void ServingEngine::stop_accepting() {
  std::lock_guard lock(mu_);
  accepting_ = false;
}

bool ServingEngine::wait_idle(std::chrono::nanoseconds timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout,
                           [&] { return in_flight_ == 0 && published_in_flight_ == 0; });
}

void ServingEngine::run() {
  std::vector<std::shared_ptr<Active>> incoming;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (active_.empty()) {
        wake_.wait(lock, [&] { return stopping_ || !inbox_.empty(); });
      }
      if (stopping_) break;
      incoming.swap(inbox_);
    }
    for (auto& a : incoming)
      admit(a);
    incoming.clear();
    const TimePoint now = clock_.now();
    sweep_cancelled(now);
    bool progressed = false;
    if (scheduler_.num_running() + scheduler_.num_waiting() > 0) progressed = step(now);
    if (!progressed && !active_.empty()) {
      // Nothing could run (cannot happen with a consistent scheduler); avoid a hot spin while
      // still noticing cancellations and deadlines.
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(1));
    }
    std::erase_if(active_, [](const std::shared_ptr<Active>& a) { return a->open == 0; });
    update_gauges();
  }
  // Shutting down: everything still here, admitted or not, ends as cancelled.
  {
    std::lock_guard lock(mu_);
    incoming.swap(inbox_);
  }
  for (auto& a : incoming)
    admit(a);
  const Status bye = make_error(ErrorCode::kCancelled, "the engine is shutting down");
  for (auto& a : active_) {
    for (auto& c : a->choices)
      finish_choice(*c, FinishReason::kCancelled, bye, "");
  }
  active_.clear();
  update_gauges();
}

void ServingEngine::admit(const std::shared_ptr<Active>& a) {
  const EngineRequest& r = a->req;
  const std::uint64_t arrival = next_arrival_++;
  std::string ns = r.cache_namespace;
  // An empty namespace is private to the request (its n choices still share the prompt).
  if (ns.empty()) ns = fmt::format("\x01request-{}", arrival);
  const SeqId first = next_seq_;
  active_.push_back(a);
  for (std::int32_t i = 0; i < r.n; ++i) {
    const SeqId seq = next_seq_++;
    SamplingParams params = r.sampling;
    params.seed += static_cast<std::uint64_t>(i);
    auto choice = std::make_unique<Choice>(*a, i, seq, params, model_, r);
    SequenceSpec spec;
    spec.id = seq;
    spec.priority = r.priority;
    spec.arrival = arrival;
    spec.cache_namespace = ns;
    spec.prompt = r.prompt;
    spec.max_new_tokens = std::max(r.max_tokens, 1);
    spec.wait_for = i == 0 ? -1 : first;
    spec.prompt_logits = r.prompt_logprobs && i == 0;  // Siblings reuse its prompt blocks.
    Status added = scheduler_.add(std::move(spec));
    Choice& c = *choice;
    a->choices.push_back(std::move(choice));
    if (!added.ok()) {
      finish_choice(c, FinishReason::kError, std::move(added), "");
      continue;
    }
    by_seq_.emplace(seq, &c);
  }
}

void ServingEngine::sweep_cancelled(TimePoint now) {
  bool everything = false;
  {
    std::lock_guard lock(mu_);
    everything = std::exchange(cancel_all_, false);
  }
  if (everything) {
    const Status why = make_error(ErrorCode::kUnavailable, "the server is shutting down");
    for (auto& a : active_) {
      for (auto& c : a->choices)
        finish_choice(*c, FinishReason::kCancelled, why, "");
    }
  }
  for (auto& a : active_) {
    if (a->open == 0) continue;
    Status why;
    if (a->stream->cancel_requested()) {
      why = make_error(ErrorCode::kCancelled, "the request was cancelled");
    } else if (a->req.deadline && now >= *a->req.deadline) {
      why = make_error(ErrorCode::kDeadlineExceeded, "the request's deadline passed");
    } else {
      continue;
    }
    for (auto& c : a->choices)
      finish_choice(*c, FinishReason::kCancelled, why, "");
  }
}

bool ServingEngine::step(TimePoint now) {
  const StepPlan plan = scheduler_.schedule();
  if (plan.empty()) return false;
  std::vector<BatchToken> batch;
  std::vector<std::span<const std::int32_t>> tables;
  batch.reserve(static_cast<std::size_t>(plan.num_tokens));
  tables.reserve(plan.chunks.size());
  for (std::size_t i = 0; i < plan.chunks.size(); ++i) {
    const ScheduledChunk& chunk = plan.chunks[i];
    Choice& c = *by_seq_.at(chunk.id);
    Active& a = *c.request;
    if (!a.admitted) {
      a.admitted = true;
      a.cached_prompt_tokens = chunk.start;
      metrics_->queue->observe(seconds(now - a.arrival));
      metrics_->prompt_tokens->inc(static_cast<double>(a.req.prompt.size()));
      std::lock_guard lock(mu_);
      --queued_;
    }
    tables.push_back(scheduler_.block_table(chunk.id));
    const auto tokens = scheduler_.tokens(chunk.id);
    const auto [lo, hi] = prompt_rows(chunk);
    for (std::int32_t p = chunk.start; p < chunk.start + chunk.count; ++p) {
      const bool last = chunk.want_logits && p == chunk.start + chunk.count - 1;
      batch.push_back({static_cast<std::int32_t>(i), p, tokens[static_cast<std::size_t>(p)],
                       last || (p >= lo && p < hi)});
    }
  }
  const Status ran = forward_.run({batch, tables}, logits_);
  if (!ran.ok()) {
    for (const ScheduledChunk& chunk : plan.chunks) {
      if (Choice* c = by_seq_.contains(chunk.id) ? by_seq_.at(chunk.id) : nullptr) {
        finish_choice(*c, FinishReason::kError, ran, "");
      }
    }
    return true;
  }
  scheduler_.commit(plan);
  {
    std::lock_guard lock(mu_);
    ++stats_.steps;
  }
  const auto n_vocab = static_cast<std::size_t>(model_.config().n_vocab);
  std::size_t row = 0;
  const TimePoint done = clock_.now();
  for (const ScheduledChunk& chunk : plan.chunks) {
    // Rows are in batch order: this chunk's prompt positions, then its last token's.
    const auto [lo, hi] = prompt_rows(chunk);
    if (hi > lo) {
      const std::size_t rows = static_cast<std::size_t>(hi - lo);
      Choice& c = *by_seq_.at(chunk.id);
      const bool open =
          on_prompt_logits(c, lo + 1, std::span(logits_).subspan(row * n_vocab, rows * n_vocab));
      row += rows;
      if (!open) {
        if (chunk.want_logits) ++row;
        continue;
      }
    }
    if (!chunk.want_logits) continue;
    Choice& c = *by_seq_.at(chunk.id);
    on_logits(c, std::span(logits_).subspan(row * n_vocab, n_vocab), done);
    ++row;
  }
  return true;
}

std::pair<std::int32_t, std::int32_t> ServingEngine::prompt_rows(
    const ScheduledChunk& chunk) const {
  const Choice& c = *by_seq_.at(chunk.id);
  const Active& a = *c.request;
  if (!a.req.prompt_logprobs || c.index != 0) return {0, 0};
  // Position p's logits score the prompt token at p + 1.
  const std::int32_t lo = std::max(chunk.start, a.prompt_scored - 1);
  const std::int32_t hi =
      std::min(chunk.start + chunk.count, static_cast<std::int32_t>(a.req.prompt.size()) - 1);
  return hi > lo ? std::pair(lo, hi) : std::pair(0, 0);
}

namespace {
// True when no logit is NaN or infinite (exponent bits all ones); a branch-free integer
// reduction, so it vectorizes.
bool all_finite(std::span<const float> logits) {
  std::uint32_t bad = 0;
  for (const float x : logits) {
    const auto bits = std::bit_cast<std::uint32_t>(x);
    bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}
}  // namespace

bool ServingEngine::on_prompt_logits(Choice& c, std::int32_t first, std::span<const float> rows) {
  Active& a = *c.request;
  const auto n_vocab = static_cast<std::size_t>(model_.config().n_vocab);
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::kPromptLogprobs;
  ev.index = 0;
  ev.first_position = first;
  ev.prompt_logprobs.reserve(rows.size() / n_vocab);
  for (std::size_t r = 0; r < rows.size() / n_vocab; ++r) {
    const auto logits = rows.subspan(r * n_vocab, n_vocab);
    if (!all_finite(logits)) {
      const Status why = make_error(ErrorCode::kInternal,
                                    "the model produced non-finite logits at prompt position {} "
                                    "(corrupt weights or a numerical overflow)",
                                    first + static_cast<std::int32_t>(r) - 1);
      for (auto& choice : a.choices)
        finish_choice(*choice, FinishReason::kError, why, "");
      return false;
    }
    const std::int32_t position = first + static_cast<std::int32_t>(r);
    ev.prompt_logprobs.push_back(score_token(logits,
                                             a.req.prompt[static_cast<std::size_t>(position)],
                                             a.req.prompt_top_logprobs, scratch_));
  }
  a.prompt_scored = first + static_cast<std::int32_t>(ev.prompt_logprobs.size());
  a.stream->push(std::move(ev));
  return true;
}

void ServingEngine::on_logits(Choice& c, std::span<float> logits, TimePoint now) {
  Active& a = *c.request;
  if (a.req.max_tokens == 0) {
    // The prompt is scored (prompt_logprobs): nothing to generate, for any choice. Siblings
    // still waiting for this prompt end too.
    for (auto& choice : a.choices)
      finish_choice(*choice, FinishReason::kLength, Status(), "");
    return;
  }
  // Corrupt weights or an overflow would have the sampler pick garbage: end the choice with
  // an error the client sees instead.
  if (!all_finite(logits)) {
    finish_choice(c, FinishReason::kError,
                  make_error(ErrorCode::kInternal,
                             "the model produced non-finite logits after {} generated tokens "
                             "(corrupt weights or a numerical overflow)",
                             c.generated),
                  "");
    return;
  }
  SampledToken s = c.sampler.sample(logits);
  ++c.generated;
  metrics_->generation_tokens->inc();
  if (!a.first_token) {
    a.first_token = true;
    metrics_->ttft->observe(seconds(now - a.arrival));
  }
  if (c.last_token) metrics_->itl->observe(seconds(now - *c.last_token));
  c.last_token = now;

  auto flushed = [&] {
    if (c.stops.stopped()) return std::string();
    std::string tail = c.stops.push(c.detok.flush());
    return tail + c.stops.flush();
  };
  if (!a.req.ignore_eos && model_.vocab().is_eog(s.token)) {
    finish_choice(c, FinishReason::kStop, Status(), flushed());
    return;
  }
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::kToken;
  ev.index = c.index;
  ev.token = s.token;
  ev.text = c.stops.push(c.detok.push(s.token));
  if (a.req.logprobs) ev.logprob = std::move(s);
  const std::int32_t token = ev.token;
  a.stream->push(std::move(ev));
  if (c.stops.stopped()) {
    finish_choice(c, FinishReason::kStop, Status(), "");
    return;
  }
  if (c.generated >= a.req.max_tokens ||
      static_cast<std::int32_t>(a.req.prompt.size()) + c.generated >= context_) {
    finish_choice(c, FinishReason::kLength, Status(), flushed());
    return;
  }
  scheduler_.append_token(c.seq, token);
}

void ServingEngine::finish_choice(Choice& c, FinishReason reason, Status status, std::string tail) {
  if (c.done) return;
  c.done = true;
  scheduler_.finish(c.seq);
  by_seq_.erase(c.seq);
  Active& a = *c.request;
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::kFinish;
  ev.index = c.index;
  ev.text = std::move(tail);
  ev.finish = reason;
  ev.status = std::move(status);
  ev.prompt_tokens = static_cast<std::int32_t>(a.req.prompt.size());
  ev.cached_prompt_tokens = a.cached_prompt_tokens;
  ev.completion_tokens = c.generated;
  a.stream->push(std::move(ev));
  if (--a.open > 0) return;
  metrics_->e2e->observe(seconds(clock_.now() - a.arrival));
  metrics_->finished[static_cast<int>(reason)]->inc();
  std::lock_guard lock(mu_);
  if (!a.admitted) --queued_;
  --in_flight_;
}

void ServingEngine::update_gauges() {
  std::int32_t running = 0;
  for (const auto& a : active_) {
    if (a->open == 0) continue;
    for (const auto& c : a->choices) {
      if (!c->done && scheduler_.is_running(c->seq)) {
        ++running;
        break;
      }
    }
  }
  const BlockPool& pool = scheduler_.pool();
  Metrics& m = *metrics_;
  const SchedulerStats& s = scheduler_.stats();
  m.prefix_queries->inc(
      static_cast<double>(s.prefix_query_tokens - m.reported.prefix_query_tokens));
  m.prefix_hits->inc(static_cast<double>(s.prefix_hit_tokens - m.reported.prefix_hit_tokens));
  m.preemptions->inc(static_cast<double>(s.preemptions - m.reported.preemptions));
  m.reported = s;
  m.kv_used->set(pool.used());
  m.kv_total->set(pool.num_blocks());
  m.kv_usage->set(static_cast<double>(pool.used()) / pool.num_blocks());
  std::lock_guard lock(mu_);
  stats_.running = running;
  stats_.waiting = in_flight_ - running;
  stats_.kv_blocks_used = pool.used();
  stats_.kv_blocks_total = pool.num_blocks();
  stats_.scheduler = s;
  m.running->set(stats_.running);
  m.waiting->set(stats_.waiting);
  published_in_flight_ = in_flight_;
  if (in_flight_ == 0) idle_cv_.notify_all();
}

}  // namespace spillway::engine
