// A tenant's token and request budgets per minute, exact under concurrency.
//
// Model: a sliding window of one minute, kept as time buckets of `granularity`. A reservation
// is charged in full (the request's worst case: prompt tokens + max output tokens, and one
// request) to the bucket of the moment it is made; settle() lowers the charge to the actual
// tokens, release() removes it. A reservation at time t is admitted only if everything charged
// to buckets that end after t - 60 s, plus the new charge, fits both budgets. Hence, for every
// interval of 60 s, the tokens (and requests) admitted in it never exceed the budget: the
// check at the last admission in the interval saw every earlier one (bucketing only makes the
// check more conservative, by up to one granularity). Charges leave the window by time, even
// if their request still runs.
//
// A budget of 0 means unlimited. A worst case larger than the whole token budget can never be
// admitted: kOutOfRange. A worst case that does not fit now: kResourceExhausted, with
// *retry_after set to when enough earlier charges leave the window (rounded up to bucket
// ends) — a retry then succeeds unless others reserved in between.
//
// Thread-safety: safe for concurrent use (one mutex). Time comes from the Clock (simulated in
// `spillway sim` and in tests).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "core/clock.h"
#include "core/status.h"

namespace spillway::fleet {

inline constexpr Nanos kQuotaWindow = std::chrono::minutes(1);

struct QuotaLimits {
  std::int64_t tokens_per_minute = 0;    // 0 = unlimited.
  std::int64_t requests_per_minute = 0;  // 0 = unlimited.
};

struct QuotaOptions {
  Nanos granularity = std::chrono::seconds(1);  // Bucket width; (0, 60 s].
  // Reservations neither settled nor released yet; beyond it reserve() fails with
  // kResourceExhausted (bounds memory when callers leak reservations).
  std::size_t max_open_reservations = 1 << 16;
};

struct Reservation {
  std::uint64_t id = 0;
  std::int64_t tokens = 0;  // The worst case charged.
  TimePoint at;             // When it was admitted.
};

class TokenQuota {
 public:
  // REQUIRES: limits >= 0; 0 < options.granularity <= kQuotaWindow. `clock` must outlive
  // this object.
  TokenQuota(const QuotaLimits& limits, const Clock& clock, const QuotaOptions& options = {});

  // Charges tokens_worst_case (>= 0) and one request. kInvalidArgument for a negative count,
  // kOutOfRange for more tokens than the whole budget, kResourceExhausted when over budget now
  // (or too many open reservations), with *retry_after set when non-null.
  [[nodiscard]] Result<Reservation> reserve(std::int64_t tokens_worst_case,
                                            Nanos* retry_after = nullptr);

  // The request finished having used actual_tokens (clamped to [0, reserved]): lowers the
  // charge and returns the unused part. kNotFound if the reservation is unknown or was already
  // settled or released.
  [[nodiscard]] Result<std::int64_t> settle(const Reservation& reservation,
                                            std::int64_t actual_tokens);
  // The request failed before using anything: removes the charge (tokens and the request).
  // kNotFound as for settle.
  [[nodiscard]] Status release(const Reservation& reservation);

  // Tokens and requests charged inside the current window (for metrics and tests).
  [[nodiscard]] std::int64_t tokens_in_window() const;
  [[nodiscard]] std::int64_t requests_in_window() const;
  [[nodiscard]] const QuotaLimits& limits() const { return limits_; }

 private:
  struct Bucket {
    std::int64_t index = 0;  // Start time / granularity.
    std::int64_t tokens = 0;
    std::int64_t requests = 0;
  };

  [[nodiscard]] std::int64_t bucket_of(TimePoint t) const;
  // Drops buckets that no longer overlap the window ending at `now`. REQUIRES: mutex_ held.
  void expire(TimePoint now);
  [[nodiscard]] Nanos retry_after_locked(TimePoint now, std::int64_t tokens) const;
  // Sums over the buckets inside the window ending now.
  [[nodiscard]] Bucket window_totals() const;
  // Removes `tokens` and `requests` from the bucket of `at` if it is still in the window.
  void uncharge(TimePoint at, std::int64_t tokens, std::int64_t requests);

  const QuotaLimits limits_;
  const Clock& clock_;
  const QuotaOptions options_;

  mutable std::mutex mutex_;
  std::deque<Bucket> buckets_;  // Guarded by mutex_; increasing index.
  std::int64_t tokens_ = 0;     // Guarded by mutex_; sum over buckets_.
  std::int64_t requests_ = 0;   // Guarded by mutex_; sum over buckets_.
  std::uint64_t next_id_ = 1;   // Guarded by mutex_.
  // Open reservation id -> charged tokens. Guarded by mutex_.
  std::unordered_map<std::uint64_t, std::int64_t> open_;
};

}  // namespace spillway::fleet
