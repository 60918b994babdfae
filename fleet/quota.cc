#include "fleet/quota.h"

#include <algorithm>

namespace spillway::fleet {

namespace {

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace

TokenQuota::TokenQuota(const QuotaLimits& limits, const Clock& clock, const QuotaOptions& options)
    : limits_(limits), clock_(clock), options_(options) {}

std::int64_t TokenQuota::bucket_of(TimePoint t) const {
  return floor_div(t.time_since_epoch().count(), options_.granularity.count());
}

void TokenQuota::expire(TimePoint now) {
  const std::int64_t g = options_.granularity.count();
  const std::int64_t horizon = (now - kQuotaWindow).time_since_epoch().count();
  while (!buckets_.empty() && (buckets_.front().index + 1) * g <= horizon) {
    tokens_ -= buckets_.front().tokens;
    requests_ -= buckets_.front().requests;
    buckets_.pop_front();
  }
}

Nanos TokenQuota::retry_after_locked(TimePoint now, std::int64_t tokens) const {
  const std::int64_t g = options_.granularity.count();
  auto fits = [&](std::int64_t t, std::int64_t r) {
    return (limits_.tokens_per_minute == 0 || t + tokens <= limits_.tokens_per_minute) &&
           (limits_.requests_per_minute == 0 || r + 1 <= limits_.requests_per_minute);
  };
  std::int64_t t = tokens_;
  std::int64_t r = requests_;
  for (const Bucket& b : buckets_) {
    t -= b.tokens;
    r -= b.requests;
    if (fits(t, r)) {
      const TimePoint free_at = TimePoint(Nanos((b.index + 1) * g)) + kQuotaWindow;
      return std::max(Nanos(0), free_at - now);
    }
  }
  return options_.granularity;  // Unreachable when tokens fit the budget at all.
}

Result<Reservation> TokenQuota::reserve(std::int64_t tokens_worst_case, Nanos* retry_after) {
  if (tokens_worst_case < 0) {
    return make_error(ErrorCode::kInvalidArgument, "token count {} is negative", tokens_worst_case);
  }
  if (limits_.tokens_per_minute > 0 && tokens_worst_case > limits_.tokens_per_minute) {
    return make_error(ErrorCode::kOutOfRange,
                      "the request may use {} tokens, more than the tenant's whole budget of {} "
                      "tokens per minute",
                      tokens_worst_case, limits_.tokens_per_minute);
  }
  std::lock_guard lock(mutex_);
  // Read under the lock, so reservations enter buckets in time order.
  const TimePoint now = clock_.now();
  expire(now);
  if (open_.size() >= options_.max_open_reservations) {
    if (retry_after != nullptr) *retry_after = options_.granularity;
    return make_error(ErrorCode::kResourceExhausted,
                      "the tenant has {} requests in flight, the limit", open_.size());
  }
  const bool tokens_fit =
      limits_.tokens_per_minute == 0 || tokens_ + tokens_worst_case <= limits_.tokens_per_minute;
  const bool requests_fit =
      limits_.requests_per_minute == 0 || requests_ + 1 <= limits_.requests_per_minute;
  if (!tokens_fit || !requests_fit) {
    const Nanos wait = retry_after_locked(now, tokens_worst_case);
    if (retry_after != nullptr) *retry_after = wait;
    return make_error(
        ErrorCode::kResourceExhausted, "{} quota exceeded ({} per minute); retry after {:.1f} s",
        tokens_fit ? "request" : "token",
        tokens_fit ? limits_.requests_per_minute : limits_.tokens_per_minute, to_seconds(wait));
  }
  const std::int64_t index = bucket_of(now);
  if (buckets_.empty() || buckets_.back().index < index) buckets_.push_back(Bucket{index, 0, 0});
  // A clock never goes backwards, so `now` falls in the last bucket.
  buckets_.back().tokens += tokens_worst_case;
  buckets_.back().requests += 1;
  tokens_ += tokens_worst_case;
  requests_ += 1;
  const Reservation reservation{next_id_++, tokens_worst_case, now};
  open_.emplace(reservation.id, tokens_worst_case);
  return reservation;
}

void TokenQuota::uncharge(TimePoint at, std::int64_t tokens, std::int64_t requests) {
  if (buckets_.empty()) return;
  const std::int64_t offset = bucket_of(at) - buckets_.front().index;
  if (offset < 0 || offset >= static_cast<std::int64_t>(buckets_.size())) return;
  Bucket& b = buckets_[static_cast<std::size_t>(offset)];
  b.tokens -= tokens;
  b.requests -= requests;
  tokens_ -= tokens;
  requests_ -= requests;
}

Result<std::int64_t> TokenQuota::settle(const Reservation& reservation,
                                        std::int64_t actual_tokens) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(reservation.id);
  if (it == open_.end()) {
    return make_error(ErrorCode::kNotFound, "reservation {} is not open", reservation.id);
  }
  const std::int64_t charged = it->second;
  const std::int64_t used = std::clamp<std::int64_t>(actual_tokens, 0, charged);
  open_.erase(it);
  expire(clock_.now());
  uncharge(reservation.at, charged - used, 0);
  return charged - used;
}

Status TokenQuota::release(const Reservation& reservation) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(reservation.id);
  if (it == open_.end()) {
    return make_error(ErrorCode::kNotFound, "reservation {} is not open", reservation.id);
  }
  const std::int64_t charged = it->second;
  open_.erase(it);
  expire(clock_.now());
  uncharge(reservation.at, charged, 1);
  return Status();
}

TokenQuota::Bucket TokenQuota::window_totals() const {
  std::lock_guard lock(mutex_);
  const std::int64_t horizon = (clock_.now() - kQuotaWindow).time_since_epoch().count();
  Bucket totals;
  for (const Bucket& b : buckets_) {
    if ((b.index + 1) * options_.granularity.count() <= horizon) continue;
    totals.tokens += b.tokens;
    totals.requests += b.requests;
  }
  return totals;
}

std::int64_t TokenQuota::tokens_in_window() const {
  return window_totals().tokens;
}

std::int64_t TokenQuota::requests_in_window() const {
  return window_totals().requests;
}

}  // namespace spillway::fleet
