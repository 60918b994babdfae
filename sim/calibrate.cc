#include "sim/calibrate.h"

#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <utility>

#include "engine/batch.h"
#include "engine/detokenizer.h"
#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "engine/request_stream.h"
#include "engine/sampler.h"
#include "engine/thread_pool.h"

namespace spillway::sim {
namespace {

constexpr std::int32_t kMaxGridValue = 1 << 16;

// `values` in [min, kMaxGridValue], 1 to 64 of them (0 to 64 when `may_be_empty`).
Status check_grid(const std::vector<std::int32_t>& values, std::string_view field,
                  std::int32_t min = 1, bool may_be_empty = false) {
  if ((values.empty() && !may_be_empty) || values.size() > 64) {
    return make_error(ErrorCode::kInvalidArgument, "{}: needs {} to 64 values (got {})", field,
                      may_be_empty ? 0 : 1, values.size());
  }
  for (const std::int32_t v : values) {
    if (v < min || v > kMaxGridValue) {
      return make_error(ErrorCode::kInvalidArgument, "{}: {} is outside [{}, {}]", field, v, min,
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

// One grid point: the batch the forward pass runs and the shape the model sees.
struct Probe {
  std::string label;
  StepShape shape;
  std::vector<engine::BatchToken> batch;
  std::int32_t sequences = 0;  // Block-table slots used: 0 .. sequences - 1.
  std::int32_t positions = 0;  // Positions the largest slot must cover.
};

// Adds a chunk of sequence `seq` (a slot), positions [start, start + count), to `p`; the last
// position is sampled. Decode is a chunk of 1 after the prompt.
void add_chunk(Probe& p, std::int32_t seq, std::int32_t start, std::int32_t count,
               std::int32_t n_vocab, bool decode) {
  for (std::int32_t k = 0; k < count; ++k) {
    const std::int32_t token = ((start + k) * 17 + seq * 31 + 3) % n_vocab;
    p.batch.push_back({seq, start + k, token, k == count - 1});
  }
  if (decode) {
    p.shape.decode_tokens += count;
  } else {
    p.shape.prefill_tokens += count;
  }
  p.shape.attended_positions +=
      static_cast<std::int64_t>(count) * start + static_cast<std::int64_t>(count) * (count + 1) / 2;
  p.shape.kv_positions += start + count;
  p.sequences = std::max(p.sequences, seq + 1);
  p.positions = std::max(p.positions, start + count);
}

Probe prefill_probe(std::int32_t start, std::int32_t count, std::int32_t n_vocab,
                    std::string label) {
  Probe p;
  p.label = std::move(label);
  add_chunk(p, 0, start, count, n_vocab, false);
  return p;
}

std::vector<std::int32_t> sorted_unique(std::vector<std::int32_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// The grid of CalibrationOptions, clipped to the model's context: decode, prefill, mixed.
std::vector<Probe> grid_probes(const CalibrationOptions& o, std::int32_t n_ctx,
                               std::int32_t n_vocab) {
  std::vector<Probe> out;
  // Decoding at position c needs c + 1 positions.
  std::vector<std::int32_t> contexts;
  for (const std::int32_t c : o.decode_contexts) {
    if (c < n_ctx) contexts.push_back(c);
  }
  if (contexts.empty()) contexts.push_back(n_ctx / 2);
  for (const std::int32_t c : sorted_unique(contexts)) {
    for (const std::int32_t b : sorted_unique(o.decode_batches)) {
      Probe p;
      p.label = fmt::format("decode b={} ctx={}", b, c + 1);
      for (std::int32_t i = 0; i < b; ++i)
        add_chunk(p, i, c, 1, n_vocab, true);
      out.push_back(std::move(p));
    }
  }
  std::vector<std::int32_t> chunks;
  for (const std::int32_t n : o.prefill_chunks)
    chunks.push_back(std::min(n, n_ctx));
  for (const std::int32_t start : sorted_unique(o.prefill_starts)) {
    for (const std::int32_t n : sorted_unique(chunks)) {
      if (start + n > n_ctx) continue;
      out.push_back(prefill_probe(start, n, n_vocab, fmt::format("prefill {} @{}", n, start)));
    }
  }
  const std::int32_t mixed_context = std::min(o.mixed_context, n_ctx - 1);
  for (const std::int32_t m : sorted_unique(o.mixed_chunks)) {
    for (const std::int32_t b : sorted_unique(o.mixed_batches)) {
      if (mixed_context < 1 || m > n_ctx) continue;
      // Running sequences first, then the newly admitted prompt, as the scheduler orders them.
      Probe p;
      p.label = fmt::format("mixed {} + b={} ctx={}", m, b, mixed_context + 1);
      for (std::int32_t i = 0; i < b; ++i)
        add_chunk(p, i, mixed_context, 1, n_vocab, true);
      add_chunk(p, b, 0, m, n_vocab, false);
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace

Result<CalibrationStatistic> parse_calibration_statistic(std::string_view name) {
  if (name == "min") return CalibrationStatistic::kMin;
  if (name == "median") return CalibrationStatistic::kMedian;
  if (name == "mean") return CalibrationStatistic::kMean;
  return make_error(ErrorCode::kInvalidArgument, "statistic: '{}' is not min, median or mean",
                    name);
}

std::string_view calibration_statistic_name(CalibrationStatistic statistic) {
  switch (statistic) {
    case CalibrationStatistic::kMin:
      return "min";
    case CalibrationStatistic::kMedian:
      return "median";
    case CalibrationStatistic::kMean:
      return "mean";
  }
  return "median";
}

double apply_statistic(CalibrationStatistic statistic, std::vector<double> values) {
  if (values.empty()) return 0;
  switch (statistic) {
    case CalibrationStatistic::kMin:
      return *std::min_element(values.begin(), values.end());
    case CalibrationStatistic::kMean: {
      double sum = 0;
      for (const double v : values)
        sum += v;
      return sum / static_cast<double>(values.size());
    }
    case CalibrationStatistic::kMedian:
      break;
  }
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

Status validate_calibration_options(const CalibrationOptions& o) {
  if (o.threads < 1 || o.threads > 512) {
    return make_error(ErrorCode::kInvalidArgument, "threads: {} is outside [1, 512]", o.threads);
  }
  SPW_TRY(check_grid(o.decode_batches, "decode_batches"));
  SPW_TRY(check_grid(o.decode_contexts, "decode_contexts"));
  SPW_TRY(check_grid(o.prefill_chunks, "prefill_chunks"));
  SPW_TRY(check_grid(o.prefill_starts, "prefill_starts", 0));
  SPW_TRY(check_grid(o.mixed_chunks, "mixed_chunks", 1, true));
  SPW_TRY(check_grid(o.mixed_batches, "mixed_batches", 1, true));
  if (o.mixed_context < 1 || o.mixed_context > kMaxGridValue) {
    return make_error(ErrorCode::kInvalidArgument, "mixed_context: {} is outside [1, {}]",
                      o.mixed_context, kMaxGridValue);
  }
  if (o.idle_repetitions < 0 || o.idle_repetitions > 1000) {
    return make_error(ErrorCode::kInvalidArgument, "idle_repetitions: {} is outside [0, 1000]",
                      o.idle_repetitions);
  }
  if (o.idle_gap <= Nanos{0} || o.idle_gap > Nanos{10'000'000'000}) {
    return make_error(ErrorCode::kInvalidArgument, "idle_gap: {} ns is outside (0, 10 s]",
                      o.idle_gap.count());
  }
  if (o.idle_probe_tokens < 1 || o.idle_probe_tokens > kMaxGridValue) {
    return make_error(ErrorCode::kInvalidArgument, "idle_probe_tokens: {} is outside [1, {}]",
                      o.idle_probe_tokens, kMaxGridValue);
  }
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
  if (idle_cold > Nanos{0}) {
    out += fmt::format(
        "idle wake-up: probe step {:.1f} us after idle (from the notification), {:.1f} us awake: "
        "idle_wake {:.1f} us\n",
        static_cast<double>(idle_cold.count()) / 1e3, static_cast<double>(idle_warm.count()) / 1e3,
        static_cast<double>(profile.idle_wake.count()) / 1e3);
  }
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
  const std::vector<Probe> probes = grid_probes(options, n_ctx, n_vocab);
  const Probe idle_probe =
      prefill_probe(0, std::min(options.idle_probe_tokens, n_ctx), n_vocab, "idle probe");

  // One slot of blocks per sequence; slot i holds blocks [i * per_seq, (i + 1) * per_seq).
  std::int32_t sequences = 1;
  std::int32_t positions = idle_probe.positions;
  std::int32_t max_tokens = static_cast<std::int32_t>(idle_probe.batch.size());
  std::size_t max_rows = 1;  // Sampled rows of a step: one per sequence at most.
  for (const Probe& p : probes) {
    sequences = std::max(sequences, p.sequences);
    positions = std::max(positions, p.positions);
    max_tokens = std::max(max_tokens, static_cast<std::int32_t>(p.batch.size()));
    max_rows = std::max(max_rows, static_cast<std::size_t>(p.sequences));
  }
  const std::int32_t bt = options.block_tokens;
  const std::int32_t per_seq = (positions + bt - 1) / bt;
  const std::int64_t num_blocks = static_cast<std::int64_t>(per_seq) * sequences;
  if (num_blocks > (1 << 24)) {
    return make_error(ErrorCode::kOutOfRange,
                      "the calibration grid needs {} KV blocks; the limit is {}", num_blocks,
                      1 << 24);
  }
  SPW_ASSIGN_OR_RETURN(engine::KvCache cache,
                       engine::KvCache::create(config, {bt, static_cast<std::int32_t>(num_blocks),
                                                        engine::KvType::kF16}));
  std::vector<std::vector<std::int32_t>> slots(static_cast<std::size_t>(sequences));
  for (std::int32_t i = 0; i < sequences; ++i) {
    for (std::int32_t b = 0; b < per_seq; ++b)
      slots[static_cast<std::size_t>(i)].push_back(i * per_seq + b);
  }
  std::vector<std::span<const std::int32_t>> tables;
  for (const auto& s : slots)
    tables.emplace_back(s);

  engine::ThreadPool pool(options.threads);
  engine::ForwardPass forward(model, cache, pool, max_tokens);
  std::vector<float> logits(max_rows * static_cast<std::size_t>(n_vocab));
  // What ServingEngine::on_logits does with each sampled row, per sequence: the engine's
  // sampler (greedy, as the trace replay asks), streaming detokenization, and a stream whose
  // listener takes the events as a client does.
  engine::SamplingParams greedy;
  greedy.temperature = 0;
  std::vector<engine::Sampler> samplers;
  std::vector<engine::StreamingDetokenizer> detokenizers;
  std::vector<std::unique_ptr<engine::RequestStream>> streams;
  for (std::int32_t i = 0; i < sequences; ++i) {
    samplers.emplace_back(greedy, n_vocab);
    detokenizers.emplace_back(model.tokenizer());
    streams.push_back(std::make_unique<engine::RequestStream>(fmt::format("calibrate-{}", i), 1));
    engine::RequestStream* stream = streams.back().get();
    stream->set_listener([stream] { (void)stream->drain(); });
  }
  const SteadyClock clock;

  // One engine step: the forward pass, then each sampled row's work.
  auto run_step = [&](const Probe& p) -> Status {
    const engine::ForwardBatch fb{p.batch,
                                  std::span(tables).first(static_cast<std::size_t>(p.sequences))};
    SPW_TRY(forward.run(fb, logits));
    std::size_t row = 0;
    for (const engine::BatchToken& t : p.batch) {
      if (!t.want_logits) continue;
      const auto seq = static_cast<std::size_t>(t.seq);
      const engine::SampledToken s = samplers[seq].sample(std::span(logits).subspan(
          row * static_cast<std::size_t>(n_vocab), static_cast<std::size_t>(n_vocab)));
      engine::StreamEvent ev;
      ev.token = s.token;
      ev.text = detokenizers[seq].push(s.token);
      streams[seq]->push(std::move(ev));
      ++row;
    }
    return Status();
  };
  auto elapsed_since = [&](TimePoint t0, std::int64_t c0) {
    return options.thread_cpu_time ? static_cast<double>(thread_cpu_nanos() - c0)
                                   : static_cast<double>((clock.now() - t0).count());
  };
  // Times `runs` steps of `p` after `warmup` untimed ones.
  auto time_runs = [&](const Probe& p, std::int32_t runs) -> Result<std::vector<double>> {
    std::vector<double> out;
    for (std::int32_t r = 0; r < options.warmup + runs; ++r) {
      const TimePoint t0 = clock.now();
      const std::int64_t c0 = options.thread_cpu_time ? thread_cpu_nanos() : 0;
      SPW_TRY(run_step(p));
      const double elapsed = elapsed_since(t0, c0);
      if (r >= options.warmup) out.push_back(elapsed);
    }
    return out;
  };

  std::vector<StepMeasurement> points;
  for (const Probe& p : probes) {
    SPW_ASSIGN_OR_RETURN(std::vector<double> runs, time_runs(p, options.repetitions));
    StepMeasurement m;
    m.label = p.label;
    m.shape = p.shape;
    m.measured = Nanos{std::max<std::int64_t>(
        1, std::llround(apply_statistic(options.statistic, std::move(runs))))};
    points.push_back(std::move(m));
  }

  // The idle wake-up: a worker sleeping on a condition variable as the serving engine's step
  // thread does, woken after idle_gap to run the probe step.
  double idle_cold = 0;
  double idle_warm = 0;
  if (options.idle_repetitions > 0) {
    SPW_ASSIGN_OR_RETURN(std::vector<double> warm, time_runs(idle_probe, options.repetitions));
    idle_warm = apply_statistic(options.statistic, std::move(warm));
    std::mutex mu;
    std::condition_variable wake;
    std::condition_variable done_cv;
    bool go = false;
    bool done = false;
    bool quit = false;
    TimePoint notified{};
    double elapsed = 0;
    Status worker_status;
    std::thread worker([&] {
      std::unique_lock lock(mu);
      for (;;) {
        wake.wait(lock, [&] { return go || quit; });
        if (quit) return;
        go = false;
        const TimePoint t0 = notified;
        lock.unlock();
        const std::int64_t c0 = options.thread_cpu_time ? thread_cpu_nanos() : 0;
        Status ran = run_step(idle_probe);
        const double e = elapsed_since(t0, c0);
        lock.lock();
        elapsed = e;
        worker_status = std::move(ran);
        done = true;
        done_cv.notify_one();
      }
    });
    std::vector<double> cold;
    for (std::int32_t r = 0; r < options.idle_repetitions && worker_status.ok(); ++r) {
      std::this_thread::sleep_for(options.idle_gap);
      std::unique_lock lock(mu);
      notified = clock.now();
      go = true;
      done = false;
      wake.notify_one();
      done_cv.wait(lock, [&] { return done; });
      cold.push_back(elapsed);
    }
    {
      std::lock_guard lock(mu);
      quit = true;
    }
    wake.notify_one();
    worker.join();
    SPW_TRY(worker_status);
    idle_cold = apply_statistic(options.statistic, std::move(cold));
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
  report.idle_cold = Nanos{std::llround(idle_cold)};
  report.idle_warm = Nanos{std::llround(idle_warm)};
  report.profile.idle_wake = std::max(Nanos{0}, report.idle_cold - report.idle_warm);
  report.profile.source = fmt::format(
      "calibrate_cpu_local: {} with {} threads ({}, {} of {} runs), {} steps, mean |error| "
      "{:.1f}%, max {:.1f}%; idle wake-up {:.1f} us after {} ms idle",
      profile.name, options.threads, options.thread_cpu_time ? "thread CPU time" : "wall clock",
      calibration_statistic_name(options.statistic), options.repetitions, report.points.size(),
      report.mean_abs_error * 100, report.max_abs_error * 100,
      static_cast<double>(report.profile.idle_wake.count()) / 1e3,
      static_cast<double>(options.idle_gap.count()) / 1e6);
  return report;
}

}  // namespace spillway::sim
