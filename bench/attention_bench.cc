// Attention kernel throughput over an F16 KV cache (KernelTable::scores_f16, softmax,
// weighted_sum_f16) for one token and one KV head of a TinyLlama-shaped model (head_dim 64,
// 8 query heads per KV head), per kernel level and context length, with the group's query
// heads passed together ("grouped": each K and V row converted once for all of them) or one
// at a time ("per-head"), in one binary so the two compare within one run.
//   pos (shown as pos/s): positions attended per second, summed over the group's heads.
//
// Usage: attention_bench [--benchmark_filter=avx512] (Google Benchmark flags).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/half.h"
#include "engine/kernels.h"
#include "engine/kv_rows.h"

namespace spillway::engine {
namespace {

constexpr std::int64_t kHeadDim = 64;
constexpr std::int32_t kGroup = 8;
constexpr std::int64_t kBlockTokens = 16;
// K and V alternate in a cache slot, for 4 KV heads: one row to the next is 8 head rows.
constexpr std::int64_t kSlotStride = 2 * 4 * kHeadDim;

void run_attention(benchmark::State& state, IsaLevel level, std::int64_t positions, bool grouped) {
  const KernelTable& kernels = kernel_table(level);
  const std::int64_t blocks = (positions + kBlockTokens - 1) / kBlockTokens;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<std::uint16_t> cache(static_cast<std::size_t>(blocks * kBlockTokens * kSlotStride));
  for (std::uint16_t& h : cache)
    h = fp32_to_fp16(u(rng));
  std::vector<const std::uint16_t*> k_table(static_cast<std::size_t>(blocks)),
      v_table(static_cast<std::size_t>(blocks));
  for (std::int64_t b = 0; b < blocks; ++b) {  // Blocks in reverse order, as a table may have.
    const std::uint16_t* block = cache.data() + (blocks - 1 - b) * kBlockTokens * kSlotStride;
    k_table[static_cast<std::size_t>(b)] = block;
    v_table[static_cast<std::size_t>(b)] = block + 4 * kHeadDim;
  }
  const KvRows k{k_table.data(), kBlockTokens, kSlotStride, positions};
  const KvRows v{v_table.data(), kBlockTokens, kSlotStride, positions};
  std::vector<float> q(kGroup * kHeadDim), out(kGroup * kHeadDim);
  for (float& x : q)
    x = u(rng);
  std::vector<float> scores(static_cast<std::size_t>(kGroup * positions));
  const float scale = 0.125f;
  for (auto _ : state) {
    if (grouped) {
      kernels.scores_f16(q.data(), kGroup, kHeadDim, scale, k, scores.data(), positions);
    } else {
      for (std::int32_t h = 0; h < kGroup; ++h) {
        kernels.scores_f16(q.data() + h * kHeadDim, 1, kHeadDim, scale, k,
                           scores.data() + h * positions, positions);
      }
    }
    for (std::int32_t h = 0; h < kGroup; ++h)
      kernels.softmax(scores.data() + h * positions, positions);
    if (grouped) {
      kernels.weighted_sum_f16(scores.data(), positions, kGroup, v, kHeadDim, out.data());
    } else {
      for (std::int32_t h = 0; h < kGroup; ++h) {
        kernels.weighted_sum_f16(scores.data() + h * positions, positions, 1, v, kHeadDim,
                                 out.data() + h * kHeadDim);
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["pos"] = benchmark::Counter(
      static_cast<double>(positions * kGroup * state.iterations()), benchmark::Counter::kIsRate);
}

void register_all() {
  const IsaLevel top = max_isa(detect_cpu_features());
  for (IsaLevel level : {IsaLevel::kAvx512, IsaLevel::kAvx2, IsaLevel::kScalar}) {
    if (static_cast<int>(level) > static_cast<int>(top)) continue;
    for (std::int64_t positions : {192, 1024}) {
      for (bool grouped : {true, false}) {
        const std::string name = "attention/" + std::string(isa_name(level)) + "/" +
                                 (grouped ? "grouped" : "per-head") +
                                 "/positions:" + std::to_string(positions);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
          run_attention(state, level, positions, grouped);
        })->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

}  // namespace
}  // namespace spillway::engine

int main(int argc, char** argv) {
  using namespace spillway::engine;
  std::printf("%s\n", describe_cpu(detect_cpu_features(), selected_isa()).c_str());
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
