#include "engine/trace_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/random.h"

#include "engine/bench.h"

namespace spillway::engine {
namespace {

using Clock = std::chrono::steady_clock;

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
    return v[std::min(i, v.size() - 1)];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  double sum = 0;
  for (const double x : v)
    sum += x;
  p.mean = sum / static_cast<double>(v.size());
  return p;
}

struct Planned {
  double arrival_s;
  std::int32_t prompt;
  std::int32_t generate;
};

struct Record {
  Clock::time_point submitted;
  std::optional<Clock::time_point> first;
  Clock::time_point last;
  std::int32_t tokens = 0;
  bool finished = false;
  bool ok = false;
};

std::string json_percentiles(const Percentiles& p) {
  return fmt::format("{{\"p50\":{:.6f},\"p90\":{:.6f},\"p99\":{:.6f},\"mean\":{:.6f}}}", p.p50,
                     p.p90, p.p99, p.mean);
}

}  // namespace

std::string TraceBenchReport::to_json() const {
  return fmt::format(
      "{{\"requests\":{},\"completed\":{},\"rejected\":{},\"wall_s\":{:.3f},"
      "\"request_throughput\":{:.4f},\"output_tps\":{:.3f},\"total_tps\":{:.3f},"
      "\"ttft_s\":{},\"tpot_s\":{},\"e2e_s\":{},\"prefix_hit_rate\":{:.4f},\"preemptions\":{},"
      "\"peak_rss_bytes\":{}}}",
      requests, completed, rejected, wall_s, request_throughput, output_tps, total_tps,
      json_percentiles(ttft_s), json_percentiles(tpot_s), json_percentiles(e2e_s), prefix_hit_rate,
      preemptions, peak_rss_bytes);
}

std::string TraceBenchReport::to_text() const {
  auto ms = [](const Percentiles& p) {
    return fmt::format("p50 {:8.1f}  p90 {:8.1f}  p99 {:8.1f}  mean {:8.1f} ms", p.p50 * 1e3,
                       p.p90 * 1e3, p.p99 * 1e3, p.mean * 1e3);
  };
  return fmt::format(
      "requests            {} replayed, {} completed, {} rejected in {:.1f} s\n"
      "throughput          {:.2f} requests/s, {:.1f} generated tokens/s, {:.1f} tokens/s in all\n"
      "time to first token {}\n"
      "time per out token  {}\n"
      "end to end          {}\n"
      "prefix cache        {:.1f}% of prompt tokens reused; {} preemptions\n"
      "peak memory         {:.1f} MiB\n",
      requests, completed, rejected, wall_s, request_throughput, output_tps, total_tps, ms(ttft_s),
      ms(tpot_s), ms(e2e_s), prefix_hit_rate * 100, preemptions,
      static_cast<double>(peak_rss_bytes) / (1 << 20));
}

