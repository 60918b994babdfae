// Simulated requests per second of wall time for the "exact" (engine::Scheduler per step) and
// the "fast" (aggregated decode steps) replica models, at a realistic load: Llama-3-70B on an
// H100 x8 tensor-parallel replica, Poisson arrivals keeping 100-200 sequences in the batch,
// prompts of 600-2000 tokens (a third start with one of four tenants' 512-token system
// prompts), 50-550 output tokens. Counters: requests/s and events/s (replica wake-ups the
// driver handles) of wall time, simulated seconds per run, the mean batch size.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"

#include "sim/perf_model.h"
#include "sim/replica_model.h"

namespace spillway::sim {
namespace {

constexpr int kRequests = 2000;
constexpr double kMeanGapMs = 70;

std::vector<SimRequest> workload() {
  SeededRandom rng(2024);
  std::vector<SimRequest> out;
  Nanos t{0};
  for (int k = 0; k < kRequests; ++k) {
    t += Nanos{static_cast<std::int64_t>(rng.exponential(kMeanGapMs * 1e6))};
    SimRequest r;
    r.id = static_cast<RequestId>(k + 1);
    r.arrival = t;
    const int tenant = static_cast<int>(rng.next_u64() % 4);
    r.tenant = "tenant-" + std::to_string(tenant);
    r.model = "llama-3-70b";
    r.cache_namespace = r.tenant;
    r.prompt_tokens = 600 + static_cast<std::int32_t>(rng.next_u64() % 1401);
    r.output_tokens = 50 + static_cast<std::int32_t>(rng.next_u64() % 501);
    if (rng.next_u64() % 3 == 0) {
      r.prefix_id = static_cast<std::uint64_t>(tenant) + 1;
      r.prefix_tokens = 512;
    }
    out.push_back(std::move(r));
  }
  return out;
}

class NullSink final : public ReplicaEventSink {
 public:
  void on_first_token(RequestId, Nanos) override { ++reports; }
  void on_finished(RequestId, Nanos) override { ++reports; }
  std::uint64_t reports = 0;
};

void run_replica(benchmark::State& state, std::string_view kind) {
  const PerfModel perf(*builtin_gpu_profile("H100"), *builtin_model_profile("llama-3-70b"), 8);
  ReplicaConfig config;
  config.block_tokens = 16;
  config.kv_blocks = perf.kv_cache_blocks(config.block_tokens);
  config.max_batch_tokens = 2048;
  config.max_running = 256;
  config.max_waiting = 4096;
  const std::vector<SimRequest> requests = workload();
  std::uint64_t events = 0;
  double batch_sum = 0;
  std::uint64_t batch_samples = 0;
  Nanos simulated{0};
  for (auto _ : state) {
    auto made = make_replica_model(kind, perf, config);
    if (!made.ok()) {
      state.SkipWithError(made.error().message().c_str());
      return;
    }
    ReplicaModel& m = **made;
    NullSink sink;
    std::size_t i = 0;
    while (true) {
      const std::optional<Nanos> ev = m.next_event_time();
      if (i < requests.size() && (!ev || requests[i].arrival < *ev)) {
        m.advance(requests[i].arrival, sink);
        if (Status st = m.submit(requests[i], requests[i].arrival); !st.ok()) {
          state.SkipWithError(st.error().message().c_str());
          return;
        }
        batch_sum += static_cast<double>(m.load().running);
        ++batch_samples;
        ++i;
      } else if (ev) {
        m.advance(*ev, sink);
        simulated = *ev;
        ++events;
      } else {
        break;
      }
    }
    if (sink.reports != 2 * requests.size()) {
      state.SkipWithError("not every request finished");
      return;
    }
  }
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["requests_per_s"] =
      benchmark::Counter(iterations * kRequests, benchmark::Counter::kIsRate);
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["sim_s"] = to_seconds(simulated);
  state.counters["mean_batch"] = batch_sum / static_cast<double>(batch_samples);
}

void BM_ReplicaExact(benchmark::State& state) {
  run_replica(state, "exact");
}
BENCHMARK(BM_ReplicaExact)->Unit(benchmark::kMillisecond);

void BM_ReplicaFast(benchmark::State& state) {
  run_replica(state, "fast");
}
BENCHMARK(BM_ReplicaFast)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace spillway::sim

BENCHMARK_MAIN();
