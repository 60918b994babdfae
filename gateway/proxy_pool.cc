#include "gateway/proxy_pool.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <vector>

namespace spillway::gateway {

void ProxyPool::Slot::reset() {
  if (std::shared_ptr<State> state = state_.lock()) State::release(state);
  state_.reset();
}

void ProxyPool::State::release(const std::shared_ptr<State>& self) {
  Task next;
  {
    std::lock_guard lock(self->mutex);
    --self->busy;
    while (!self->stopping) {
      const auto ticket = self->queue.pop();
      if (!ticket) break;
      auto it = self->pending.find(ticket->id);
      if (it == self->pending.end()) continue;
      next = std::move(it->second.task);
      self->pending.erase(it);
      ++self->busy;
      break;
    }
    self->note_queue();
  }
  if (next) next(Slot(self));
}

ProxyPool::ProxyPool(std::size_t slots, std::size_t max_queued, Nanos max_wait, const Clock& clock)
    : max_wait_(max_wait),
      clock_(clock),
      state_(std::make_shared<State>(std::max<std::size_t>(slots, 1),
                                     std::max<std::size_t>(max_queued, 1))) {
  reaper_ = std::thread([this] { reap(); });
}

ProxyPool::~ProxyPool() {
  std::vector<Reject> rejected;
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    while (auto t = state_->queue.pop()) {
      auto it = state_->pending.find(t->id);
      if (it == state_->pending.end()) continue;
      rejected.push_back(std::move(it->second.reject));
      state_->pending.erase(it);
    }
    state_->deadlines.clear();
    state_->note_queue();
  }
  state_->reap_wake.notify_all();
  const Error stopping = make_error(ErrorCode::kUnavailable, "the gateway is shutting down");
  for (Reject& r : rejected)
    r(stopping);
  reaper_.join();
}

void ProxyPool::submit(fleet::Priority priority, Task task, Reject reject) {
  std::optional<Reject> refuse_new;
  std::optional<Reject> displaced;
  bool start_now = false;
  Error why(ErrorCode::kResourceExhausted, "");
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopping) {
      refuse_new = std::move(reject);
      why = make_error(ErrorCode::kUnavailable, "the gateway is shutting down");
    } else if (s.busy < s.slots && s.queue.empty()) {
      ++s.busy;
      start_now = true;
    } else {
      const TimePoint now = clock_.now();
      const std::uint64_t id = s.next_id++;
      auto pushed = s.queue.push(fleet::AdmissionTicket{id, priority, now});
      if (!pushed.ok()) {
        refuse_new = std::move(reject);
        why = make_error(ErrorCode::kResourceExhausted,
                         "the fleet is saturated: {} requests are already waiting", s.queue.size());
      } else {
        s.pending.emplace(id, Pending{std::move(task), std::move(reject), now + max_wait_});
        s.deadlines.emplace_back(now + max_wait_, id);
        if (const auto& d = *pushed) {
          auto it = s.pending.find(d->id);
          if (it != s.pending.end()) {
            displaced = std::move(it->second.reject);
            s.pending.erase(it);
          }
          why = make_error(ErrorCode::kResourceExhausted,
                           "the fleet is saturated and requests of a higher priority arrived");
        }
        if (s.deadlines.size() == 1) s.reap_wake.notify_one();
      }
    }
    s.note_queue();
  }
  if (start_now) task(Slot(state_));
  if (refuse_new) (*refuse_new)(why);
  if (displaced) (*displaced)(why);
}

std::size_t ProxyPool::slots() const {
  return state_->slots;
}

std::size_t ProxyPool::busy() const {
  std::lock_guard lock(state_->mutex);
  return state_->busy;
}

std::size_t ProxyPool::queued() const {
  return state_->queued.load(std::memory_order_relaxed);
}

void ProxyPool::reap() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  while (!s.stopping) {
    // Entries whose task already started or was displaced are dropped lazily.
    while (!s.deadlines.empty() && !s.pending.contains(s.deadlines.front().second)) {
      s.deadlines.pop_front();
    }
    if (s.deadlines.empty()) {
      s.reap_wake.wait(lock);
      continue;
    }
    const TimePoint now = clock_.now();
    std::vector<Reject> expired;
    while (!s.deadlines.empty() && s.deadlines.front().first <= now) {
      const std::uint64_t id = s.deadlines.front().second;
      s.deadlines.pop_front();
      auto it = s.pending.find(id);
      if (it == s.pending.end()) continue;
      s.queue.remove(id);
      expired.push_back(std::move(it->second.reject));
      s.pending.erase(it);
    }
    s.note_queue();
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
    const Nanos left = s.deadlines.front().first - now;
    s.reap_wake.wait_for(lock, std::min<Nanos>(left, std::chrono::milliseconds(50)));
  }
}

}  // namespace spillway::gateway
