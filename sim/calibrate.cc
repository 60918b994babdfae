#include "sim/calibrate.h"

#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <utility>

#include "engine/batch.h"
#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "engine/thread_pool.h"

namespace spillway::sim {
namespace {

constexpr std::int32_t kMaxGridValue = 1 << 16;

Status check_grid(const std::vector<std::int32_t>& values, std::string_view field) {
  if (values.empty() || values.size() > 64) {
    return make_error(ErrorCode::kInvalidArgument, "{}: needs 1 to 64 values (got {})", field,
                      values.size());
  }
  for (const std::int32_t v : values) {
    if (v < 1 || v > kMaxGridValue) {
      return make_error(ErrorCode::kInvalidArgument, "{}: {} is outside [1, {}]", field, v,
                        kMaxGridValue);
    }
  }
  return Status();
}

// Nanoseconds of CPU time the calling thread has used.
std::int64_t thread_cpu_nanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 1e9;
  return static_cast<double>(pages) * static_cast<double>(page);
}

// What a step does, in the units of PerfModel::step_time's terms (tp = 1).
struct StepWork {
  double matmul_flops = 0;
  double attention_flops = 0;
  double weight_bytes = 0;
  double kv_bytes = 0;
};

StepWork work_of(const ModelProfile& m, const StepShape& s) {
  const double tokens = static_cast<double>(s.prefill_tokens + s.decode_tokens);
  const double kv = static_cast<double>(s.kv_positions > 0 ? s.kv_positions : s.attended_positions);
  return {2 * m.params() * tokens,
          4.0 * m.n_layer * m.n_embd * static_cast<double>(s.attended_positions), m.weight_bytes(),
          m.kv_bytes_per_token() * kv};
}

// log10 of the four rates: matrix FLOP/s, attention FLOP/s, weight bytes/s, KV bytes/s.
struct Rates {
  double matmul = 0;
  double attention = 0;
  double weights = 0;
  double kv = 0;
};

struct Fit {
  Rates rates;
  double overhead_s = 0;
  double cost = std::numeric_limits<double>::infinity();
};

// The squared relative error at `rates`, with the best overhead for them: minimizing
// sum ((o + m_i - t_i) / t_i)^2 over o gives o = sum w_i (t_i - m_i) / sum w_i, w_i = 1 / t_i^2,
// clamped at 0.
Fit evaluate(const std::vector<StepWork>& work, const std::vector<double>& measured, Rates r) {
  const double rf = std::pow(10.0, r.matmul);
  const double ra = std::pow(10.0, r.attention);
  const double rw = std::pow(10.0, r.weights);
  const double rk = std::pow(10.0, r.kv);
  auto roofline = [&](const StepWork& w) {
    return std::max(w.matmul_flops / rf + w.attention_flops / ra,
                    w.weight_bytes / rw + w.kv_bytes / rk);
  };
  double num = 0;
  double den = 0;
  for (std::size_t i = 0; i < work.size(); ++i) {
    const double w = 1 / (measured[i] * measured[i]);
    num += w * (measured[i] - roofline(work[i]));
    den += w;
  }
  Fit f;
  f.rates = r;
  f.overhead_s = std::max(0.0, num / den);
  f.cost = 0;
  for (std::size_t i = 0; i < work.size(); ++i) {
    const double e = (f.overhead_s + roofline(work[i]) - measured[i]) / measured[i];
    f.cost += e * e;
  }
  return f;
}

// Weighted least squares for a fixed regime per step (compute- or memory-bound), over
// x = (overhead, 1/matmul rate, 1/attention rate, 1/weight rate, 1/KV rate), all >= 0: a step
// in the compute regime predicts o + Mf x1 + Ma x2, one in the memory regime o + W x3 + K x4.
// Non-negativity by trying every subset of free variables (32 small systems).
constexpr int kVars = 5;
using Vec = std::array<double, kVars>;

std::optional<Vec> solve(std::array<Vec, kVars> a, Vec b, std::uint32_t free_mask) {
  // Gaussian elimination with partial pivoting on the free variables; the others are 0.
  std::array<int, kVars> vars{};
  int n = 0;
  for (int v = 0; v < kVars; ++v) {
    if (free_mask & (1u << v)) vars[n++] = v;
  }
  std::array<std::array<double, kVars + 1>, kVars> m{};
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j)
      m[i][j] = a[vars[i]][vars[j]];
    m[i][n] = b[vars[i]];
  }
  for (int c = 0; c < n; ++c) {
    int pivot = c;
    for (int r = c + 1; r < n; ++r) {
      if (std::abs(m[r][c]) > std::abs(m[pivot][c])) pivot = r;
    }
    if (std::abs(m[pivot][c]) < 1e-300) return std::nullopt;
    std::swap(m[c], m[pivot]);
    for (int r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = m[r][c] / m[c][c];
      for (int k = c; k <= n; ++k)
        m[r][k] -= f * m[c][k];
    }
  }
  Vec x{};
  for (int i = 0; i < n; ++i) {
    x[vars[i]] = m[i][n] / m[i][i];
    if (!(x[vars[i]] >= 0) || !std::isfinite(x[vars[i]])) return std::nullopt;
  }
  return x;
}

