// The serving core of one model replica: many concurrent requests share one forward pass per
// step (continuous batching), one fixed paged KV cache with prefix reuse, chunked prefill,
// priorities and preemption (all decided by Scheduler), and one step thread that runs the
// model and streams each request's tokens to its RequestStream.
//
// Memory: the KV cache is allocated once, at create(), and never grows with load; the waiting
// queue is bounded (max_waiting requests), so submit() fails fast with kResourceExhausted
// ("queue full"; HTTP 429) instead of queueing without limit.
//
// Prompt log-probabilities (EngineRequest::prompt_logprobs): the request's first choice
// computes logits at every prompt position and scores each prompt token from the second on
// with the sampler's own log-softmax (score_token), delivered as kPromptLogprobs events
// (request_stream.h) before any generated token, once even across preemption and with n > 1.
// Such a request reuses no cached prefix for its prompt (cached_prompt_tokens is 0), though
// later requests may reuse its blocks. Memory stays fixed: the logits buffer, allocated at
// create(), holds max_running + max_prompt_logprob_tokens rows of n_vocab floats, and the
// scheduler gives such prompts at most max_prompt_logprob_tokens positions per step.
//
// Prefix-cache isolation: a request's blocks are reused only by requests with the same
// `cache_namespace`. The caller sets it: the tenant by default, or a namespace it declares
// shared (public system prompts). An empty namespace gets a private one per request, so
// nothing is ever shared by accident.
//
// Thread-safety: submit(), stats(), stop_accepting() and wait_idle() are safe from any thread.
// Lifetime: the model, clock and metrics registry must outlive the engine; the destructor
// cancels what is still running (finishing each choice with kCancelled) and joins the thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"

#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/request_stream.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/thread_pool.h"

namespace spillway::engine {

struct ServingOptions {
  std::int32_t threads = 1;
  // KV cache size, allocated once: kv_cache_blocks if non-zero, else kv_cache_tokens if
  // non-zero (rounded up to whole blocks), else kv_cache_mib (rounded down to whole blocks).
  std::int64_t kv_cache_mib = 256;
  std::int64_t kv_cache_tokens = 0;
  std::int32_t kv_cache_blocks = 0;
  std::int32_t block_tokens = 16;  // Positions per block, in [1, 4096].
  KvType kv_type = KvType::kF16;
  std::int32_t context = 0;             // Tokens per sequence; 0 = the model's training context.
  std::int32_t max_batch_tokens = 256;  // Tokens per step (decode tokens + prefill chunks).
  std::int32_t max_running = 64;        // Sequences decoding together.
  std::int32_t max_waiting = 256;       // Requests queued before submit() says "queue full".
  std::int32_t max_n = 16;              // Choices per request.
  std::int32_t max_stop_strings = 16;
  std::int32_t max_stop_bytes = 256;  // Per stop string.
  // Prompt positions scored per step for prompt_logprobs requests, >= 1 (at most
  // max_batch_tokens take effect); each takes a logits row of n_vocab floats (file comment).
  std::int32_t max_prompt_logprob_tokens = 64;
};

struct EngineRequest {
  std::string id;                    // For logs and the stream; any string.
  std::vector<std::int32_t> prompt;  // Token ids, BOS included if the model wants one.
  std::int32_t max_tokens = 16;      // Per choice, >= 1 (>= 0 with prompt_logprobs).
  std::int32_t n = 1;                // Choices, sharing the prompt's cache blocks.
  SamplingParams sampling;           // Choice i samples with seed + i.
  bool logprobs = false;             // Attach SampledToken (and sampling.top_logprobs) to tokens.
  // Score the prompt: kPromptLogprobs events with prompt_top_logprobs alternatives per
  // position ([0, 20], as sampling.top_logprobs). With max_tokens 0 the prompt is only scored:
  // every choice then finishes with kLength and no tokens (the prompt plus one token must
  // still fit the context). See the file comment.
  bool prompt_logprobs = false;
  std::int32_t prompt_top_logprobs = 0;
  std::vector<std::string> stop;      // Stop strings (never emitted).
  bool ignore_eos = false;            // Generate exactly max_tokens (benchmarks).
  bool strip_leading_space = false;   // The text starts right after BOS (an empty prompt).
  std::int32_t priority = 0;          // Higher is scheduled first (e.g. 2 interactive, 0 batch).
  std::string cache_namespace;        // See the file comment.
  std::optional<TimePoint> deadline;  // On the engine's clock; cancelled when it passes.
};

struct EngineStats {
  std::int32_t running = 0;  // Requests with at least one sequence in the batch.
  std::int32_t waiting = 0;  // Requests not yet admitted (none of their sequences running).
  std::int32_t kv_blocks_used = 0;
  std::int32_t kv_blocks_total = 0;
  SchedulerStats scheduler;
  std::uint64_t steps = 0;
};

class ServingEngine {
 public:
  // Errors: kInvalidArgument for bad options; kResourceExhausted if the cache does not fit.
  // `metrics` (optional) receives the spillway:* serving metrics; `clock` defaults to the
  // steady clock.
  [[nodiscard]] static Result<std::unique_ptr<ServingEngine>> create(
      const Model& model, const ServingOptions& options, MetricsRegistry* metrics = nullptr,
      const Clock* clock = nullptr);
  ~ServingEngine();
  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  // Queues a request. Errors: kInvalidArgument (bad parameters or token ids), kOutOfRange
  // (prompt + max_tokens beyond the context or the whole cache), kResourceExhausted (the
  // waiting queue is full), kUnavailable (stop_accepting() was called).
  [[nodiscard]] Result<std::shared_ptr<RequestStream>> submit(EngineRequest request);

