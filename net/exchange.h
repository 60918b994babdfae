// Internal to net/: the state one request/response exchange shares between the handler's
// ResponseWriter copies (any thread) and the connection that owns the socket (its loop's
// executor: one thread per loop, so the connection's work runs serialized on that thread).
// Not for use outside net/.
//
// The exchange checks each writer call against its state machine
//   awaiting --respond--> finished
//   awaiting --start--> streaming --finish--> finished
//   (any) --peer gone / write failed / write buffer overflow / server stop--> closed
// under its mutex and forwards accepted calls to the connection in call order. Forwarding
// happens only while the server's `SinkGate` is open: once the server stops, writer calls are
// no-ops even if the writer outlives the server.
//
// on_close callbacks fire at most once, only when the exchange ends before its response was
// fully written to the socket; after delivery they are dropped without running.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "net/http_headers.h"
#include "net/http_response.h"

namespace spillway::net::internal {

class Exchange;

// Implemented by the connection. Each call but post_response is made with the exchange's mutex
// held, so calls from one exchange are made in order, and the connection must apply them in
// that order whichever threads made them; those implementations only queue work for the
// connection's loop and must not call back into the exchange synchronously (its mutex is not
// recursive). post_response is the exchange's last call (it is finished by then) and is
// made without the mutex: it may complete the response at once, calling back into the
// exchange, when the caller runs on the connection's loop thread (see http_connection.h).
class ExchangeSink {
 public:
  virtual ~ExchangeSink() = default;
  virtual void post_response(const Exchange* exchange, HttpResponse response) = 0;
  virtual void post_stream_start(const Exchange* exchange, int status, HttpHeaders headers) = 0;
  virtual void post_stream_chunk(const Exchange* exchange, std::string chunk) = 0;
  virtual void post_stream_end(const Exchange* exchange) = 0;
  // The handler dropped every writer without responding: the connection answers 500.
  virtual void post_abandoned(const Exchange* exchange) = 0;
  // Close the connection at once (write buffer overflow, or a stream abandoned midway so its
  // end must not look like a complete response).
  virtual void post_abort(const Exchange* exchange, std::string_view reason) = 0;
  // The connection's executor (its event loop's; one thread runs it).
  [[nodiscard]] virtual boost::asio::any_io_executor executor() const = 0;
};

// Open while the server's I/O threads and io_context exist. Writers hold it shared while they
// forward a call; the server closes it exclusively before tearing down.
struct SinkGate {
  std::shared_mutex mu;
  bool open = true;  // Guarded by mu.
};

class Exchange {
 public:
  Exchange(std::weak_ptr<ExchangeSink> sink, std::shared_ptr<SinkGate> gate,
           std::size_t max_buffered_bytes);

  // Writer side; safe from any thread. See ResponseWriter for the contracts.
  bool respond(HttpResponse response);
  bool start(int status, HttpHeaders headers);
  bool write(std::string_view chunk);
  bool finish();
  [[nodiscard]] bool is_closed() const;
  void on_close(std::function<void()> callback);
  [[nodiscard]] std::size_t buffered_bytes() const {
    return buffered_.load(std::memory_order_relaxed);
  }
  // The last ResponseWriter copy is gone.
  void abandon();
  // The connection's executor while the server runs and the connection exists (see
  // io_executor.h); nullopt after.
  [[nodiscard]] std::optional<boost::asio::any_io_executor> executor() const;

  // Connection side; called on the connection's loop thread.
  void bytes_written(std::size_t payload_bytes);
  void delivered();  // The response is fully written; on_close will never fire.
  void closed();     // The connection closed before delivery; fires on_close once.

 private:
  enum class State { kAwaiting, kStreaming, kFinished };

  // Calls fn(sink) if the gate is open and the connection still exists. REQUIRES: mu_ held.
  template <typename Fn>
  void forward(Fn&& fn);
  // Marks closed and returns the callbacks to run (outside mu_). REQUIRES: mu_ held.
  std::vector<std::function<void()>> close_locked();

  const std::weak_ptr<ExchangeSink> sink_;
  const std::shared_ptr<SinkGate> gate_;
  const std::size_t max_buffered_bytes_;

  mutable std::mutex mu_;
  State state_ = State::kAwaiting;  // Guarded by mu_.
  // Written under mu_; is_closed() reads it without (a writer's hint, as any check is that a
  // closing connection can overtake).
  std::atomic<bool> closed_{false};
  bool delivered_ = false;                       // Guarded by mu_.
  std::vector<std::function<void()>> on_close_;  // Guarded by mu_.
  std::atomic<std::size_t> buffered_{0};         // Chunk bytes not yet on the socket.
};

}  // namespace spillway::net::internal
