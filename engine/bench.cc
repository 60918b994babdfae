#include "engine/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <numeric>

#include "core/random.h"

#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "engine/thread_pool.h"

namespace spillway::engine {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Sums 64-bit words with eight independent accumulators, so the loop is bound by loads, not by
// a dependency chain; the result is returned so the reads cannot be optimized away.
std::uint64_t sum_words(const std::uint64_t* p, std::size_t n) {
  std::uint64_t acc[8] = {};
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j)
      acc[j] += p[i + j];
  }
  return std::accumulate(std::begin(acc), std::end(acc), std::uint64_t{0});
}

// Random token ids from the normal range of the vocabulary (skipping the first few special ids).
std::vector<std::int32_t> random_tokens(std::int32_t n, std::int32_t vocab, std::uint64_t seed) {
  SeededRandom rng(seed);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  const auto lo = std::min<std::int32_t>(3, vocab - 1);
  for (auto& t : out)
    t = lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab - lo)));
  return out;
}

// C sequences sharing one cache and one forward pass, each with its own block table.
struct Sequences {
  Sequences(const Model& m, ThreadPool& pool, std::int32_t count, std::int32_t tokens_each,
            std::int32_t max_batch, KvType kv_type)
      : cache(
            std::move(KvCache::create(m.config(), {16, count * ((tokens_each + 15) / 16), kv_type}))
                .value()),
        forward(m, cache, pool, max_batch),
        tables(static_cast<std::size_t>(count)),
        logits(static_cast<std::size_t>(count) * m.config().n_vocab) {
    const std::int32_t per = (tokens_each + 15) / 16;
    for (std::int32_t s = 0; s < count; ++s) {
      tables[s].resize(static_cast<std::size_t>(per));
      std::iota(tables[s].begin(), tables[s].end(), s * per);
      spans.emplace_back(tables[s]);
    }
  }
  KvCache cache;
  ForwardPass forward;
  std::vector<std::vector<std::int32_t>> tables;
  std::vector<std::span<const std::int32_t>> spans;
  std::vector<float> logits;
};

}  // namespace

double measure_read_bandwidth_gbs(std::size_t bytes, std::int32_t threads, std::int32_t rounds) {
  const std::size_t words = bytes / sizeof(std::uint64_t);
  std::unique_ptr<std::uint64_t[]> buf(new std::uint64_t[words]);
  ThreadPool pool(threads);
  // Touch every page first (in parallel, so each thread's share is local to it).
  pool.parallel_for(static_cast<std::int64_t>(words), 4096, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i)
      buf[i] = static_cast<std::uint64_t>(i);
  });
  double best = 0;
  std::vector<std::uint64_t> sink(static_cast<std::size_t>(pool.size()));
  for (std::int32_t r = 0; r < rounds; ++r) {
    const auto start = Clock::now();
    pool.run([&](int t, int n) {
      const std::size_t b = words * t / n / 8 * 8;
      const std::size_t e = t == n - 1 ? words : words * (t + 1) / n / 8 * 8;
      sink[t] += sum_words(buf.get() + b, e - b);
    });
    best = std::max(best, static_cast<double>(words * 8) / seconds_since(start) / 1e9);
  }
  volatile std::uint64_t keep = std::accumulate(sink.begin(), sink.end(), std::uint64_t{0});
  (void)keep;
  return best;
}

std::size_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

