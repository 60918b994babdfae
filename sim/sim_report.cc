#include "sim/sim_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/json_escape.h"

namespace spillway::sim {

namespace {

constexpr int kSubBits = 8;  // 256 buckets per octave.
constexpr std::uint64_t kSub = 1ull << kSubBits;

std::size_t bucket_of(std::uint64_t v) {
  if (v < kSub) return static_cast<std::size_t>(v);
  const int e = 63 - std::countl_zero(v);
  const int shift = e - kSubBits;
  const std::uint64_t sub = (v >> shift) - kSub;
  return static_cast<std::size_t>(kSub + static_cast<std::uint64_t>(shift) * kSub + sub);
}

// The middle of bucket `index`.
std::uint64_t bucket_value(std::size_t index) {
  if (index < kSub) return index;
  const std::uint64_t shift = (index - kSub) / kSub;
  const std::uint64_t sub = (index - kSub) % kSub;
  const std::uint64_t lower = (kSub + sub) << shift;
  const std::uint64_t width = 1ull << shift;
  return lower + (width - 1) / 2;
}

double seconds(Nanos v) {
  return to_seconds(v);
}

std::string json_latency(const LatencyHistogram& h) {
  const LatencySummary s = summarize(h);
  return fmt::format(
      R"({{"count":{},"mean_s":{:.6f},"p50_s":{:.6f},"p90_s":{:.6f},"p99_s":{:.6f}}})", s.count,
      s.mean_s, s.p50_s, s.p90_s, s.p99_s);
}

std::string json_group(const GroupStats& g, double window_s) {
  const double attainment =
      g.offered > 0 ? static_cast<double>(g.slo_met) / static_cast<double>(g.offered) : 0;
  const double goodput = window_s > 0 ? static_cast<double>(g.slo_met) / window_s : 0;
  return fmt::format(
      R"({{"offered":{},"finished":{},"rejected":{},"failed":{},"slo_met":{},)"
      R"("slo_attainment":{:.6f},"goodput_rps":{:.6f},"ttft":{},"tpot":{},"e2e":{}}})",
      g.offered, g.finished, g.rejected, g.failed, g.slo_met, attainment, goodput,
      json_latency(g.ttft), json_latency(g.tpot), json_latency(g.e2e));
}

std::string text_latency(const char* label, const LatencyHistogram& h) {
  const LatencySummary s = summarize(h);
  return fmt::format("  {:<6} p50 {:9.1f}  p90 {:9.1f}  p99 {:9.1f}  mean {:9.1f} ms\n", label,
                     s.p50_s * 1e3, s.p90_s * 1e3, s.p99_s * 1e3, s.mean_s * 1e3);
}

std::string text_group_line(std::string_view name, const GroupStats& g) {
  const LatencySummary ttft = summarize(g.ttft);
  const LatencySummary tpot = summarize(g.tpot);
  const double attainment =
      g.offered > 0 ? static_cast<double>(g.slo_met) / static_cast<double>(g.offered) : 0;
  return fmt::format(
      "  {:<20} {:>9} offered {:>9} finished {:>7} rejected {:>6} failed  SLO {:6.2f}%  "
      "TTFT p90 {:8.1f} ms  TPOT p90 {:7.1f} ms\n",
      name, g.offered, g.finished, g.rejected, g.failed, attainment * 100, ttft.p90_s * 1e3,
      tpot.p90_s * 1e3);
}

}  // namespace

void LatencyHistogram::add(Nanos v) {
  if (v < Nanos{0}) v = Nanos{0};
  const std::size_t b = bucket_of(static_cast<std::uint64_t>(v.count()));
  if (b >= buckets_.size()) buckets_.resize(b + 1, 0);
  ++buckets_[b];
  if (count_ == 0 || v < min_) min_ = v;
  if (count_ == 0 || v > max_) max_ = v;
  ++count_;
  sum_ns_ += static_cast<long double>(v.count());
}

void LatencyHistogram::clear() {
  buckets_.clear();
  count_ = 0;
  sum_ns_ = 0;
  min_ = max_ = Nanos{0};
}

Nanos LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return Nanos{0};
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const auto v = static_cast<std::int64_t>(bucket_value(i));
      return std::clamp(Nanos{v}, min_, max_);
    }
  }
  return max_;
}

double LatencyHistogram::mean_s() const {
  if (count_ == 0) return 0;
  return static_cast<double>(sum_ns_ / static_cast<long double>(count_)) * 1e-9;
}

LatencySummary summarize(const LatencyHistogram& h) {
  return LatencySummary{h.count(), h.mean_s(), seconds(h.quantile(0.5)), seconds(h.quantile(0.9)),
                        seconds(h.quantile(0.99))};
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  append_json_escaped(out, s);
  out += '"';
  return out;
}

double SimReport::slo_attainment() const {
  return all.offered > 0 ? static_cast<double>(all.slo_met) / static_cast<double>(all.offered) : 0;
}