  [[nodiscard]] EngineStats stats() const;
  [[nodiscard]] const Model& model() const { return model_; }
  [[nodiscard]] std::int32_t context() const { return context_; }
  [[nodiscard]] std::int64_t kv_cache_bytes() const {
    return static_cast<std::int64_t>(cache_.bytes());
  }
  [[nodiscard]] const ServingOptions& options() const { return options_; }

  // New submissions fail with kUnavailable; in-flight requests continue.
  void stop_accepting();
  // Ends every request in flight at the next step: each open choice finishes with kCancelled
  // and a kUnavailable status ("shutting down"). Submissions after this still work unless
  // stop_accepting() was called.
  void cancel_all();
  // Waits until no request is in flight and stats() and the metrics show it, or until
  // `timeout` passes; true if idle.
  [[nodiscard]] bool wait_idle(std::chrono::nanoseconds timeout);

 private:
  struct Choice;
  struct Active;
  ServingEngine(const Model& model, const ServingOptions& options, std::int32_t context,
                KvCache cache, const SchedulerOptions& sched, MetricsRegistry* metrics,
                const Clock& clock);
  void run();
  void take_inbox(std::vector<std::shared_ptr<Active>>& incoming);
  void admit(const std::shared_ptr<Active>& a);
  void sweep_cancelled(TimePoint now);
  // Schedules and runs one step; false if nothing could run.
  bool step(TimePoint now);
  void on_logits(Choice& c, std::span<float> logits, TimePoint now);
  // Scores prompt positions [first, first + rows.size() / n_vocab) of a prompt_logprobs request
  // from the logits rows of the positions before them; false if the request was ended.
  bool on_prompt_logits(Choice& c, std::int32_t first, std::span<const float> rows);
  // The positions [lo, hi) of `chunk` whose logits score prompt tokens ({0, 0} if none).
  [[nodiscard]] std::pair<std::int32_t, std::int32_t> prompt_rows(
      const ScheduledChunk& chunk) const;
  void finish_choice(Choice& c, FinishReason reason, Status status, std::string tail);
  void finish_request_if_done(Active& a);
  void update_gauges();
  void register_metrics(MetricsRegistry& m);

  const Model& model_;
  const ServingOptions options_;
  const std::int32_t context_;
  const Clock& clock_;
  KvCache cache_;
  ThreadPool pool_;
  ForwardPass forward_;
  Scheduler scheduler_;
  std::vector<float> logits_;          // [max_running + max_prompt_logprob_tokens][n_vocab]
  std::vector<std::int32_t> scratch_;  // score_token's, step thread only.

  // Shared with submitters.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_cv_;
  std::vector<std::shared_ptr<Active>> inbox_;
  std::int32_t queued_ = 0;               // Requests submitted and not yet admitted.
  std::int32_t in_flight_ = 0;            // Requests submitted and not finished.
  std::int32_t published_in_flight_ = 0;  // in_flight_ as of the last update_gauges().
  bool accepting_ = true;
  bool cancel_all_ = false;
  bool stopping_ = false;
  EngineStats stats_;

  // Step thread only.
  std::unordered_map<SeqId, Choice*> by_seq_;
  std::vector<std::shared_ptr<Active>> active_;
  SeqId next_seq_ = 0;
  std::uint64_t next_arrival_ = 0;

  struct Metrics;
  std::unique_ptr<Metrics> metrics_;
  std::thread thread_;
};

}  // namespace spillway::engine
