#include "sim/event_queue.h"

#include <algorithm>

namespace spillway::sim {

namespace {

// std::push_heap builds a max-heap: "a after b" puts the earliest event on top.
bool later(const Event& a, const Event& b) {
  if (a.at != b.at) return a.at > b.at;
  return a.seq > b.seq;
}

}  // namespace

std::uint64_t EventQueue::push(Nanos at, EventKind kind, std::uint64_t a, std::uint64_t b) {
  const std::uint64_t seq = next_seq_++;
  heap_.push_back(Event{at, seq, kind, a, b});
  std::push_heap(heap_.begin(), heap_.end(), later);
  return seq;
}

std::optional<Event> EventQueue::pop() {
  if (heap_.empty()) return std::nullopt;
  std::pop_heap(heap_.begin(), heap_.end(), later);
  Event e = heap_.back();
  heap_.pop_back();
  return e;
}

}  // namespace spillway::sim