double SimReport::goodput_rps() const {
  return offered_window_s > 0 ? static_cast<double>(all.slo_met) / offered_window_s : 0;
}

double SimReport::cost() const {
  double c = 0;
  for (const PoolReport& p : pools)
    c += p.cost;
  return c;
}

double SimReport::gpu_hours() const {
  double h = 0;
  for (const PoolReport& p : pools)
    h += p.gpu_hours;
  return h;
}

std::string SimReport::to_json(bool with_timing) const {
  std::string out = "{";
  out += fmt::format(
      R"("policy":{},"replica_model":{},"seed":{},"offered_window_s":{:.3f},"end_s":{:.3f},)",
      json_string(policy), json_string(replica_model), seed, offered_window_s, end_s);
  out += fmt::format(
      R"("requests":{},"finished":{},"slo_met":{},"slo_attainment":{:.6f},"goodput_rps":{:.6f},)",
      all.offered, all.finished, all.slo_met, slo_attainment(), goodput_rps());
  out += fmt::format(
      R"("rejected_quota":{},"rejected_queue":{},"failed_lost":{},"failed_unservable":{},)"
      R"("failovers":{},"replica_refusals":{},"unfinished":{},"queued_peak":{},"crashes":{},"replicas_lost":{},)",
      rejected_quota, rejected_queue, failed_lost, failed_unservable, failovers, replica_refusals,
      unfinished, queued_peak, crashes, replicas_lost);
  out += fmt::format(R"("ttft":{},"tpot":{},"e2e":{},)", json_latency(all.ttft),
                     json_latency(all.tpot), json_latency(all.e2e));
  out += R"("tenants":{)";
  bool first = true;
  for (const auto& [name, g] : tenants) {
    out += fmt::format("{}{}:{}", first ? "" : ",", json_string(name),
                       json_group(g, offered_window_s));
    first = false;
  }
  out += R"(},"priorities":{)";
  for (int p = 0; p < fleet::kNumPriorities; ++p) {
    out += fmt::format("{}{}:{}", p == 0 ? "" : ",",
                       json_string(fleet::priority_name(static_cast<fleet::Priority>(p))),
                       json_group(priorities[static_cast<std::size_t>(p)], offered_window_s));
  }
  out += fmt::format(R"(}},"tokens":{{"prefill":{},"decode":{},"prefix_query":{},"prefix_hit":{},)"
                     R"("preemptions":{}}},)",
                     prefill_tokens, decode_tokens, prefix_query_tokens, prefix_hit_tokens,
                     preemptions);
  out += fmt::format(R"("gpu_hours":{:.6f},"cost":{:.4f},"pools":[)", gpu_hours(), cost());
  for (std::size_t i = 0; i < pools.size(); ++i) {
    const PoolReport& p = pools[i];
    out += fmt::format(
        R"({}{{"name":{},"provider":{},"region":{},"gpu":{},"capacity":{},"gpus":{},)"
        R"("peak_replicas":{},"peak_gpus":{},"final_replicas":{},"gpu_hours":{:.6f},"cost":{:.4f},)"
        R"("utilization":{:.6f},"served":{}}})",
        i == 0 ? "" : ",", json_string(p.name), json_string(p.provider), json_string(p.region),
        json_string(p.gpu), json_string(p.capacity), p.gpus, p.peak_replicas, p.peak_gpus,
        p.final_replicas, p.gpu_hours, p.cost, p.utilization(), p.served);
  }
  out += R"(],"providers":[)";
  for (std::size_t i = 0; i < providers.size(); ++i) {
    const ProviderReport& p = providers[i];
    out += fmt::format(
        R"({}{{"name":{},"peak_gpus":{},"gpu_hours":{:.6f},"cost":{:.4f},"utilization":{:.6f},)"
        R"("served":{},"served_share":{:.6f}}})",
        i == 0 ? "" : ",", json_string(p.name), p.peak_gpus, p.gpu_hours, p.cost, p.utilization(),
        p.served, p.served_share);
  }
  out += R"(],"models":[)";
  for (std::size_t i = 0; i < models.size(); ++i) {
    const ModelReport& m = models[i];
    out +=
        fmt::format(R"({}{{"name":{},"initial_replicas":{},"peak_replicas":{},"final_replicas":{},)"
                    R"("scale_outs":{},"scale_ins":{},"placement_failures":{}}})",
                    i == 0 ? "" : ",", json_string(m.name), m.initial_replicas, m.peak_replicas,
                    m.final_replicas, m.scale_outs, m.scale_ins, m.placement_failures);
  }
  out += fmt::format(R"(],"events":{})", events);
  if (with_timing) {
    out += fmt::format(R"(,"wall_s":{:.3f},"events_per_wall_s":{:.0f})", wall_s,
                       wall_s > 0 ? static_cast<double>(events) / wall_s : 0);
  }
  return out + "}";
}