// The roofline prediction at x (seconds), and which regime binds.
double predict(const StepWork& w, const Vec& x, bool* compute_bound = nullptr) {
  const double c = w.matmul_flops * x[1] + w.attention_flops * x[2];
  const double m = w.weight_bytes * x[3] + w.kv_bytes * x[4];
  if (compute_bound != nullptr) *compute_bound = c >= m;
  return x[0] + std::max(c, m);
}

double cost_of(const std::vector<StepWork>& work, const std::vector<double>& measured,
               const Vec& x) {
  double cost = 0;
  for (std::size_t i = 0; i < work.size(); ++i) {
    const double e = (predict(work[i], x) - measured[i]) / measured[i];
    cost += e * e;
  }
  return cost;
}

// Alternates: the regimes at x, then the best non-negative x for those regimes, until the
// regimes stop changing. Returns the best x seen.
Vec polish(const std::vector<StepWork>& work, const std::vector<double>& measured, Vec x) {
  Vec best = x;
  double best_cost = cost_of(work, measured, x);
  std::vector<bool> regime(work.size());
  for (int iter = 0; iter < 50; ++iter) {
    bool changed = iter == 0;
    for (std::size_t i = 0; i < work.size(); ++i) {
      bool c = false;
      (void)predict(work[i], x, &c);
      changed = changed || c != regime[i];
      regime[i] = c;
    }
    if (!changed) break;
    std::array<Vec, kVars> a{};
    Vec b{};
    for (std::size_t i = 0; i < work.size(); ++i) {
      const StepWork& w = work[i];
      const Vec row = regime[i] ? Vec{1, w.matmul_flops, w.attention_flops, 0, 0}
                                : Vec{1, 0, 0, w.weight_bytes, w.kv_bytes};
      const double wt = 1 / (measured[i] * measured[i]);
      for (int r = 0; r < kVars; ++r) {
        for (int c = 0; c < kVars; ++c)
          a[r][c] += wt * row[r] * row[c];
        b[r] += wt * row[r] * measured[i];
      }
    }
    std::optional<Vec> next;
    double next_cost = std::numeric_limits<double>::infinity();
    for (std::uint32_t mask = 1; mask < (1u << kVars); ++mask) {
      const std::optional<Vec> y = solve(a, b, mask);
      if (!y) continue;
      // A rate of 0 (an unused term) becomes a tiny cost per unit, so the profile stays valid.
      Vec z = *y;
      for (int v = 1; v < kVars; ++v)
        z[v] = std::max(z[v], 1e-17);
      const double c = cost_of(work, measured, z);
      if (c < next_cost) {
        next_cost = c;
        next = z;
      }
    }
    if (!next) break;
    x = *next;
    if (next_cost < best_cost) {
      best_cost = next_cost;
      best = x;
    }
  }
  return best;
}

