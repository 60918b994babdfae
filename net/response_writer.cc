#include "net/response_writer.h"

#include <utility>

#include "net/exchange.h"
#include "net/io_executor.h"

namespace spillway::net {

// Owned only by ResponseWriter copies, so its destruction means the handler let go.
struct ResponseWriter::Handle {
  explicit Handle(std::shared_ptr<internal::Exchange> e) : exchange(std::move(e)) {}
  ~Handle() { exchange->abandon(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  std::shared_ptr<internal::Exchange> exchange;
};

ResponseWriter::ResponseWriter(std::shared_ptr<internal::Exchange> exchange)
    : handle_(exchange ? std::make_shared<Handle>(std::move(exchange)) : nullptr) {}

bool ResponseWriter::respond(HttpResponse response) {
  return handle_ && handle_->exchange->respond(std::move(response));
}

bool ResponseWriter::start(int status, HttpHeaders headers) {
  return handle_ && handle_->exchange->start(status, std::move(headers));
}

bool ResponseWriter::write(std::string_view chunk) {
  return handle_ && handle_->exchange->write(chunk);
}

bool ResponseWriter::finish() {
  return handle_ && handle_->exchange->finish();
}

bool ResponseWriter::is_closed() const {
  return !handle_ || handle_->exchange->is_closed();
}

void ResponseWriter::on_close(std::function<void()> callback) {
  if (handle_) {
    handle_->exchange->on_close(std::move(callback));
  } else if (callback) {
    callback();
  }
}

std::size_t ResponseWriter::buffered_bytes() const {
  return handle_ ? handle_->exchange->buffered_bytes() : 0;
}

std::optional<boost::asio::any_io_executor> io_executor_of(const ResponseWriter& writer) {
  if (!writer.handle_) return std::nullopt;
  return writer.handle_->exchange->executor();
}

}  // namespace spillway::net
