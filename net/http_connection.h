// Internal to net/ (includes Asio and Beast; include only from net/*.cc): one accepted TCP
// connection of an HttpServer.
//
// Concurrency: every member of HttpConnection but in_handler_, ops_ and ops_posted_ is touched
// only on the thread of
// the connection's event loop (the loop's executor; each loop has one thread, which serializes
// the handlers of the socket and timers, the work posted by start/drain/shutdown and by
// ResponseWriters through the ExchangeSink interface, and coroutines co_spawned there).
//
// Delivery of ExchangeSink calls. Stream calls, post_abandoned and post_abort are queued, in
// call order, on the connection's own op queue (ops_, under ops_mu_), which one posted handler at
// a time applies on the loop thread: the exchange makes them with its mutex held, and applying
// them at once would call back into the exchange (bytes_written, delivered, closed) under that
// mutex. They are not posted one by one: an io_context run by one thread keeps what its own
// thread posts in a thread-private queue that joins the shared one only when the running
// handler returns, so a stream started inside the handler and written from an engine thread
// before the handler returned would see its chunks applied before its start (and dropped).
// post_response is the one call made without the mutex, and the one exception: when its caller
// already runs on this loop's thread (a coroutine on the connection's executor: the gateway
// relaying a replica's answer), it is applied on the caller's stack, which writes the response
// without the event-loop round a post costs (one more epoll_wait and handler per request).
// Two guards keep that inline path from re-entering the connection:
//   - in_handler_ is set while dispatch() runs the route handler; a handler that responds
//     before it returns has its response posted, as from any other thread, so queue_response
//     never runs nested inside dispatch() (which still has work to do after the handler);
//   - applying_inline_ is set while an inline response is applied; if that response completes
//     the exchange and a pipelined request is already buffered, next_request posts its parsing
//     instead of running the next handler inside the caller of post_response.
//
// A connection reads one request at a time: headers (header_timeout), body (body_timeout),
// then dispatches it; the parsing steps and their limits are in net/request_parser.h. While the
// response is in progress it keeps reading raw bytes into its buffer, at most max_header_bytes of
// them, which both detects a peer that goes away and buffers pipelined requests; those are parsed
// only after the response is complete, so responses leave in request order.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "core/clock.h"

#include "net/exchange.h"
#include "net/request_parser.h"
#include "net/server_context.h"