std::string SimReport::to_text() const {
  std::string out;
  out += fmt::format(
      "policy {}, replica model {}, seed {}; arrivals over {:.1f} s, ended at {:.1f} s\n", policy,
      replica_model, seed, offered_window_s, end_s);
  out += fmt::format(
      "requests     {} offered, {} finished, {} met both SLOs ({:.2f}%), goodput {:.2f} req/s\n",
      all.offered, all.finished, all.slo_met, slo_attainment() * 100, goodput_rps());
  out += fmt::format(
      "rejected     {} by quota, {} by the admission queue; failed {} (lost mid-stream), {} "
      "(unservable); {} failovers, {} replica refusals, {} unfinished\n"
      "fleet events {} replicas crashed, {} lost to outages or preemption\n",
      rejected_quota, rejected_queue, failed_lost, failed_unservable, failovers, replica_refusals,
      unfinished, crashes, replicas_lost);
  out += "latency\n";
  out += text_latency("TTFT", all.ttft);
  out += text_latency("TPOT", all.tpot);
  out += text_latency("e2e", all.e2e);
  out += "per tenant\n";
  for (const auto& [name, g] : tenants)
    out += text_group_line(name, g);
  out += "per priority\n";
  for (int p = 0; p < fleet::kNumPriorities; ++p) {
    const GroupStats& g = priorities[static_cast<std::size_t>(p)];
    if (g.offered == 0) continue;
    out += text_group_line(fleet::priority_name(static_cast<fleet::Priority>(p)), g);
  }
  out += fmt::format("fleet        {:.2f} GPU-hours, cost {:.2f}\n", gpu_hours(), cost());
  for (const PoolReport& p : pools) {
    out += fmt::format(
        "  {:<28} {:<6} {:<10} {:>7} GPUs  replicas peak {:>6} end {:>6}  {:>10.2f} GPU-h  "
        "cost {:>10.2f}  util {:5.1f}%  served {}\n",
        p.name, p.gpu, p.capacity, p.gpus, p.peak_replicas, p.final_replicas, p.gpu_hours, p.cost,
        p.utilization() * 100, p.served);
  }
  out += "providers\n";
  for (const ProviderReport& p : providers) {
    out += fmt::format(
        "  {:<12} peak {:>7} GPUs  {:>10.2f} GPU-h  cost {:>10.2f}  util {:5.1f}%  served {:5.1f}% "
        "of requests\n",
        p.name, p.peak_gpus, p.gpu_hours, p.cost, p.utilization() * 100, p.served_share * 100);
  }
  out += "models\n";
  for (const ModelReport& m : models) {
    out += fmt::format(
        "  {:<20} replicas start {} peak {} end {}; {} scale-outs, {} scale-ins, {} placement "
        "failures\n",
        m.name, m.initial_replicas, m.peak_replicas, m.final_replicas, m.scale_outs, m.scale_ins,
        m.placement_failures);
  }
  const double hit = prefix_query_tokens > 0 ? static_cast<double>(prefix_hit_tokens) /
                                                   static_cast<double>(prefix_query_tokens)
                                             : 0;
  out += fmt::format(
      "tokens       {} prefill, {} decode; prefix cache {:.1f}% of looked-up tokens; {} "
      "preemptions\n",
      prefill_tokens, decode_tokens, hit * 100, preemptions);
  out += fmt::format("events       {}", events);
  if (wall_s > 0) {
    out += fmt::format(" in {:.2f} s of wall time ({:.0f} simulated events/s)", wall_s,
                       static_cast<double>(events) / wall_s);
  }
  return out + "\n";
}

std::string compare_to_text(const std::vector<SimReport>& runs) {
  std::string out = fmt::format("{:<14} {:>10} {:>9} {:>11} {:>10} {:>10} {:>10} {:>10} {:>9}\n",
                                "policy", "SLO met", "goodput", "TTFT p50", "TTFT p90", "TTFT p99",
                                "TPOT p90", "e2e p90", "rejected");
  for (const SimReport& r : runs) {
    const LatencySummary ttft = summarize(r.all.ttft);
    out += fmt::format(
        "{:<14} {:>9.2f}% {:>9.2f} {:>8.1f} ms {:>7.1f} ms {:>7.1f} ms {:>7.1f} ms {:>7.1f} s "
        "{:>9}\n",
        r.policy, r.slo_attainment() * 100, r.goodput_rps(), ttft.p50_s * 1e3, ttft.p90_s * 1e3,
        ttft.p99_s * 1e3, summarize(r.all.tpot).p90_s * 1e3, summarize(r.all.e2e).p90_s,
        r.rejected_quota + r.rejected_queue);
  }
  return out;
}

std::string compare_to_json(const std::vector<SimReport>& runs, bool with_timing) {
  std::string out = R"({"compare":[)";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    out += (i == 0 ? "" : ",") + runs[i].to_json(with_timing);
  }
  return out + "]}";
}

}  // namespace spillway::sim
