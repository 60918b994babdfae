// The monthly-active-users → requests/s model behind `--workload mau:N` (docs/sim/workload.md
// derives it and labels each assumption):
//
//   mean_rate  = N · daily_active_ratio · sessions_per_daily_active · requests_per_session
//                / 86400 s
//   rate(h)    = mean_rate · (1 + a1·cos(2π(h − peak_hour)/24) + a2·cos(4π(h − peak_hour)/24))
//
// h is the local hour of day in [0, 24). The cosines average to zero over a day, so mean_rate
// is the daily mean; with the defaults (a1 = 0.5, a2 = 0.1) the peak is 1.6 × the mean at
// peak_hour and the trough 0.6 × the mean twelve hours later.
//
// Thread-safety: an immutable value.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace spillway::sim {

struct DiurnalParams {
  double daily_active_ratio = 0.25;        // DAU / MAU, in (0, 1].
  double sessions_per_daily_active = 2.5;  // Sessions a daily active user opens per day, > 0.
  double requests_per_session = 4;         // Model requests per session, > 0.
  double peak_hour = 14;                   // Local hour of the daily peak, [0, 24).
  double harmonic1 = 0.5;                  // a1: daily swing, relative to the mean.
  double harmonic2 = 0.1;                  // a2: twice-daily component.
};

class DiurnalRate {
 public:
  // kInvalidArgument naming the parameter when one is out of range or the rate would reach
  // zero or below at some hour (|a1| + |a2| must keep the curve positive).
  [[nodiscard]] static Result<DiurnalRate> create(std::int64_t monthly_active_users,
                                                  const DiurnalParams& params);

  [[nodiscard]] const DiurnalParams& params() const { return params_; }
  // Requests/s averaged over a day.
  [[nodiscard]] double mean_rate() const { return mean_rate_; }
  // Requests/s at local hour `hour` (any real; taken modulo 24).
  [[nodiscard]] double rate_at(double hour) const;
  // The largest and smallest rate_at over a day.
  [[nodiscard]] double peak_rate() const { return mean_rate_ * peak_factor_; }
  [[nodiscard]] double trough_rate() const { return mean_rate_ * trough_factor_; }
  // ∫ rate_at over [start_hour, start_hour + hours] in requests (the expected count).
  [[nodiscard]] double expected_requests(double start_hour, double hours) const;

 private:
  DiurnalRate(const DiurnalParams& params, double mean_rate);

  DiurnalParams params_;
  double mean_rate_ = 0;
  double peak_factor_ = 1;
  double trough_factor_ = 1;
};

}  // namespace spillway::sim
