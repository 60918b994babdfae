// The gateway's bounded forwarding capacity: a fixed set of worker threads that run upstream
// calls (net::HttpClient blocks), and in front of them a bounded waiting room ordered by
// priority class (fleet::AdmissionQueue: interactive before standard before batch, FIFO within
// a class) with a bounded wait.
//
// submit() never blocks. Each submitted task either runs exactly once on a worker, or its
// reject callback runs exactly once instead: when the waiting room is full of equal or higher
// classes (kResourceExhausted), when a higher-class arrival displaces it, when it waited
// longer than max_wait (kDeadlineExceeded), or when the pool stops (kUnavailable). Reject
// callbacks run without the pool's lock, on the submitting thread, the reaper thread or the
// stopping thread.
//
// Thread-safety: safe for concurrent use. The destructor rejects waiting tasks, lets running
// ones finish and joins the threads; it must not run on a worker.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/admission.h"
#include "fleet/priority.h"

namespace spillway::gateway {

class ProxyPool {
 public:
  // `worker` is the index of the running thread, in [0, workers).
  using Task = std::function<void(std::size_t worker)>;
  using Reject = std::function<void(const Error& why)>;

  // REQUIRES: workers >= 1, max_queued >= 1, max_wait > 0; `clock` outlives the pool.
  ProxyPool(std::size_t workers, std::size_t max_queued, Nanos max_wait, const Clock& clock);
  ~ProxyPool();
  ProxyPool(const ProxyPool&) = delete;
  ProxyPool& operator=(const ProxyPool&) = delete;

  void submit(fleet::Priority priority, Task task, Reject reject);

  [[nodiscard]] std::size_t workers() const { return threads_.size(); }
  [[nodiscard]] std::size_t busy() const;
  [[nodiscard]] std::size_t queued() const;

 private:
  struct Pending {
    Task task;
    Reject reject;
    TimePoint deadline;
  };

  void work(std::size_t index);
  void reap();

  const Nanos max_wait_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable reap_wake_;
  fleet::AdmissionQueue queue_;                                // Guarded by mutex_.
  std::unordered_map<std::uint64_t, Pending> pending_;         // Guarded by mutex_; by ticket id.
  std::deque<std::pair<TimePoint, std::uint64_t>> deadlines_;  // Guarded; in submit order.
  std::uint64_t next_id_ = 1;                                  // Guarded by mutex_.
  std::size_t busy_ = 0;                                       // Guarded by mutex_.
  bool stopping_ = false;                                      // Guarded by mutex_.
  std::vector<std::thread> threads_;
  std::thread reaper_;
};

}  // namespace spillway::gateway
