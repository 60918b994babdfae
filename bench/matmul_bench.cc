// Matmul kernel throughput for a TinyLlama-sized FFN matrix (cols 2048, rows 5632: ggml shape
// {2048, 5632}) per weight type, kernel level (with "-panels": on the repacked layout of
// engine/quant_repack.h), batch size (1: decode, 16: a decode batch, 128: a prompt) and thread
// count.
//   GB (shown as GB/s): weight bytes streamed per second (n = 1 is a pure streaming read).
//   tok (shown as tok/s): input vectors per second through this one matrix.
// Enough copies of the matrix are cycled that the weights never sit in cache (>= 256 MB),
// as in decode, where each token reads every weight once.
//
// Usage: matmul_bench [--benchmark_filter=q8_0/avx512] (Google Benchmark flags).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/ggml_type.h"
#include "engine/kernels.h"
#include "engine/matmul.h"
#include "engine/quant.h"
#include "engine/quant_repack.h"
#include "engine/thread_pool.h"

namespace spillway::engine {
namespace {

constexpr std::int64_t kCols = 2048;
constexpr std::int64_t kRows = 5632;
constexpr std::size_t kMinBytes = std::size_t{256} << 20;

struct Weights {
  std::vector<std::byte> bytes;
  std::vector<Matrix> copies;
  std::vector<PanelBuffer> panels;  // One per copy, for types with a panel layout.
};

// Random weights of `type`, replicated to at least kMinBytes.
const Weights& weights(GgmlType type) {
  static std::unique_ptr<Weights> cache[32];
  auto& slot = cache[static_cast<std::size_t>(type) % 32];
  if (slot) return *slot;
  slot = std::make_unique<Weights>();
  const std::size_t row_bytes = *ggml_row_bytes(type, kCols);
  const std::size_t matrix_bytes = row_bytes * kRows;
  const std::size_t copies = (kMinBytes + matrix_bytes - 1) / matrix_bytes;
  slot->bytes.resize(matrix_bytes * copies);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> row(kCols);
  for (std::int64_t r = 0; r < kRows; ++r) {
    for (float& v : row)
      v = u(rng);
    quantize_row(type, row.data(), slot->bytes.data() + static_cast<std::size_t>(r) * row_bytes,
                 kCols);
  }
  for (std::size_t c = 1; c < copies; ++c) {
    std::copy_n(slot->bytes.data(), matrix_bytes, slot->bytes.data() + c * matrix_bytes);
  }
  for (std::size_t c = 0; c < copies; ++c) {
    Matrix m;
    m.type = type;
    m.cols = kCols;
    m.rows = kRows;
    m.row_bytes = row_bytes;
    m.data = slot->bytes.data() + c * matrix_bytes;
    m.name = "bench";
    if (has_panel_layout(type)) {
      slot->panels.push_back(PanelBuffer::allocate(panel_layout_bytes(type, kCols, kRows)));
      repack_to_panels(type, m.data, kCols, kRows, slot->panels.back().data());
      m.panels = slot->panels.back().data();
    }
    slot->copies.push_back(m);
  }
  return *slot;
}

// `panels`: the repacked layout (engine/quant_repack.h) instead of the file's row layout.
void run_matmul(benchmark::State& state, GgmlType type, IsaLevel level, std::int64_t n, int threads,
                bool panels) {
  const Weights& w = weights(type);
  ThreadPool pool(threads);
  MatmulScratch scratch(threads, kCols, n);
  std::vector<float> x(static_cast<std::size_t>(n * kCols));
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : x)
    v = u(rng);
  std::vector<float> y(static_cast<std::size_t>(n * kRows));
  const KernelTable& kernels = kernel_table(level);
  std::size_t next = 0;
  for (auto _ : state) {
    Matrix m = w.copies[next];
    if (!panels) m.panels = nullptr;
    matmul(pool, scratch, kernels, m, x.data(), n, y.data());
    next = (next + 1) % w.copies.size();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(w.copies[0].row_bytes) * kRows;
  state.counters["GB"] = benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9,
                                            benchmark::Counter::kIsRate);
  state.counters["tok"] =
      benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
}

// Anchor for the GB/s figures: a plain streaming read (sum of a 1 GiB float buffer, 256-bit
// loads), split over the same pool, measured in the same run as the kernels.
__attribute__((target("avx2"))) float sum_floats(const float* p, std::int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (std::int64_t i = 0; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_add_ps(acc[k], _mm256_loadu_ps(p + i + 8 * k));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes,
                  _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  float s = 0.0f;
  for (float v : lanes)
    s += v;
  return s;
}

void read_bandwidth(benchmark::State& state, int threads) {
  static std::vector<float> buffer(std::size_t{1} << 28, 1.0f);  // 1 GiB.
  ThreadPool pool(threads);
  const auto n = static_cast<std::int64_t>(buffer.size());
  float sums[64] = {};
  for (auto _ : state) {
    pool.run([&](int thread, int count) {
      const std::int64_t begin = n * thread / count / 32 * 32;
      const std::int64_t end = n * (thread + 1) / count / 32 * 32;
      sums[thread] += sum_floats(buffer.data() + begin, end - begin);
    });
    benchmark::DoNotOptimize(sums);
  }
  state.counters["GB"] = benchmark::Counter(static_cast<double>(buffer.size() * sizeof(float)) *
                                                static_cast<double>(state.iterations()) / 1e9,
                                            benchmark::Counter::kIsRate);
}

void register_all() {
  if (max_isa(detect_cpu_features()) != IsaLevel::kScalar) {
    for (int threads : {2, 1}) {
      const std::string name = "read_bandwidth/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(),
                                   [=](benchmark::State& state) { read_bandwidth(state, threads); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  const IsaLevel top = max_isa(detect_cpu_features());
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kF16, GgmlType::kBF16,
                        GgmlType::kF32, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (IsaLevel level : {IsaLevel::kAvx512, IsaLevel::kAvx2, IsaLevel::kScalar}) {
      if (static_cast<int>(level) > static_cast<int>(top)) continue;
      for (bool panels : {true, false}) {
        if (panels &&
            (!has_panel_layout(type) || panel_kernel(kernel_table(level), type) == nullptr)) {
          continue;
        }
        for (std::int64_t n : {1, 16, 128}) {
          if (n > 16 && level == IsaLevel::kScalar) continue;  // Minutes per case.
          for (int threads : {2, 1}) {
            const std::string name = "matmul/" + std::string(ggml_type_info(type).name) + "/" +
                                     std::string(isa_name(level)) + (panels ? "-panels" : "") +
                                     "/n:" + std::to_string(n) +
                                     "/threads:" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(),
                                         [=](benchmark::State& state) {
                                           run_matmul(state, type, level, n, threads, panels);
                                         })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
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
