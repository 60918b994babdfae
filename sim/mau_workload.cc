#include "sim/mau_workload.h"

#include <cmath>
#include <utility>

#include "core/request_trace.h"

namespace spillway::sim {
namespace {

constexpr std::uint64_t kBuilderStream = 1;
constexpr std::uint64_t kArrivalStream = 2;
constexpr std::uint64_t kLengthStream = 3;

}  // namespace

Result<std::unique_ptr<MauWorkload>> MauWorkload::create(const WorkloadSpec& spec,
                                                         const WorkloadOptions& options) {
  if (spec.mau < 1 || spec.mau > options.max_mau) {
    return make_error(ErrorCode::kInvalidArgument, "mau: {} outside [1, {}]", spec.mau,
                      options.max_mau);
  }
  if (!std::isfinite(spec.hours) || !(spec.hours > 0) || spec.hours > options.max_hours) {
    return make_error(ErrorCode::kInvalidArgument, "hours: {} outside (0, {}]", spec.hours,
                      options.max_hours);
  }
  if (spec.start_hour != -1 &&
      (!std::isfinite(spec.start_hour) || spec.start_hour < 0 || spec.start_hour >= 24)) {
    return make_error(ErrorCode::kInvalidArgument, "start_hour: {} outside [0, 24)",
                      spec.start_hour);
  }
  if (options.duration < Nanos{0}) {
    return make_error(ErrorCode::kInvalidArgument, "duration: negative");
  }
  SPW_ASSIGN_OR_RETURN(DiurnalRate rate, DiurnalRate::create(spec.mau, options.diurnal));
  LengthSampler lengths = LengthSampler::azure_conversation();
  if (!spec.lengths_path.empty()) {
    SPW_ASSIGN_OR_RETURN(RequestTrace trace, load_request_trace(spec.lengths_path));
    auto sampler = LengthSampler::from_trace(trace);
    if (!sampler.ok()) return sampler.error().with_context(spec.lengths_path);
    lengths = std::move(sampler).value();
  }
  RequestBuilderOptions builder_options;
  builder_options.length_scale = spec.length_scale;
  builder_options.max_context = options.max_context;
  builder_options.think_time = options.think_time;
  builder_options.max_open_conversations = options.max_open_conversations;
  builder_options.seed = derive_seed(options.seed, kBuilderStream);
  SPW_ASSIGN_OR_RETURN(RequestBuilder builder,
                       RequestBuilder::create(options.tenants, builder_options));
  const double start_hour = spec.start_hour == -1 ? options.diurnal.peak_hour : spec.start_hour;
  double end_s = spec.hours * 3600;
  if (options.duration > Nanos{0}) end_s = std::min(end_s, to_seconds(options.duration));
  return std::unique_ptr<MauWorkload>(new MauWorkload(
      std::move(rate), std::move(lengths), std::move(builder), start_hour, end_s, options.seed));
}

MauWorkload::MauWorkload(DiurnalRate rate, LengthSampler lengths, RequestBuilder builder,
                         double start_hour, double end_s, std::uint64_t seed)
    : rate_(std::move(rate)),
      lengths_(std::move(lengths)),
      builder_(std::move(builder)),
      start_hour_(start_hour),
      end_s_(end_s),
      arrivals_(derive_seed(seed, kArrivalStream)),
      length_rng_(derive_seed(seed, kLengthStream)) {}

std::optional<SimRequest> MauWorkload::next() {
  // Thinning (Lewis & Shedler): candidates at the daily peak rate, each kept with probability
  // rate(t) / peak.
  const double bound = rate_.peak_rate();
  while (!done_) {
    t_s_ += arrivals_.exponential(1 / bound);
    if (!(t_s_ < end_s_)) {
      done_ = true;
      break;
    }
    const double hour = start_hour_ + t_s_ / 3600;
    if (arrivals_.uniform() * bound < rate_.rate_at(hour)) {
      const Nanos arrival{std::llround(t_s_ * 1e9)};
      return builder_.build(arrival, lengths_.sample(length_rng_));
    }
  }
  return std::nullopt;
}

}  // namespace spillway::sim
