// The handler's side of one HTTP exchange: complete it with one full response, or stream a
// response (status and headers, then body chunks, then finish) with chunked transfer encoding.
//
// Thread-safety: every method is safe to call from any thread, concurrently; calls are applied
// in the order they take effect here and carried out on the connection's I/O thread. A
// ResponseWriter is a cheap, copyable handle; copies share one exchange.
//
// Lifetime: a writer may outlive its connection and even the server; calls then do nothing and
// return false. When the last copy is destroyed before the response was completed, the server
// completes it: 500 if nothing was sent yet, otherwise it closes the connection without the
// final chunk, so the client sees a truncated body rather than a complete-looking one.
//
// Disconnects: `is_closed()` becomes true, and `on_close` callbacks fire (once), when the peer
// disconnects (including a half-close while the response is pending), a write fails or times
// out, the write buffer overflows, or the server stops, before the response was fully written.
// A handler streaming a generation polls is_closed() or registers on_close to cancel it.
//
// Backpressure: chunks not yet written to the socket are buffered, up to
// HttpServerOptions::max_pending_write_bytes per response. A write() that would exceed it
// closes the connection, fires on_close and returns false; buffered_bytes() lets a producer
// slow down before that.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "net/http_headers.h"
#include "net/http_response.h"

namespace boost::asio {
class any_io_executor;
}

namespace spillway::net {

namespace internal {
class Exchange;
}
class ResponseWriter;
// See io_executor.h.
std::optional<boost::asio::any_io_executor> io_executor_of(const ResponseWriter& writer);

class ResponseWriter {
 public:
  // A writer bound to nothing: every call returns false and is_closed() is true.
  ResponseWriter() = default;
  // Used by the server; handlers receive writers, they do not make them.
  explicit ResponseWriter(std::shared_ptr<internal::Exchange> exchange);

  // Sends a complete response (Content-Length framing). Returns false, sending nothing, if a
  // response was already started, the exchange is closed, the status is not 100..599, or a
  // header name or value is invalid (the writer stays usable then).
  bool respond(HttpResponse response);
  // Starts a streaming response: status (200..599) and headers now, body in chunks. Returns
  // false under the same conditions as respond().
  bool start(int status, HttpHeaders headers);
  // Queues one body chunk, written promptly (flushed, no coalescing delay). Empty chunks are
  // ignored. Returns false if not streaming, closed, or over the write buffer limit (which
  // closes the connection).
  bool write(std::string_view chunk);
  // Ends the streaming response. Returns false if not streaming or closed.
  bool finish();

  [[nodiscard]] bool is_closed() const;
  // Registers a callback for the disconnect cases above. If the exchange is already closed it
  // runs at once on the calling thread; if the response was already delivered it never runs.
  // Otherwise it runs on an I/O thread or on a thread calling write(): it must be quick and not
  // block; it may call this writer (calls return false). It should not capture this writer:
  // a copy inside its own callback keeps the exchange from seeing the handler let go.
  void on_close(std::function<void()> callback);
  // Body bytes accepted by write() and not yet written to the socket.
  [[nodiscard]] std::size_t buffered_bytes() const;

 private:
  friend std::optional<boost::asio::any_io_executor> io_executor_of(const ResponseWriter& writer);
  struct Handle;
  std::shared_ptr<Handle> handle_;
};

}  // namespace spillway::net
