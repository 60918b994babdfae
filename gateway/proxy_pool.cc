#include "gateway/proxy_pool.h"

#include <algorithm>
#include <chrono>

namespace spillway::gateway {

ProxyPool::ProxyPool(std::size_t workers, std::size_t max_queued, Nanos max_wait,
                     const Clock& clock)
    : max_wait_(max_wait), clock_(clock), queue_(std::max<std::size_t>(max_queued, 1)) {
  threads_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i)
    threads_.emplace_back([this, i] { work(i); });
  reaper_ = std::thread([this] { reap(); });
}

ProxyPool::~ProxyPool() {
  std::vector<Reject> rejected;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    while (auto t = queue_.pop()) {
      auto it = pending_.find(t->id);
      if (it == pending_.end()) continue;
      rejected.push_back(std::move(it->second.reject));
      pending_.erase(it);
    }
    deadlines_.clear();
  }
  work_ready_.notify_all();
  reap_wake_.notify_all();
  const Error stopping = make_error(ErrorCode::kUnavailable, "the gateway is shutting down");
  for (Reject& r : rejected)
    r(stopping);
  for (std::thread& t : threads_)
    t.join();
  reaper_.join();
}

void ProxyPool::submit(fleet::Priority priority, Task task, Reject reject) {
  std::optional<Reject> refuse_new;
  std::optional<Reject> displaced;
  Error why(ErrorCode::kResourceExhausted, "");
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      refuse_new = std::move(reject);
      why = make_error(ErrorCode::kUnavailable, "the gateway is shutting down");
    } else {
      const TimePoint now = clock_.now();
      const std::uint64_t id = next_id_++;
      auto pushed = queue_.push(fleet::AdmissionTicket{id, priority, now});
      if (!pushed.ok()) {
        refuse_new = std::move(reject);
        why = make_error(ErrorCode::kResourceExhausted,
                         "the fleet is saturated: {} requests are already waiting", queue_.size());
      } else {
        pending_.emplace(id, Pending{std::move(task), std::move(reject), now + max_wait_});
        deadlines_.emplace_back(now + max_wait_, id);
        if (const auto& d = *pushed) {
          auto it = pending_.find(d->id);
          if (it != pending_.end()) {
            displaced = std::move(it->second.reject);
            pending_.erase(it);
          }
          why = make_error(ErrorCode::kResourceExhausted,
                           "the fleet is saturated and requests of a higher priority arrived");
        }
        if (deadlines_.size() == 1) reap_wake_.notify_one();
      }
    }
  }
  work_ready_.notify_one();
  if (refuse_new) (*refuse_new)(why);
  if (displaced) (*displaced)(why);
}

std::size_t ProxyPool::busy() const {
  std::lock_guard lock(mutex_);
  return busy_;
}

std::size_t ProxyPool::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void ProxyPool::work(std::size_t index) {
  std::unique_lock lock(mutex_);
  while (true) {
    work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // Stopping, nothing left.
    const auto ticket = queue_.pop();
    auto it = pending_.find(ticket->id);
    if (it == pending_.end()) continue;
    Task task = std::move(it->second.task);
    pending_.erase(it);
    ++busy_;
    lock.unlock();
    task(index);
    task = nullptr;  // Releases what the task holds before the next wait.
    lock.lock();
    --busy_;
  }
}

void ProxyPool::reap() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    // Entries whose task already started or was displaced are dropped lazily.
    while (!deadlines_.empty() && !pending_.contains(deadlines_.front().second)) {
      deadlines_.pop_front();
    }
    if (deadlines_.empty()) {
      reap_wake_.wait(lock);
      continue;
    }
    const TimePoint now = clock_.now();
    std::vector<Reject> expired;
    while (!deadlines_.empty() && deadlines_.front().first <= now) {
      const std::uint64_t id = deadlines_.front().second;
      deadlines_.pop_front();
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      queue_.remove(id);
      expired.push_back(std::move(it->second.reject));
      pending_.erase(it);
    }
    if (!expired.empty()) {
      lock.unlock();
      const Error late = make_error(ErrorCode::kDeadlineExceeded,
                                    "the fleet is saturated: no capacity within the queue wait");
      for (Reject& r : expired)
        r(late);
      lock.lock();
      continue;
    }
    // Real time bounds the sleep so that a simulated clock is still re-read regularly.
    const Nanos left = deadlines_.front().first - now;
    reap_wake_.wait_for(lock, std::min<Nanos>(left, std::chrono::milliseconds(50)));
  }
}

}  // namespace spillway::gateway
