// Attention kernel throughput over an F16 KV cache (KernelTable::scores_f16, softmax,
// weighted_sum_f16; "attention/...") and a Q8_0 one (scores_q8_0, weighted_sum_q8_0;
// "attention-q8_0/...") for one token and one KV head of a TinyLlama-shaped model (head_dim 64,
// 8 query heads per KV head), per kernel level and context length, with the group's query
// heads passed together ("grouped": each K and V row converted once for all of them) or one
// at a time ("per-head"), in one binary so they compare within one run.
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
#include "engine/quant.h"

namespace spillway::engine {
namespace {

constexpr std::int64_t kHeadDim = 64;
constexpr std::int32_t kGroup = 8;
constexpr std::int64_t kBlockTokens = 16;

// A cache row type: its units per head row, how a slot's float values are stored, and the
// kernels over it.
struct F16Rows {
  using Row = std::uint16_t;
  static constexpr std::int64_t kUnits = kHeadDim;
  static void store(const float* x, Row* row, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i)
      row[i] = fp32_to_fp16(x[i]);
  }
  static constexpr auto scores(const KernelTable& k) { return k.scores_f16; }
  static constexpr auto weighted_sum(const KernelTable& k) { return k.weighted_sum_f16; }
};

struct Q8_0Rows {
  using Row = BlockQ8_0;
  static constexpr std::int64_t kUnits = kHeadDim / kQK8_0;
  static void store(const float* x, Row* row, std::int64_t n) {
    quantize_row(GgmlType::kQ8_0, x, row, n);
  }
  static constexpr auto scores(const KernelTable& k) { return k.scores_q8_0; }
  static constexpr auto weighted_sum(const KernelTable& k) { return k.weighted_sum_q8_0; }
};

template <typename Rows>
void run_attention(benchmark::State& state, IsaLevel level, std::int64_t positions, bool grouped) {
  using Row = typename Rows::Row;
  // K and V alternate in a cache slot, for 4 KV heads: one row to the next is 8 head rows.
  constexpr std::int64_t kSlotStride = 2 * 4 * Rows::kUnits;
  const KernelTable& kernels = kernel_table(level);
  const auto scores_kernel = Rows::scores(kernels);
  const auto weighted_sum_kernel = Rows::weighted_sum(kernels);
  const std::int64_t blocks = (positions + kBlockTokens - 1) / kBlockTokens;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<Row> cache(static_cast<std::size_t>(blocks * kBlockTokens * kSlotStride));
  std::vector<float> values(8 * kHeadDim);
  for (std::int64_t slot = 0; slot < blocks * kBlockTokens; ++slot) {
    for (float& x : values)
      x = u(rng);
    Rows::store(values.data(), cache.data() + slot * kSlotStride, 8 * kHeadDim);
  }
  std::vector<const Row*> k_table(static_cast<std::size_t>(blocks)),
      v_table(static_cast<std::size_t>(blocks));
  for (std::int64_t b = 0; b < blocks; ++b) {  // Blocks in reverse order, as a table may have.
    const Row* block = cache.data() + (blocks - 1 - b) * kBlockTokens * kSlotStride;
    k_table[static_cast<std::size_t>(b)] = block;
    v_table[static_cast<std::size_t>(b)] = block + 4 * Rows::kUnits;
  }
  const KvRowsOf<Row> k{k_table.data(), kBlockTokens, kSlotStride, positions};
  const KvRowsOf<Row> v{v_table.data(), kBlockTokens, kSlotStride, positions};
  std::vector<float> q(kGroup * kHeadDim), out(kGroup * kHeadDim);
  for (float& x : q)
    x = u(rng);
  std::vector<float> scores(static_cast<std::size_t>(kGroup * positions));
  const float scale = 0.125f;
  for (auto _ : state) {
    if (grouped) {
      scores_kernel(q.data(), kGroup, kHeadDim, scale, k, scores.data(), positions);
    } else {
      for (std::int32_t h = 0; h < kGroup; ++h) {
        scores_kernel(q.data() + h * kHeadDim, 1, kHeadDim, scale, k, scores.data() + h * positions,
                      positions);
      }
    }
    for (std::int32_t h = 0; h < kGroup; ++h)
      kernels.softmax(scores.data() + h * positions, positions);
    if (grouped) {
      weighted_sum_kernel(scores.data(), positions, kGroup, v, kHeadDim, out.data());
    } else {
      for (std::int32_t h = 0; h < kGroup; ++h) {
        weighted_sum_kernel(scores.data() + h * positions, positions, 1, v, kHeadDim,
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
    for (bool q8_0 : {false, true}) {
      for (std::int64_t positions : {192, 1024}) {
        for (bool grouped : {true, false}) {
          const std::string name =
              std::string(q8_0 ? "attention-q8_0/" : "attention/") + std::string(isa_name(level)) +
              "/" + (grouped ? "grouped" : "per-head") + "/positions:" + std::to_string(positions);
          benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
            if (q8_0) {
              run_attention<Q8_0Rows>(state, level, positions, grouped);
            } else {
              run_attention<F16Rows>(state, level, positions, grouped);
            }
          })->Unit(benchmark::kMicrosecond);
        }
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