namespace spillway::net::internal {

class HttpConnection final : public ExchangeSink,
                             public std::enable_shared_from_this<HttpConnection> {
 public:
  // `socket` is connected and bound to its loop's io_context executor (one thread runs it).
  HttpConnection(std::shared_ptr<ServerContext> ctx, boost::asio::ip::tcp::socket socket,
                 std::uint64_t id);
  ~HttpConnection() override;
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Safe from any thread; each posts onto the connection's executor.
  void start();
  // Server drain: an idle connection closes now; one with a request in progress closes after
  // its response.
  void drain();
  // Server stop: close now.
  void shutdown();

  // ExchangeSink (any thread).
  void post_response(const Exchange* exchange, HttpResponse response) override;
  void post_stream_start(const Exchange* exchange, int status, HttpHeaders headers) override;
  void post_stream_chunk(const Exchange* exchange, std::string chunk) override;
  void post_stream_end(const Exchange* exchange) override;
  void post_abandoned(const Exchange* exchange) override;
  void post_abort(const Exchange* exchange, std::string_view reason) override;
  [[nodiscard]] boost::asio::any_io_executor executor() const override { return executor_; }

 private:
  enum class TimerKind { kHeader, kBody, kIdle, kLinger };
  enum class Response { kNone, kStreaming, kEnded };
  enum class Framing { kLength, kChunked, kUntilClose, kNoBody };

  // One queued ExchangeSink call (see "Delivery" above).
  struct SinkOp {
    enum class Kind : std::uint8_t { kStart, kChunk, kEnd, kAbandoned, kAbort };
    Kind kind = Kind::kChunk;
    const Exchange* exchange = nullptr;
    int status = 0;       // kStart.
    HttpHeaders headers;  // kStart.
    std::string data;     // kChunk: the payload; kAbort: the reason.
  };
  // Any thread: appends `op` and posts apply_ops() unless one is already pending.
  void enqueue(SinkOp op);
  // Loop thread: applies every queued op in order.
  void apply_ops();

  // Reading.
  void read_header();
  // With read_in_flight_ set: parses what buffer_ holds, reading more until read_goal_ is
  // reached, then calls on_header or on_body (possibly before it returns).
  void parse_buffered();
  void on_parse_read(boost::system::error_code ec, std::size_t n);
  void finish_read(boost::system::error_code ec);
  void on_header(boost::system::error_code ec);
  void on_body(boost::system::error_code ec);
  void on_read_error(boost::system::error_code ec);
  void dispatch();
  void start_raw_read();
  void on_raw_read(boost::system::error_code ec, std::size_t n);
  void next_request();

  // Timers.
  void arm_read_timer(TimerKind kind, std::chrono::milliseconds timeout);
  void cancel_read_timer();
  void wait_read_timer();
  void on_read_timer();
  void arm_write_timer();
  void wait_write_timer();

  // Requests and responses.
  void begin_request();
  void end_request();
  void send_error(int status, std::string_view message, std::string_view allow = {});
  void error_and_close(int status, std::string_view message);
  void queue_head(int status, const HttpHeaders& headers, Framing framing,
                  std::size_t content_length);
  void queue_response(HttpResponse response);
  void on_stream_start(const Exchange* exchange, int status, const HttpHeaders& headers);
  void on_stream_chunk(const Exchange* exchange, std::string_view chunk);
  void on_stream_end(const Exchange* exchange);
  void on_abandoned(const Exchange* exchange);

  // Writing and closing.
  void pump();
  void on_write(boost::system::error_code ec);
  void complete_response();
  void graceful_close();
  void close(std::string_view reason);
  [[nodiscard]] bool is_current(const Exchange* exchange) const {
    return !closed_ && exchange_ != nullptr && exchange_.get() == exchange;
  }

  const std::shared_ptr<ServerContext> ctx_;
  const std::uint64_t id_;
  boost::asio::ip::tcp::socket socket_;
  const boost::asio::any_io_executor executor_;
  // executor_'s own type, the event loop's (null if the socket was bound to another kind).
  const boost::asio::io_context::executor_type* const loop_;
  boost::asio::steady_timer read_timer_;
  boost::asio::steady_timer write_timer_;
  std::string remote_;

  boost::beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  RequestReadState read_state_;
  ReadGoal read_goal_ = ReadGoal::kHead;
  bool read_in_flight_ = false;
  bool restart_after_cancel_ = false;  // A raw read was cancelled to parse a buffered request.
  // True while the handler call of dispatch() runs (read from any thread: post_response).
  std::atomic<bool> in_handler_{false};
  // True while post_response applies a response inline (on the caller's stack).
  bool applying_inline_ = false;
  std::mutex ops_mu_;
  std::vector<SinkOp> ops_;           // Guarded by ops_mu_; in call order.
  bool ops_posted_ = false;           // Guarded by ops_mu_: an apply_ops() is pending.
  std::vector<SinkOp> ops_applying_;  // Loop thread: the batch apply_ops() is applying.
  TimerKind timer_kind_ = TimerKind::kHeader;
  // Deadlines are lazy: arming one later than the pending wait, or clearing it, only records
  // it (a request arms and clears several, and each change of the loop's earliest timer is a
  // system call); the pending wait re-checks when it fires. A wait is started only when none
  // is pending or the new deadline is earlier.
  using SteadyTime = std::chrono::steady_clock::time_point;
  SteadyTime read_deadline_ = SteadyTime::max();    // max: none.
  SteadyTime read_wait_until_ = SteadyTime::max();  // The pending wait's expiry; max: none.
  SteadyTime write_deadline_ = SteadyTime::max();
  SteadyTime write_wait_until_ = SteadyTime::max();
  std::uint64_t read_timer_gen_ = 0;  // Identifies the current wait; older ones do nothing.
  std::uint64_t write_timer_gen_ = 0;

  // The request in progress (from its headers to its last response byte).
  bool request_active_ = false;
  TimePoint request_start_{};
  std::string request_id_;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool http10_ = false;
  int response_status_ = 0;  // 0 until a response head is queued.
  Response response_ = Response::kNone;
  Framing framing_ = Framing::kLength;
  bool end_queued_ = false;  // The response's last byte is in pending_ or inflight_.
  std::shared_ptr<Exchange> exchange_;

  // Output: pending_ collects bytes while inflight_ is being written.
  std::string pending_;
  std::string inflight_;
  std::size_t pending_payload_ = 0;  // Chunk payload bytes in pending_ (for backpressure).
  std::size_t inflight_payload_ = 0;
  bool writing_ = false;

  bool close_after_response_ = false;
  bool closing_ = false;  // Sent FIN; discarding input until EOF or the linger limits.
  bool closed_ = false;
  std::size_t linger_bytes_ = 0;
};

}  // namespace spillway::net::internal