// A coarse grid over the four log-rates, each in [6, 16] (from a microcontroller to beyond any
// accelerator), with the best overhead for each point; then, from each of the grid's best few
// points (the cost has local minima), a local grid refinement, both from the point itself and
// from the regime-wise least squares (polish) started there. The best of all wins.
Fit search(const std::vector<StepWork>& work, const std::vector<double>& measured) {
  constexpr int kDims = 4;
  constexpr int kSteps = 10;
  std::vector<Fit> coarse;
  std::array<int, kDims> idx{};
  for (;;) {
    coarse.push_back(
        evaluate(work, measured, Rates{6.0 + idx[0], 6.0 + idx[1], 6.0 + idx[2], 6.0 + idx[3]}));
    int d = 0;
    while (d < kDims && ++idx[d] > kSteps)
      idx[d++] = 0;
    if (d == kDims) break;
  }
  constexpr std::size_t kStarts = 16;
  std::partial_sort(coarse.begin(), coarse.begin() + kStarts, coarse.end(),
                    [](const Fit& a, const Fit& b) { return a.cost < b.cost; });
  // Shrinking 5-point grids in log-rate space around `f` (the overhead in closed form at each
  // point): minimizes the roofline's own cost where the regime-wise polish cannot (steps near
  // the regimes' boundary).
  auto refine = [&](Fit f) {
    double half = 0.5;  // Decades.
    for (int round = 0; round < 30; ++round, half *= 0.6) {
      const Rates at = f.rates;
      for (int i = -2; i <= 2; ++i) {
        for (int j = -2; j <= 2; ++j) {
          for (int k = -2; k <= 2; ++k) {
            for (int l = -2; l <= 2; ++l) {
              const Fit g = evaluate(work, measured,
                                     Rates{at.matmul + half * i / 2, at.attention + half * j / 2,
                                           at.weights + half * k / 2, at.kv + half * l / 2});
              if (g.cost < f.cost) f = g;
            }
          }
        }
      }
    }
    return f;
  };
  Fit best;
  for (std::size_t s = 0; s < kStarts; ++s) {
    const Fit& c = coarse[s];
    const Vec start{c.overhead_s, std::pow(10.0, -c.rates.matmul),
                    std::pow(10.0, -c.rates.attention), std::pow(10.0, -c.rates.weights),
                    std::pow(10.0, -c.rates.kv)};
    const Vec x = polish(work, measured, start);
    // Rates beyond 10^17 only say "this term does not matter"; keep them finite.
    Fit polished =
        evaluate(work, measured,
                 Rates{std::min(-std::log10(x[1]), 17.0), std::min(-std::log10(x[2]), 17.0),
                       std::min(-std::log10(x[3]), 17.0), std::min(-std::log10(x[4]), 17.0)});
    for (const Fit& f : {refine(c), refine(polished)}) {
      if (f.cost < best.cost) best = f;
    }
  }
  return best;
}

// The fastest run: interference from other processes (a shared machine) only adds time.
double fastest(const std::vector<double>& v) {
  return *std::min_element(v.begin(), v.end());
}

}  // namespace

Status validate_calibration_options(const CalibrationOptions& o) {
  if (o.threads < 1 || o.threads > 512) {
    return make_error(ErrorCode::kInvalidArgument, "threads: {} is outside [1, 512]", o.threads);
  }
  SPW_TRY(check_grid(o.decode_batches, "decode_batches"));
  SPW_TRY(check_grid(o.decode_contexts, "decode_contexts"));
  SPW_TRY(check_grid(o.prefill_chunks, "prefill_chunks"));
  if (o.repetitions < 1 || o.repetitions > 1000) {
    return make_error(ErrorCode::kInvalidArgument, "repetitions: {} is outside [1, 1000]",
                      o.repetitions);
  }
  if (o.warmup < 0 || o.warmup > 1000) {
    return make_error(ErrorCode::kInvalidArgument, "warmup: {} is outside [0, 1000]", o.warmup);
  }
  if (o.block_tokens < 1 || o.block_tokens > 4096) {
    return make_error(ErrorCode::kInvalidArgument, "block_tokens: {} is outside [1, 4096]",
                      o.block_tokens);
  }
  if (o.thread_cpu_time && o.threads != 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "thread_cpu_time: needs threads = 1 (got {}): other threads' work would "
                      "not be counted",
                      o.threads);
  }
  if (!(o.memory_bytes >= 0) || !std::isfinite(o.memory_bytes)) {
    return make_error(ErrorCode::kInvalidArgument, "memory_bytes: must be >= 0");
  }
  if (o.name.empty()) return make_error(ErrorCode::kInvalidArgument, "name: empty");
  return Status();
}

