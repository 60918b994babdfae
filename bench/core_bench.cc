// Micro-benchmarks of core paths that sit on every request: metric updates and log formatting.
#include <benchmark/benchmark.h>

#include "core/log.h"
#include "core/metrics.h"

namespace spillway {
namespace {

void BM_HistogramObserve(benchmark::State& state) {
  Histogram h(latency_buckets_seconds());
  double v = 0.0001;
  for (auto _ : state) {
    h.observe(v);
    v = v * 1.7 > 100 ? 0.0001 : v * 1.7;
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

void BM_CounterInc(benchmark::State& state) {
  static Counter c;
  for (auto _ : state)
    c.inc();
  benchmark::DoNotOptimize(c.value());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

void BM_FormatLogLine(benchmark::State& state) {
  for (auto _ : state) {
    std::string line =
        format_log_line(LogFormat::kText, 1700000000123, LogLevel::kInfo, "request finished",
                        {kv("request_id", "req-1"), kv("tokens", 128)});
    benchmark::DoNotOptimize(line);
  }
}
BENCHMARK(BM_FormatLogLine);

}  // namespace
}  // namespace spillway
