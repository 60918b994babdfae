// The gateway's waiting room when the fleet is saturated: a bounded queue of request tickets,
// interactive before standard before batch, first come first served within a class.
//
// When full, an arriving ticket displaces the most recently queued ticket of a strictly lower
// class (which the caller then rejects, e.g. 429/503); if there is none, the arrival is
// refused with kResourceExhausted. So a flood of batch requests never keeps interactive ones
// out, and a class never displaces its own members.
//
// Thread-safety: not thread-safe; the owner serializes calls (the gateway under its own lock,
// the simulator on its one thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/priority.h"

namespace spillway::fleet {

struct AdmissionTicket {
  std::uint64_t id = 0;  // The caller's request id; unique among queued tickets.
  Priority priority = Priority::kStandard;
  TimePoint enqueued_at;
};

class AdmissionQueue {
 public:
  // REQUIRES: capacity >= 1.
  explicit AdmissionQueue(std::size_t capacity);

  // Queues `ticket`. On success, the ticket it displaced, if any. kAlreadyExists when the id is
  // queued already; kResourceExhausted when full of tickets of its class or higher.
  [[nodiscard]] Result<std::optional<AdmissionTicket>> push(const AdmissionTicket& ticket);
  // The next ticket to serve (highest class, oldest), removed; nullopt when empty.
  [[nodiscard]] std::optional<AdmissionTicket> pop();
  // The next ticket to serve, not removed.
  [[nodiscard]] std::optional<AdmissionTicket> peek() const;
  // Removes a queued ticket (cancelled or timed out); false when it is not queued.
  bool remove(std::uint64_t id);

  [[nodiscard]] std::size_t size() const { return index_.size(); }
  [[nodiscard]] std::size_t size(Priority priority) const {
    return queues_[static_cast<std::size_t>(priority)].size();
  }
  [[nodiscard]] bool empty() const { return index_.empty(); }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }

 private:
  using Queue = std::list<AdmissionTicket>;
  std::size_t capacity_;
  std::array<Queue, kNumPriorities> queues_;
  std::unordered_map<std::uint64_t, Queue::iterator> index_;
};

}  // namespace spillway::fleet
