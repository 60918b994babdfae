#include "sim/diurnal.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace spillway::sim {
namespace {

constexpr double kSecondsPerDay = 86400;
constexpr double kOmega = 2 * std::numbers::pi / 24;  // Radians per hour.

// 1 + a1 cos x + a2 cos 2x at phase x.
double shape(double a1, double a2, double x) {
  return 1 + a1 * std::cos(x) + a2 * std::cos(2 * x);
}

bool finite_positive(double v) {
  return std::isfinite(v) && v > 0;
}

}  // namespace

Result<DiurnalRate> DiurnalRate::create(std::int64_t monthly_active_users,
                                        const DiurnalParams& params) {
  if (monthly_active_users < 1) {
    return make_error(ErrorCode::kInvalidArgument, "mau: {} < 1", monthly_active_users);
  }
  if (!finite_positive(params.daily_active_ratio) || params.daily_active_ratio > 1) {
    return make_error(ErrorCode::kInvalidArgument, "daily_active_ratio: {} outside (0, 1]",
                      params.daily_active_ratio);
  }
  if (!finite_positive(params.sessions_per_daily_active)) {
    return make_error(ErrorCode::kInvalidArgument, "sessions_per_daily_active: {} is not > 0",
                      params.sessions_per_daily_active);
  }
  if (!finite_positive(params.requests_per_session)) {
    return make_error(ErrorCode::kInvalidArgument, "requests_per_session: {} is not > 0",
                      params.requests_per_session);
  }
  if (!std::isfinite(params.peak_hour) || params.peak_hour < 0 || params.peak_hour >= 24) {
    return make_error(ErrorCode::kInvalidArgument, "peak_hour: {} outside [0, 24)",
                      params.peak_hour);
  }
  if (!std::isfinite(params.harmonic1) || !std::isfinite(params.harmonic2)) {
    return make_error(ErrorCode::kInvalidArgument, "harmonics: not finite");
  }
  const double mean = static_cast<double>(monthly_active_users) * params.daily_active_ratio *
                      params.sessions_per_daily_active * params.requests_per_session /
                      kSecondsPerDay;
  DiurnalRate rate(params, mean);
  if (!(rate.trough_factor_ > 0)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "harmonics: a1 = {}, a2 = {} make the rate reach {} × the mean",
                      params.harmonic1, params.harmonic2, rate.trough_factor_);
  }
  if (!(rate.peak_factor_ > 0) || rate.trough_factor_ > rate.peak_factor_) {
    return make_error(ErrorCode::kInternal, "diurnal extremes");
  }
  return rate;
}

DiurnalRate::DiurnalRate(const DiurnalParams& params, double mean_rate)
    : params_(params), mean_rate_(mean_rate) {
  // d/dx (1 + a1 cos x + a2 cos 2x) = -sin x (a1 + 4 a2 cos x): extremes at 0, π and where
  // cos x = -a1 / (4 a2).
  const double a1 = params.harmonic1;
  const double a2 = params.harmonic2;
  double lo = std::min(shape(a1, a2, 0), shape(a1, a2, std::numbers::pi));
  double hi = std::max(shape(a1, a2, 0), shape(a1, a2, std::numbers::pi));
  if (a2 != 0) {
    const double c = -a1 / (4 * a2);
    if (c >= -1 && c <= 1) {
      const double v = shape(a1, a2, std::acos(c));
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  peak_factor_ = hi;
  trough_factor_ = lo;
}

double DiurnalRate::rate_at(double hour) const {
  return mean_rate_ *
         shape(params_.harmonic1, params_.harmonic2, kOmega * (hour - params_.peak_hour));
}

double DiurnalRate::expected_requests(double start_hour, double hours) const {
  // ∫ 1 + a1 cos(ω(h − p)) + a2 cos(2ω(h − p)) dh, in hours, then × 3600 s/h.
  auto antiderivative = [&](double h) {
    const double x = kOmega * (h - params_.peak_hour);
    return h + params_.harmonic1 * std::sin(x) / kOmega +
           params_.harmonic2 * std::sin(2 * x) / (2 * kOmega);
  };
  return mean_rate_ * 3600 * (antiderivative(start_hour + hours) - antiderivative(start_hour));
}

}  // namespace spillway::sim
