#include "sim/trace_workload.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace spillway::sim {
namespace {

// Stream ids for derive_seed (copies use kCopyStream + copy index).
constexpr std::uint64_t kBuilderStream = 1;
constexpr std::uint64_t kPoissonStream = 2;
constexpr std::uint64_t kCopyStream = 1000;

constexpr double kPeakWindowS = 60;
// Arrivals must fit Nanos: stay well below 2^63 ns (292 years).
constexpr double kMaxReplayS = 1e9;

bool later(const auto& a, const auto& b) {
  if (a.arrival != b.arrival) return a.arrival > b.arrival;
  if (a.copy != b.copy) return a.copy > b.copy;
  return a.row > b.row;
}

// Requests/s in the busiest kPeakWindowS of a sorted timed trace (the mean rate when the
// trace is shorter); 0 for a trace of one instant.
double busiest_rate(const std::vector<TraceRequest>& rows) {
  const double span = rows.back().arrival_s - rows.front().arrival_s;
  if (!(span > 0)) return 0;
  if (span < kPeakWindowS) return static_cast<double>(rows.size() - 1) / span;
  std::size_t most = 0;
  std::size_t end = 0;
  for (std::size_t begin = 0; begin < rows.size(); ++begin) {
    end = std::max(end, begin);
    while (end < rows.size() && rows[end].arrival_s < rows[begin].arrival_s + kPeakWindowS)
      ++end;
    most = std::max(most, end - begin);
  }
  return static_cast<double>(most) / kPeakWindowS;
}

}  // namespace

Result<std::unique_ptr<TraceWorkload>> TraceWorkload::create(RequestTrace trace,
                                                             const WorkloadSpec& spec,
                                                             const WorkloadOptions& options) {
  const std::string& name = spec.path;
  if (trace.requests.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "{}: the trace has no requests", name);
  }
  if (trace.requests.size() >= std::numeric_limits<std::uint32_t>::max()) {
    return make_error(ErrorCode::kInvalidArgument, "{}: too many rows", name);
  }
  if (!std::isfinite(spec.time_scale) || !(spec.time_scale > 0)) {
    return make_error(ErrorCode::kInvalidArgument, "scale: {} is not > 0", spec.time_scale);
  }
  if (!std::isfinite(spec.rate) || !(spec.rate > 0)) {
    return make_error(ErrorCode::kInvalidArgument, "rate: {} is not > 0", spec.rate);
  }
  if (options.duration < Nanos{0}) {
    return make_error(ErrorCode::kInvalidArgument, "duration: negative");
  }
  if (trace.has_times) {
    if (spec.rate > options.max_rate_multiplier) {
      return make_error(ErrorCode::kInvalidArgument, "rate: {} > the limit of {} copies", spec.rate,
                        options.max_rate_multiplier);
    }
    for (std::size_t i = 1; i < trace.requests.size(); ++i) {
      if (!(trace.requests[i].arrival_s >= trace.requests[i - 1].arrival_s)) {
        return make_error(ErrorCode::kInvalidArgument, "{}: row {} arrives before row {}", name,
                          i + 1, i);
      }
    }
    if (!(trace.requests.back().arrival_s * spec.time_scale < kMaxReplayS)) {
      return make_error(ErrorCode::kInvalidArgument, "scale: {} makes the replay too long",
                        spec.time_scale);
    }
  } else {
    if (!spec.rate_set) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: the trace has no timestamps; give rate=REQUESTS_PER_S", name);
    }
    if (spec.rate > options.max_trace_rate) {
      return make_error(ErrorCode::kInvalidArgument, "rate: {} requests/s > the limit of {}",
                        spec.rate, options.max_trace_rate);
    }
  }
  RequestBuilderOptions builder_options;
  builder_options.length_scale = spec.length_scale;
  builder_options.max_context = options.max_context;
  builder_options.think_time = options.think_time;
  builder_options.max_open_conversations = options.max_open_conversations;
  builder_options.seed = derive_seed(options.seed, kBuilderStream);
  SPW_ASSIGN_OR_RETURN(RequestBuilder builder,
                       RequestBuilder::create(options.tenants, builder_options));
  return std::unique_ptr<TraceWorkload>(
      new TraceWorkload(std::move(trace), spec, options, std::move(builder)));
}

