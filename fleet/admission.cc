#include "fleet/admission.h"

namespace spillway::fleet {

AdmissionQueue::AdmissionQueue(std::size_t capacity) : capacity_(capacity) {}

Result<std::optional<AdmissionTicket>> AdmissionQueue::push(const AdmissionTicket& ticket) {
  if (index_.contains(ticket.id)) {
    return make_error(ErrorCode::kAlreadyExists, "request {} is already queued", ticket.id);
  }
  std::optional<AdmissionTicket> displaced;
  if (index_.size() >= capacity_) {
    // The newest ticket of the lowest class below the arrival's, if any.
    for (std::size_t c = queues_.size(); c-- > static_cast<std::size_t>(ticket.priority) + 1;) {
      if (queues_[c].empty()) continue;
      displaced = queues_[c].back();
      index_.erase(displaced->id);
      queues_[c].pop_back();
      break;
    }
    if (!displaced) {
      return make_error(ErrorCode::kResourceExhausted,
                        "the admission queue is full ({} requests waiting)", index_.size());
    }
  }
  Queue& queue = queues_[static_cast<std::size_t>(ticket.priority)];
  queue.push_back(ticket);
  index_.emplace(ticket.id, std::prev(queue.end()));
  return displaced;
}

std::optional<AdmissionTicket> AdmissionQueue::peek() const {
  for (const Queue& queue : queues_) {
    if (!queue.empty()) return queue.front();
  }
  return std::nullopt;
}

std::optional<AdmissionTicket> AdmissionQueue::pop() {
  for (Queue& queue : queues_) {
    if (queue.empty()) continue;
    AdmissionTicket ticket = queue.front();
    queue.pop_front();
    index_.erase(ticket.id);
    return ticket;
  }
  return std::nullopt;
}

bool AdmissionQueue::remove(std::uint64_t id) {
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  queues_[static_cast<std::size_t>(it->second->priority)].erase(it->second);
  index_.erase(it);
  return true;
}

}  // namespace spillway::fleet
