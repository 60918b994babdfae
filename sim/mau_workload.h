// `--workload mau:…`: the synthetic diurnal load of N monthly active users (sim/diurnal.h),
// a non-homogeneous Poisson process generated on the fly by thinning a homogeneous one at the
// daily peak rate. Memory is O(1) in the number of requests (plus open conversations, bounded).
//
// Thread-safety: one thread.
#pragma once

#include <memory>
#include <optional>

#include "core/random.h"
#include "core/status.h"

#include "sim/diurnal.h"
#include "sim/length_sampler.h"
#include "sim/request_builder.h"
#include "sim/workload.h"

namespace spillway::sim {

class MauWorkload final : public Workload {
 public:
  // kInvalidArgument for a bad option or a limit exceeded; kNotFound for a missing lengths
  // file.
  [[nodiscard]] static Result<std::unique_ptr<MauWorkload>> create(const WorkloadSpec& spec,
                                                                   const WorkloadOptions& options);

  [[nodiscard]] std::optional<SimRequest> next() override;
  [[nodiscard]] double peak_rate() const override { return rate_.peak_rate(); }

  [[nodiscard]] const DiurnalRate& rate() const { return rate_; }
  [[nodiscard]] double start_hour() const { return start_hour_; }
  [[nodiscard]] double end_seconds() const { return end_s_; }

 private:
  MauWorkload(DiurnalRate rate, LengthSampler lengths, RequestBuilder builder, double start_hour,
              double end_s, std::uint64_t seed);

  DiurnalRate rate_;
  LengthSampler lengths_;
  RequestBuilder builder_;
  double start_hour_;
  double end_s_;  // Seconds after the start.
  SeededRandom arrivals_;
  SeededRandom length_rng_;
  double t_s_ = 0;
  bool done_ = false;
};

}  // namespace spillway::sim
