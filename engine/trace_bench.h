// `spillway bench --trace`: replays a request trace (core/request_trace.h) against the serving
// core in real time and reports throughput and latency percentiles as a client sees them.
//
// Each trace row becomes one request: ContextTokens prompt tokens (random ids, seeded, after an
// optional shared prefix that stands for a common system prompt, so the prefix cache has
// something to find), exactly GeneratedTokens generated (EOS ignored), both multiplied by
// `length_scale` (so a CPU keeps up) and clipped to fit the context. Arrival times are the
// trace's, compressed so the mean rate is `rate` requests/s when rate > 0; a trace without times
// gets Poisson arrivals at `rate`.
//
// Thread-safety: runs alone.
#pragma once

#include <cstdint>
#include <string>

#include "core/request_trace.h"
#include "core/status.h"

#include "engine/model.h"
#include "engine/serving_engine.h"

namespace spillway::engine {

struct TraceBenchOptions {
  ServingOptions serving;
  double rate = 0;            // Requests/s; 0 = the trace's own times.
  double duration_s = 60;     // Replay the requests arriving in the first S seconds.
  double length_scale = 1.0;  // Multiplies prompt and generated lengths (minimum 1 each).
  std::int32_t shared_prefix_tokens = 0;  // Common prompt prefix (same cache namespace).
  std::int32_t max_requests = 100000;
  std::uint64_t seed = 1;
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;
};

struct TraceBenchReport {
  std::int64_t requests = 0;      // Replayed.
  std::int64_t completed = 0;     // Finished with stop or length.
  std::int64_t rejected = 0;      // submit() refused (queue full, too long).
  double wall_s = 0;              // First arrival to last finish.
  double request_throughput = 0;  // Completed requests/s.
  double output_tps = 0;          // Generated tokens/s.
  double total_tps = 0;           // Prompt + generated tokens/s.
  Percentiles ttft_s, tpot_s, e2e_s;
  double prefix_hit_rate = 0;  // Prompt tokens found cached / prompt tokens looked up.
  std::uint64_t preemptions = 0;
  std::size_t peak_rss_bytes = 0;

  [[nodiscard]] std::string to_json() const;
  [[nodiscard]] std::string to_text() const;
};

// Errors: kInvalidArgument for bad options or a trace without requests in the window.
[[nodiscard]] Result<TraceBenchReport> run_trace_benchmark(const Model& model,
                                                           const RequestTrace& trace,
                                                           const TraceBenchOptions& options);

}  // namespace spillway::engine
