// The engine benchmark behind `spillway bench`: prompt processing, single-stream decode and
// batched decode throughput, set against the machine's memory read bandwidth measured in the
// same run (decode of one sequence reads every weight once per token, so
// tokens/s <= bandwidth / weight bytes per token).
//
// Thread-safety: runs alone; uses the threads it is given.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

#include "engine/kv_cache.h"
#include "engine/model.h"

namespace spillway::engine {

struct BenchOptions {
  std::int32_t threads = 1;
  std::int32_t prompt_tokens = 128;
  std::int32_t gen_tokens = 64;
  std::vector<std::int32_t> concurrency = {1, 4, 8, 16};
  std::int32_t repetitions = 3;
  std::size_t probe_bytes = std::size_t{1} << 30;  // Bandwidth probe buffer (>> caches).
  KvType kv_type = KvType::kF16;
};

struct BenchReport {
  double pp_tps = 0;                           // Prompt tokens/s, one prompt.
  double tg_tps = 0;                           // Generated tokens/s, one sequence.
  std::map<std::int32_t, double> concurrency;  // C → aggregate generated tokens/s.
  std::size_t weight_bytes_per_token = 0;
  double read_bandwidth_gbs = 0;    // 1e9 bytes/s, all threads.
  double tg_fraction_of_limit = 0;  // tg_tps * weight bytes / bandwidth.
  std::size_t peak_rss_bytes = 0;   // Of the model runs (before the probe).
  std::string isa;                  // Kernels used, e.g. "avx512".

  // One JSON object with exactly the keys above (isa excluded).
  [[nodiscard]] std::string to_json() const;
  [[nodiscard]] std::string to_text() const;
};

// Errors: kInvalidArgument for out-of-range options (all counts >= 1, prompt + generated
// tokens within the model's context).
[[nodiscard]] Result<BenchReport> run_benchmark(const Model& model, const BenchOptions& options);

// Streaming-read bandwidth over a `bytes` buffer with `threads` threads, best of `rounds`, in
// 1e9 bytes/s.
[[nodiscard]] double measure_read_bandwidth_gbs(std::size_t bytes, std::int32_t threads,
                                                std::int32_t rounds);

// Peak resident set size of this process so far (VmHWM), in bytes; 0 if unknown.
[[nodiscard]] std::size_t peak_rss_bytes();

}  // namespace spillway::engine