Result<BenchReport> run_benchmark(const Model& model, const BenchOptions& o) {
  const ModelConfig& c = model.config();
  if (o.threads < 1 || o.prompt_tokens < 1 || o.gen_tokens < 1 || o.repetitions < 1 ||
      o.concurrency.empty()) {
    return Error(
        ErrorCode::kInvalidArgument,
        "threads, prompt tokens, generated tokens, repetitions and concurrency must be >= 1");
  }
  for (std::int32_t cc : o.concurrency) {
    if (cc < 1 || cc > 1024) {
      return make_error(ErrorCode::kInvalidArgument, "concurrency {} is outside [1, 1024]", cc);
    }
  }
  const std::int32_t per_seq = o.prompt_tokens + o.gen_tokens;
  if (per_seq > c.n_ctx_train) {
    return make_error(ErrorCode::kInvalidArgument,
                      "prompt + generated tokens ({}) exceed the model's context ({})", per_seq,
                      c.n_ctx_train);
  }
  SPW_TRY(check_kv_type(c, o.kv_type));
  BenchReport report;
  report.weight_bytes_per_token = model.weight_bytes_per_token();
  ThreadPool pool(o.threads);
  const std::int32_t max_c = *std::max_element(o.concurrency.begin(), o.concurrency.end());
  const std::int32_t max_batch = std::max(o.prompt_tokens, max_c);
  const auto prompt = random_tokens(o.prompt_tokens, c.n_vocab, 1);

  // Prefills sequence s of `seqs` with the prompt (one batch); its next-token logits go to
  // row s of seqs.logits, where decode() expects them.
  auto prefill = [&](Sequences& seqs, std::int32_t s) -> Status {
    std::vector<BatchToken> batch;
    for (std::int32_t p = 0; p < o.prompt_tokens; ++p) {
      batch.push_back({s, p, prompt[static_cast<std::size_t>(p)], p == o.prompt_tokens - 1});
    }
    return seqs.forward.run(
        {batch, seqs.spans},
        std::span(seqs.logits).subspan(static_cast<std::size_t>(s) * c.n_vocab));
  };
  // Decodes gen_tokens steps for all sequences together; returns generated tokens/s.
  auto decode = [&](Sequences& seqs, std::int32_t count) -> Result<double> {
    std::vector<BatchToken> batch(static_cast<std::size_t>(count));
    const auto start = Clock::now();
    for (std::int32_t step = 0; step < o.gen_tokens; ++step) {
      for (std::int32_t s = 0; s < count; ++s) {
        // Greedy next token per sequence keeps the work realistic (the argmax is cheap).
        const float* l = seqs.logits.data() + static_cast<std::size_t>(s) * c.n_vocab;
        const auto next = static_cast<std::int32_t>(std::max_element(l, l + c.n_vocab) - l);
        batch[static_cast<std::size_t>(s)] = {s, o.prompt_tokens + step, next, true};
      }
      SPW_TRY(seqs.forward.run({batch, seqs.spans}, seqs.logits));
    }
    return static_cast<double>(count) * o.gen_tokens / seconds_since(start);
  };

  std::vector<double> pp, tg;
  std::map<std::int32_t, std::vector<double>> conc;
  for (std::int32_t rep = 0; rep < o.repetitions; ++rep) {
    Sequences one(model, pool, 1, per_seq, max_batch, o.kv_type);
    const auto start = Clock::now();
    SPW_TRY(prefill(one, 0));
    pp.push_back(o.prompt_tokens / seconds_since(start));
    SPW_ASSIGN_OR_RETURN(const double t, decode(one, 1));
    tg.push_back(t);
    for (std::int32_t cc : o.concurrency) {
      Sequences many(model, pool, cc, per_seq, max_batch, o.kv_type);
      // Each sequence's prompt first (not timed: prefill is not what this measures).
      for (std::int32_t s = 0; s < cc; ++s)
        SPW_TRY(prefill(many, s));
      SPW_ASSIGN_OR_RETURN(const double agg, decode(many, cc));
      conc[cc].push_back(agg);
    }
  }
  report.pp_tps = median(pp);
  report.tg_tps = median(tg);
  for (auto& [cc, v] : conc)
    report.concurrency[cc] = median(v);
  // Peak memory of the model runs, read before the probe allocates its buffer.
  report.peak_rss_bytes = peak_rss_bytes();
  report.read_bandwidth_gbs = measure_read_bandwidth_gbs(o.probe_bytes, o.threads, 7);
  report.tg_fraction_of_limit = report.tg_tps * static_cast<double>(report.weight_bytes_per_token) /
                                (report.read_bandwidth_gbs * 1e9);
  return report;
}

std::string BenchReport::to_json() const {
  std::string conc;
  for (const auto& [c, tps] : concurrency) {
    if (!conc.empty()) conc += ",";
    conc += fmt::format("\"{}\":{:.3f}", c, tps);
  }
  return fmt::format(
      "{{\"pp_tps\":{:.3f},\"tg_tps\":{:.3f},\"concurrency\":{{{}}},\"weight_bytes_per_token\":{},"
      "\"read_bandwidth_gbs\":{:.3f},\"tg_fraction_of_limit\":{:.4f},\"peak_rss_bytes\":{}}}",
      pp_tps, tg_tps, conc, weight_bytes_per_token, read_bandwidth_gbs, tg_fraction_of_limit,
      peak_rss_bytes);
}

std::string BenchReport::to_text() const {
  std::string out = fmt::format(
      "prompt processing   {:10.1f} tokens/s\n"
      "generation (1 seq)  {:10.1f} tokens/s\n",
      pp_tps, tg_tps);
  for (const auto& [c, tps] : concurrency) {
    out += fmt::format("generation ({:2} seq) {:10.1f} tokens/s aggregate ({:.1f}x single)\n", c,
                       tps, tps / std::max(tg_tps, 1e-9));
  }
  out += fmt::format(
      "weights per token   {:10.1f} MB\n"
      "read bandwidth      {:10.1f} GB/s\n"
      "decode / limit      {:10.2f}\n"
      "peak RSS            {:10.1f} MB\n",
      weight_bytes_per_token / 1e6, read_bandwidth_gbs, tg_fraction_of_limit, peak_rss_bytes / 1e6);
  if (!isa.empty()) out += fmt::format("kernels             {:>10}\n", isa);
  return out;
}

}  // namespace spillway::engine
