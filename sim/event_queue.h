// The simulator's agenda: a min-heap of events ordered by (time, sequence number). The
// sequence number is assigned at push, so events at the same time come out in the order they
// were pushed — the run is deterministic without comparing payloads.
//
// An event carries a kind and two integers whose meaning the kind defines (a replica index
// and a generation, a request id, a pool index...). Cancellation is lazy: the owner keeps a
// generation per source and ignores events whose generation is stale.
//
// Thread-safety: none; the simulator's one thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/clock.h"

namespace spillway::sim {

enum class EventKind : std::uint8_t {
  kArrival,        // a = request id of the workload's next request.
  kReplicaStep,    // a = replica index, b = generation.
  kReplicaReady,   // a = replica index: cold start finished.
  kAutoscaleTick,  //
  kSample,         // Timeseries / window sample.
  kFleetEvent,     // a = index into the run's fleet events, b = 0 start, 1 end.
  kQueueTimeout,   // a = request id queued in an admission queue.
};

struct Event {
  Nanos at{0};
  std::uint64_t seq = 0;  // Push order; breaks ties in time.
  EventKind kind = EventKind::kArrival;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
};

class EventQueue {
 public:
  // Returns the event's sequence number.
  std::uint64_t push(Nanos at, EventKind kind, std::uint64_t a = 0, std::uint64_t b = 0);
  // The earliest event (ties: the first pushed), removed; nullopt when empty.
  [[nodiscard]] std::optional<Event> pop();
  [[nodiscard]] const Event* top() const { return heap_.empty() ? nullptr : &heap_.front(); }
  [[nodiscard]] bool empty() const { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const { return heap_.size(); }
  [[nodiscard]] std::uint64_t pushed() const { return next_seq_; }

 private:
  std::vector<Event> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace spillway::sim
