#include "engine/request_stream.h"

#include <utility>

namespace spillway::engine {

RequestStream::RequestStream(std::string id, std::int32_t choices)
    : id_(std::move(id)), open_choices_(choices) {}

bool RequestStream::next(StreamEvent& out) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !events_.empty() || open_choices_ == 0; });
  if (events_.empty()) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

bool RequestStream::next_for(StreamEvent& out, std::chrono::nanoseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty() || open_choices_ == 0; })) {
    return false;
  }
  if (events_.empty()) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

std::vector<StreamEvent> RequestStream::drain() {
  std::lock_guard lock(mu_);
  std::vector<StreamEvent> out(std::make_move_iterator(events_.begin()),
                               std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

bool RequestStream::done() const {
  std::lock_guard lock(mu_);
  return open_choices_ == 0 && events_.empty();
}

void RequestStream::cancel() {
  std::lock_guard lock(mu_);
  cancel_ = true;
}

bool RequestStream::cancel_requested() const {
  std::lock_guard lock(mu_);
  return cancel_;
}

void RequestStream::set_listener(std::function<void()> listener) {
  std::function<void()> call;
  {
    std::lock_guard lock(mu_);
    listener_ = std::move(listener);
    if (!events_.empty() || open_choices_ == 0) call = listener_;
  }
  if (call) call();
}

void RequestStream::push(StreamEvent event) {
  std::function<void()> listener;
  {
    std::lock_guard lock(mu_);
    if (event.kind == StreamEvent::Kind::kFinish && open_choices_ > 0) --open_choices_;
    events_.push_back(std::move(event));
    listener = listener_;
  }
  cv_.notify_all();
  if (listener) listener();
}

}  // namespace spillway::engine