TraceWorkload::TraceWorkload(RequestTrace trace, const WorkloadSpec& spec,
                             const WorkloadOptions& options, RequestBuilder builder)
    : trace_(std::move(trace)),
      time_scale_(spec.time_scale),
      rate_(spec.rate),
      duration_(options.duration),
      builder_(std::move(builder)),
      arrivals_(derive_seed(options.seed, kPoissonStream)) {
  if (!trace_.has_times) {
    peak_rate_ = rate_ / time_scale_;
    return;
  }
  peak_rate_ = busiest_rate(trace_.requests) * rate_ / time_scale_;
  // floor(R) whole copies, then one thinned copy for the fraction.
  const double whole = std::floor(rate_);
  const double fraction = rate_ - whole;
  const auto count = static_cast<std::uint32_t>(whole) + (fraction > 1e-12 ? 1 : 0);
  copies_.reserve(count);
  for (std::uint32_t c = 0; c < count; ++c) {
    Copy copy{SeededRandom(derive_seed(options.seed, kCopyStream + c))};
    copy.jitter = c > 0;
    copy.keep = (c == count - 1 && fraction > 1e-12) ? fraction : 1;
    copies_.push_back(std::move(copy));
  }
  heap_.reserve(count);
  for (std::uint32_t c = 0; c < count; ++c)
    advance(c);
}

Nanos TraceWorkload::to_nanos(double trace_seconds) const {
  return Nanos{std::llround(trace_seconds * time_scale_ * 1e9)};
}

void TraceWorkload::advance(std::uint32_t c) {
  Copy& copy = copies_[c];
  const std::vector<TraceRequest>& rows = trace_.requests;
  while (copy.next_row < rows.size()) {
    const std::size_t row = copy.next_row++;
    if (copy.keep < 1 && !(copy.rng.uniform() < copy.keep)) continue;
    double t = rows[row].arrival_s;
    if (copy.jitter && row + 1 < rows.size()) {
      t += copy.rng.uniform() * (rows[row + 1].arrival_s - t);
    }
    heap_.push_back({to_nanos(t), c, static_cast<std::uint32_t>(row)});
    std::push_heap(heap_.begin(), heap_.end(),
                   [](const Pending& a, const Pending& b) { return later(a, b); });
    return;
  }
}

std::optional<SimRequest> TraceWorkload::next() {
  const TraceRequest* row = nullptr;
  Nanos arrival{0};
  if (trace_.has_times) {
    if (heap_.empty()) return std::nullopt;
    std::pop_heap(heap_.begin(), heap_.end(),
                  [](const Pending& a, const Pending& b) { return later(a, b); });
    const Pending top = heap_.back();
    heap_.pop_back();
    if (duration_ > Nanos{0} && top.arrival >= duration_) {
      heap_.clear();  // Every later arrival is past the end too.
      return std::nullopt;
    }
    advance(top.copy);
    row = &trace_.requests[top.row];
    arrival = top.arrival;
  } else {
    if (poisson_row_ >= trace_.requests.size()) return std::nullopt;
    poisson_s_ += arrivals_.exponential(1 / rate_);
    arrival = Nanos{std::llround(std::min(poisson_s_ * time_scale_, kMaxReplayS) * 1e9)};
    if (duration_ > Nanos{0} && arrival >= duration_) {
      poisson_row_ = trace_.requests.size();
      return std::nullopt;
    }
    row = &trace_.requests[poisson_row_++];
  }
  return builder_.build(
      arrival, LengthPair{std::max(row->context_tokens, 1), std::max(row->generated_tokens, 1)});
}

}  // namespace spillway::sim