double StepMeasurement::relative_error() const {
  if (measured.count() <= 0) return 0;
  return static_cast<double>((fitted - measured).count()) / static_cast<double>(measured.count());
}

std::string CalibrationReport::to_text() const {
  std::string out =
      fmt::format("calibration of {} on {} ({} steps)\n", profile.name, model.name, points.size());
  out += fmt::format("  {:<24} {:>12} {:>12} {:>8}\n", "step", "measured_us", "fitted_us", "error");
  for (const StepMeasurement& p : points) {
    out += fmt::format("  {:<24} {:>12.1f} {:>12.1f} {:>7.1f}%\n", p.label,
                       static_cast<double>(p.measured.count()) / 1e3,
                       static_cast<double>(p.fitted.count()) / 1e3, p.relative_error() * 100);
  }
  out += fmt::format(
      "fit: step_overhead {:.1f} us, matmul {:.3g} FLOP/s, attention {:.3g} FLOP/s, weights "
      "{:.3g} B/s, KV {:.3g} B/s; mean |error| {:.1f}%, max {:.1f}%\n",
      static_cast<double>(profile.step_overhead.count()) / 1e3,
      profile.peak_flops * profile.flops_efficiency,
      profile.peak_flops * profile.effective_attention_efficiency(),
      profile.memory_bandwidth * profile.bandwidth_efficiency,
      profile.memory_bandwidth * profile.effective_kv_bandwidth_efficiency(), mean_abs_error * 100,
      max_abs_error * 100);
  return out;
}

