#include "net/exchange.h"

#include <utility>

#include "core/log.h"

namespace spillway::net::internal {
namespace {

bool headers_valid(const HttpHeaders& headers) {
  for (const auto& [name, value] : headers) {
    if (!is_valid_header_name(name) || !is_valid_header_value(value)) {
      log_warn("http response header rejected", {kv("name", name)});
      return false;
    }
  }
  return true;
}

void run_all(std::vector<std::function<void()>>& callbacks) {
  for (auto& callback : callbacks) {
    if (callback) callback();
  }
}

}  // namespace

Exchange::Exchange(std::weak_ptr<ExchangeSink> sink, std::shared_ptr<SinkGate> gate,
                   std::size_t max_buffered_bytes)
    : sink_(std::move(sink)), gate_(std::move(gate)), max_buffered_bytes_(max_buffered_bytes) {}

template <typename Fn>
void Exchange::forward(Fn&& fn) {
  std::shared_lock gate_lock(gate_->mu);
  if (!gate_->open) return;
  if (std::shared_ptr<ExchangeSink> sink = sink_.lock()) fn(*sink);
}

std::optional<boost::asio::any_io_executor> Exchange::executor() const {
  std::shared_lock gate_lock(gate_->mu);
  if (!gate_->open) return std::nullopt;
  if (std::shared_ptr<ExchangeSink> sink = sink_.lock()) return sink->executor();
  return std::nullopt;
}

std::vector<std::function<void()>> Exchange::close_locked() {
  closed_.store(true, std::memory_order_release);
  return std::exchange(on_close_, {});
}

bool Exchange::respond(HttpResponse response) {
  if (!is_valid_status(response.status) || !headers_valid(response.headers)) return false;
  {
    std::lock_guard lock(mu_);
    if (closed_ || state_ != State::kAwaiting) return false;
    state_ = State::kFinished;
  }
  // Without the mutex (see ExchangeSink): no writer call can follow a finished exchange's.
  forward([&](ExchangeSink& sink) { sink.post_response(this, std::move(response)); });
  return true;
}

bool Exchange::start(int status, HttpHeaders headers) {
  if (!is_valid_status(status) || status < 200 || !headers_valid(headers)) return false;
  std::lock_guard lock(mu_);
  if (closed_ || state_ != State::kAwaiting) return false;
  state_ = State::kStreaming;
  forward([&](ExchangeSink& sink) { sink.post_stream_start(this, status, std::move(headers)); });
  return true;
}

bool Exchange::write(std::string_view chunk) {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mu_);
    if (closed_ || state_ != State::kStreaming) return false;
    if (chunk.empty()) return true;  // An empty chunk would end a chunked body.
    const std::size_t buffered = buffered_.fetch_add(chunk.size()) + chunk.size();
    if (buffered <= max_buffered_bytes_) {
      forward([&](ExchangeSink& sink) { sink.post_stream_chunk(this, std::string(chunk)); });
      return true;
    }
    // The peer reads slower than the handler writes: drop the connection rather than buffer
    // without limit.
    callbacks = close_locked();
    forward([&](ExchangeSink& sink) { sink.post_abort(this, "write buffer overflow"); });
  }
  run_all(callbacks);
  return false;
}

bool Exchange::finish() {
  std::lock_guard lock(mu_);
  if (closed_ || state_ != State::kStreaming) return false;
  state_ = State::kFinished;
  forward([&](ExchangeSink& sink) { sink.post_stream_end(this); });
  return true;
}

bool Exchange::is_closed() const {
  return closed_.load(std::memory_order_acquire);
}

void Exchange::on_close(std::function<void()> callback) {
  {
    std::lock_guard lock(mu_);
    if (delivered_) return;
    if (!closed_) {
      on_close_.push_back(std::move(callback));
      return;
    }
  }
  if (callback) callback();
}

void Exchange::abandon() {
  std::lock_guard lock(mu_);
  if (closed_) return;
  if (state_ == State::kAwaiting) {
    forward([&](ExchangeSink& sink) { sink.post_abandoned(this); });
  } else if (state_ == State::kStreaming) {
    forward([&](ExchangeSink& sink) { sink.post_abort(this, "stream abandoned before finish"); });
  }
}

void Exchange::bytes_written(std::size_t payload_bytes) {
  buffered_.fetch_sub(payload_bytes, std::memory_order_relaxed);
}

void Exchange::delivered() {
  std::lock_guard lock(mu_);
  delivered_ = true;
  on_close_.clear();
}

void Exchange::closed() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mu_);
    if (delivered_ || closed_) return;
    callbacks = close_locked();
  }
  run_all(callbacks);
}

}  // namespace spillway::net::internal
