// The last N routing decisions of the gateway, for GET /v1/gateway/decisions and the status
// page: when, for whom, which replica (and where it is), why, and the replica's load as the
// policy saw it.
//
// Thread-safety: safe for concurrent use (one mutex; add() is O(1), and once the log is full
// it copies into the oldest entry's storage, so a steady stream of decisions allocates nothing
// here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace spillway::gateway {

struct RoutingDecision {
  std::int64_t unix_ms = 0;  // Wall-clock time of the decision.
  std::string request_id;
  std::string tenant;
  std::string model;
  std::string priority;
  std::string policy;  // The routing policy's name.
  std::string replica;
  std::string provider;
  std::string pool;
  std::string capacity;
  std::int32_t attempt = 1;  // 1 = first choice, 2.. = failover.
  std::string reason;        // "first choice", or why the previous attempt failed.
  std::int64_t waiting = 0;  // The load the policy saw (including the gateway's own
  std::int64_t running = 0;  // outstanding requests to the replica).
  double kv_usage = 0;
};

class DecisionLog {
 public:
  // REQUIRES: capacity >= 1.
  explicit DecisionLog(std::size_t capacity) : capacity_(capacity) {}

  void add(const RoutingDecision& decision);
  // Adds a decision that `fill(RoutingDecision&)` writes in place, into the oldest entry once
  // the log is full (assigning its strings reuses their storage: no copy of a whole decision,
  // no allocation). `fill` must set every field: the entry may hold an older decision. It runs
  // with the log's mutex held: it must be quick and not call back.
  template <typename Fill>
  void add_with(Fill&& fill) {
    std::lock_guard lock(mutex_);
    if (decisions_.size() < capacity_) {
      fill(decisions_.emplace_back());
      return;
    }
    fill(decisions_[next_]);
    next_ = (next_ + 1) % capacity_;
  }
  // Newest first.
  [[nodiscard]] std::vector<RoutingDecision> recent() const;
  // {"object":"list","data":[{...}, ...]}, newest first.
  [[nodiscard]] std::string render_json() const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  // Guarded by mutex_: a ring; until it is full, oldest first; after, the oldest at next_.
  std::vector<RoutingDecision> decisions_;
  std::size_t next_ = 0;
};

}  // namespace spillway::gateway