ModelProfile model_profile_of(const engine::Model& model) {
  double bytes = 0;
  double elements = 0;
  auto add = [&](const engine::Matrix& w) {
    bytes += static_cast<double>(w.row_bytes) * static_cast<double>(w.rows);
    elements += static_cast<double>(w.cols) * static_cast<double>(w.rows);
  };
  add(model.token_embd());
  if (model.output().data != model.token_embd().data) add(model.output());
  for (const engine::LayerWeights& l : model.layers()) {
    for (const engine::Matrix* w :
         {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
      add(*w);
    }
  }
  const std::string name = std::filesystem::path(model.path()).stem().string();
  return model_profile_from_config(model.config(), name.empty() ? "model" : name,
                                   elements > 0 ? bytes / elements : 4.0);
}

Result<CalibrationReport> fit_cpu_profile(const ModelProfile& model,
                                          std::vector<StepMeasurement> points,
                                          const GpuProfile& base) {
  SPW_TRY(model.validate());
  if (points.size() < 3) {
    return make_error(ErrorCode::kInvalidArgument, "a fit needs at least 3 steps (got {})",
                      points.size());
  }
  std::vector<StepWork> work;
  std::vector<double> measured;
  for (const StepMeasurement& p : points) {
    if (p.measured.count() <= 0 || p.shape.prefill_tokens + p.shape.decode_tokens <= 0) {
      return make_error(ErrorCode::kInvalidArgument, "step '{}': no tokens or no time", p.label);
    }
    work.push_back(work_of(model, p.shape));
    measured.push_back(to_seconds(p.measured));
  }
  const Fit fit = search(work, measured);
  CalibrationReport report;
  report.model = model;
  report.profile = base;
  // The faster of the two FLOP rates is the peak; each is a share of it.
  const double rf = std::pow(10.0, fit.rates.matmul);
  const double ra = std::pow(10.0, fit.rates.attention);
  report.profile.peak_flops = std::max(rf, ra);
  report.profile.flops_efficiency = rf / report.profile.peak_flops;
  report.profile.attention_efficiency = ra / report.profile.peak_flops;
  const double rw = std::pow(10.0, fit.rates.weights);
  const double rk = std::pow(10.0, fit.rates.kv);
  report.profile.memory_bandwidth = std::max(rw, rk);
  report.profile.bandwidth_efficiency = rw / report.profile.memory_bandwidth;
  report.profile.kv_bandwidth_efficiency = rk / report.profile.memory_bandwidth;
  report.profile.step_overhead = Nanos{std::llround(fit.overhead_s * 1e9)};
  SPW_TRY(report.profile.validate());
  const PerfModel perf(report.profile, model, 1);
  for (StepMeasurement& p : points) {
    p.fitted = perf.step_time(p.shape);
    const double e = std::abs(p.relative_error());
    report.mean_abs_error += e;
    report.max_abs_error = std::max(report.max_abs_error, e);
  }
  report.mean_abs_error /= static_cast<double>(points.size());
  report.points = std::move(points);
  return report;
}

Result<CalibrationReport> calibrate_cpu_local(const engine::Model& model,
                                              const CalibrationOptions& options) {
  SPW_TRY(validate_calibration_options(options));
  const engine::ModelConfig& config = model.config();
  const std::int32_t n_ctx = config.n_ctx_train;
  const std::int32_t n_vocab = config.n_vocab;

  // The grid, clipped to the context: decode at position c needs c + 1 positions.
  std::vector<std::int32_t> contexts;
  for (const std::int32_t c : options.decode_contexts) {
    if (c < n_ctx) contexts.push_back(c);
  }
  if (contexts.empty()) contexts.push_back(n_ctx / 2);
  std::sort(contexts.begin(), contexts.end());
  contexts.erase(std::unique(contexts.begin(), contexts.end()), contexts.end());
  std::vector<std::int32_t> chunks;
  for (const std::int32_t c : options.prefill_chunks)
    chunks.push_back(std::min(c, n_ctx));
  std::sort(chunks.begin(), chunks.end());
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  const std::int32_t max_batch =
      *std::max_element(options.decode_batches.begin(), options.decode_batches.end());
  const std::int32_t mid = contexts.back();  // Second prefill start, where it fits.
  const std::int32_t max_tokens = std::max(max_batch, chunks.back());
  std::int32_t positions = mid + 1;
  for (const std::int32_t c : chunks) {
    positions = std::max(positions, mid + c <= n_ctx ? mid + c : c);
  }

  // One slot of blocks per sequence of the largest batch; slot i holds blocks
  // [i * per_seq, (i + 1) * per_seq).
  const std::int32_t bt = options.block_tokens;
  const std::int32_t per_seq = (positions + bt - 1) / bt;
  const std::int64_t num_blocks = static_cast<std::int64_t>(per_seq) * max_batch;
  if (num_blocks > (1 << 24)) {
    return make_error(ErrorCode::kOutOfRange,
                      "the calibration grid needs {} KV blocks; the limit is {}", num_blocks,
                      1 << 24);
  }
  SPW_ASSIGN_OR_RETURN(engine::KvCache cache,
                       engine::KvCache::create(config, {bt, static_cast<std::int32_t>(num_blocks),
                                                        engine::KvType::kF16}));
  std::vector<std::vector<std::int32_t>> slots(static_cast<std::size_t>(max_batch));
  for (std::int32_t i = 0; i < max_batch; ++i) {
    for (std::int32_t b = 0; b < per_seq; ++b)
      slots[static_cast<std::size_t>(i)].push_back(i * per_seq + b);
  }
  std::vector<std::span<const std::int32_t>> tables;
  for (const auto& s : slots)
    tables.emplace_back(s);

  engine::ThreadPool pool(options.threads);
  engine::ForwardPass forward(model, cache, pool, max_tokens);
  std::vector<float> logits(static_cast<std::size_t>(max_batch) *
                            static_cast<std::size_t>(n_vocab));
  engine::SamplingParams greedy;
  greedy.temperature = 0;
  engine::Sampler sampler(greedy, n_vocab);
  const SteadyClock clock;

  std::vector<StepMeasurement> points;
  std::vector<engine::BatchToken> batch;
  // Times one step of `batch` over the first `sequences` slots: the forward pass and sampling of
  // every logits row, as the serving engine's step does.
  auto measure = [&](std::int32_t sequences, std::int32_t rows) -> Result<Nanos> {
    const engine::ForwardBatch fb{batch,
                                  std::span(tables).first(static_cast<std::size_t>(sequences))};
    std::vector<double> runs;
    for (std::int32_t r = 0; r < options.warmup + options.repetitions; ++r) {
      const TimePoint t0 = clock.now();
      const std::int64_t c0 = options.thread_cpu_time ? thread_cpu_nanos() : 0;
      SPW_TRY(forward.run(fb, logits));
      for (std::int32_t row = 0; row < rows; ++row) {
        (void)sampler.sample(std::span(logits).subspan(
            static_cast<std::size_t>(row) * static_cast<std::size_t>(n_vocab),
            static_cast<std::size_t>(n_vocab)));
      }
      const TimePoint t1 = clock.now();
      const double elapsed = options.thread_cpu_time ? static_cast<double>(thread_cpu_nanos() - c0)
                                                     : static_cast<double>((t1 - t0).count());
      if (r >= options.warmup) runs.push_back(elapsed);
    }
    return Nanos{std::llround(fastest(runs))};
  };

  for (const std::int32_t ctx : contexts) {
    for (const std::int32_t b : options.decode_batches) {
      batch.clear();
      for (std::int32_t i = 0; i < b; ++i)
        batch.push_back({i, ctx, (i * 31 + 7) % n_vocab, true});
      StepMeasurement p;
      p.label = fmt::format("decode b={} ctx={}", b, ctx + 1);
      p.shape.decode_tokens = b;
      p.shape.attended_positions = static_cast<std::int64_t>(b) * (ctx + 1);
      p.shape.kv_positions = p.shape.attended_positions;
      SPW_ASSIGN_OR_RETURN(p.measured, measure(b, b));
      points.push_back(std::move(p));
    }
  }
  for (const std::int32_t n : chunks) {
    for (const std::int32_t start : {0, mid}) {
      if (start + n > n_ctx || (start > 0 && start + n > positions)) continue;
      batch.clear();
      for (std::int32_t k = 0; k < n; ++k)
        batch.push_back({0, start + k, (k * 17 + 3) % n_vocab, k == n - 1});
      StepMeasurement p;
      p.label = fmt::format("prefill {} @{}", n, start);
      p.shape.prefill_tokens = n;
      p.shape.attended_positions =
          static_cast<std::int64_t>(n) * start + static_cast<std::int64_t>(n) * (n + 1) / 2;
      p.shape.kv_positions = start + n;
      SPW_ASSIGN_OR_RETURN(p.measured, measure(1, 1));
      points.push_back(std::move(p));
    }
  }

  GpuProfile base;
  base.name = options.name;
  base.memory_bytes = options.memory_bytes > 0 ? options.memory_bytes : physical_memory_bytes();
  base.link_bandwidth = 1;  // Replaced below: one process has no tensor-parallel link.
  base.link_latency = Nanos{0};
  base.peak_flops = 1;
  base.memory_bandwidth = 1;
  const ModelProfile profile = model_profile_of(model);
  SPW_ASSIGN_OR_RETURN(CalibrationReport report, fit_cpu_profile(profile, std::move(points), base));
  report.profile.link_bandwidth = report.profile.memory_bandwidth;
  report.profile.source = fmt::format(
      "calibrate_cpu_local: {} with {} threads ({}), {} steps, mean |error| {:.1f}%, max {:.1f}%",
      profile.name, options.threads, options.thread_cpu_time ? "thread CPU time" : "wall clock",
      report.points.size(), report.mean_abs_error * 100, report.max_abs_error * 100);
  return report;
}

}  // namespace spillway::sim