Result<TraceBenchReport> run_trace_benchmark(const Model& model, const RequestTrace& trace,
                                             const TraceBenchOptions& options) {
  if (!(options.duration_s > 0) || !(options.length_scale > 0) || options.rate < 0 ||
      options.shared_prefix_tokens < 0 || options.max_requests < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "trace bench needs duration > 0, length scale > 0, rate >= 0, shared "
                      "prefix >= 0 and max requests >= 1");
  }
  if (!trace.has_times && options.rate <= 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "this trace has no timestamps; give --rate to space its requests");
  }
  SPW_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine,
                       ServingEngine::create(model, options.serving));
  const std::int32_t context = engine->context();

  // Plan the arrivals and lengths.
  SeededRandom rng(options.seed);
  std::vector<Planned> plan;
  double time_factor = 1.0;
  if (trace.has_times && options.rate > 0 && trace.requests.size() > 1) {
    const double span = trace.requests.back().arrival_s - trace.requests.front().arrival_s;
    if (span > 0)
      time_factor = (static_cast<double>(trace.requests.size() - 1) / span) / options.rate;
  }
  double poisson_t = 0;
  for (const TraceRequest& r : trace.requests) {
    double t;
    if (trace.has_times) {
      t = r.arrival_s * time_factor;
    } else {
      poisson_t += rng.exponential(1.0 / options.rate);
      t = poisson_t;
    }
    if (t >= options.duration_s || static_cast<std::int64_t>(plan.size()) >= options.max_requests) {
      break;
    }
    auto scaled = [&](std::int32_t n) {
      return std::max<std::int32_t>(
          1, static_cast<std::int32_t>(std::lround(n * options.length_scale)));
    };
    std::int32_t gen = std::min(scaled(r.generated_tokens), context / 2);
    std::int32_t prompt = std::min(scaled(r.context_tokens), context - gen);
    plan.push_back({t, std::max(prompt, 1), std::max(gen, 1)});
  }
  if (plan.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "no trace request arrives within {} s",
                      options.duration_s);
  }

  const std::int32_t n_vocab = model.config().n_vocab;
  auto random_token = [&] {
    return 3 + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(n_vocab - 3)));
  };
  std::vector<std::int32_t> prefix(static_cast<std::size_t>(options.shared_prefix_tokens));
  for (auto& t : prefix)
    t = random_token();

  std::mutex mu;
  std::vector<Record> records(plan.size());
  std::vector<std::shared_ptr<RequestStream>> streams(plan.size());
  TraceBenchReport report;
  report.requests = static_cast<std::int64_t>(plan.size());
  const Clock::time_point start = Clock::now();
  for (std::size_t i = 0; i < plan.size(); ++i) {
    EngineRequest req;
    req.id = fmt::format("trace-{}", i);
    req.prompt.reserve(static_cast<std::size_t>(plan[i].prompt));
    if (model.vocab().bos_id >= 0) req.prompt.push_back(model.vocab().bos_id);
    for (std::size_t k = 0;
         k < prefix.size() && static_cast<std::int32_t>(req.prompt.size()) < plan[i].prompt; ++k) {
      req.prompt.push_back(prefix[k]);
    }
    while (static_cast<std::int32_t>(req.prompt.size()) < plan[i].prompt)
      req.prompt.push_back(random_token());
    req.max_tokens = plan[i].generate;
    req.ignore_eos = true;
    req.sampling.temperature = 0.0f;
    req.cache_namespace = "bench";
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(plan[i].arrival_s)));
    {
      std::lock_guard lock(mu);
      records[i].submitted = Clock::now();
    }
    auto stream = engine->submit(std::move(req));
    if (!stream.ok()) {
      ++report.rejected;
      continue;
    }
    streams[i] = *stream;
    RequestStream* s = stream->get();
    s->set_listener([&, i, s] {
      const Clock::time_point now = Clock::now();
      std::lock_guard lock(mu);
      Record& rec = records[i];
      for (const StreamEvent& ev : s->drain()) {
        if (ev.kind == StreamEvent::Kind::kToken) {
          if (!rec.first) rec.first = now;
          ++rec.tokens;
        } else {
          rec.finished = true;
          rec.ok = ev.finish == FinishReason::kStop || ev.finish == FinishReason::kLength;
        }
        rec.last = now;
      }
    });
  }
  if (!engine->wait_idle(std::chrono::hours(24))) {
    return make_error(ErrorCode::kDeadlineExceeded, "the replay did not finish");
  }
  const EngineStats stats = engine->stats();
  engine.reset();  // Joins the step thread: no listener runs after this.

  std::vector<double> ttft, tpot, e2e;
  Clock::time_point end = start;
  std::int64_t prompt_tokens = 0, output_tokens = 0;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const Record& r = records[i];
    if (!streams[i] || !r.ok) continue;
    ++report.completed;
    prompt_tokens += plan[i].prompt;
    output_tokens += r.tokens;
    end = std::max(end, r.last);
    if (r.first) ttft.push_back(std::chrono::duration<double>(*r.first - r.submitted).count());
    if (r.first && r.tokens > 1) {
      tpot.push_back(std::chrono::duration<double>(r.last - *r.first).count() / (r.tokens - 1));
    }
    e2e.push_back(std::chrono::duration<double>(r.last - r.submitted).count());
  }
  report.wall_s = std::chrono::duration<double>(end - start).count();
  if (report.wall_s > 0) {
    report.request_throughput = static_cast<double>(report.completed) / report.wall_s;
    report.output_tps = static_cast<double>(output_tokens) / report.wall_s;
    report.total_tps = static_cast<double>(prompt_tokens + output_tokens) / report.wall_s;
  }
  report.ttft_s = percentiles(std::move(ttft));
  report.tpot_s = percentiles(std::move(tpot));
  report.e2e_s = percentiles(std::move(e2e));
  const SchedulerStats& s = stats.scheduler;
  report.prefix_hit_rate =
      s.prefix_query_tokens == 0
          ? 0.0
          : static_cast<double>(s.prefix_hit_tokens) / static_cast<double>(s.prefix_query_tokens);
  report.preemptions = s.preemptions;
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace spillway::engine
