#include "net/http_connection.h"

#include <exception>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/error.hpp>

#include "core/log.h"

#include "net/request_parser.h"
#include "net/wire_format.h"

namespace spillway::net::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

constexpr std::size_t kRawReadBytes = 4096;
constexpr std::size_t kMaxParseReadBytes = 65536;  // One read while parsing, as Beast's reads.

}  // namespace

// ---------------------------------------------------------------------------------------------
// Lifetime and cross-thread entry points

HttpConnection::HttpConnection(std::shared_ptr<ServerContext> ctx, asio::ip::tcp::socket socket,
                               std::uint64_t id)
    : ctx_(std::move(ctx)),
      id_(id),
      socket_(std::move(socket)),
      executor_(socket_.get_executor()),
      loop_(executor_.target<asio::io_context::executor_type>()),
      read_timer_(executor_),
      write_timer_(executor_) {
  ctx_->open_connections.fetch_add(1);
  if (ctx_->metrics) ctx_->metrics->connection_opened();
  error_code ec;
  const auto endpoint = socket_.remote_endpoint(ec);
  remote_ = ec ? std::string("unknown")
               : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

HttpConnection::~HttpConnection() {
  if (ctx_->metrics) ctx_->metrics->connection_closed();
  // Decrement before remove_connection notifies, so a waiter sees the new count.
  ctx_->open_connections.fetch_sub(1);
  ctx_->remove_connection(id_);
}

void HttpConnection::start() {
  ctx_->add_connection(id_, weak_from_this());
  asio::post(executor_, [self = shared_from_this()] {
    error_code ec;
    self->socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    // Synchronous writes return would_block instead of blocking the event loop (pump()).
    self->socket_.non_blocking(true, ec);
    if (ec) {
      self->close(fmt::format("socket setup failed: {}", ec.message()));
      return;
    }
    if (self->ctx_->draining.load()) {
      self->close("server draining");
      return;
    }
    self->arm_read_timer(TimerKind::kHeader, self->ctx_->options.header_timeout);
    self->read_header();
  });
}

void HttpConnection::drain() {
  asio::post(executor_, [self = shared_from_this()] {
    if (self->closed_) return;
    self->keep_alive_ = false;
    self->close_after_response_ = true;
    if (!self->request_active_ && !self->writing_ && self->pending_.empty()) {
      self->close("server draining");
    }
  });
}

void HttpConnection::shutdown() {
  asio::post(executor_, [self = shared_from_this()] { self->close("server stopping"); });
}

void HttpConnection::post_response(const Exchange* exchange, HttpResponse response) {
  auto apply = [self = shared_from_this(), exchange, r = std::move(response)]() mutable {
    if (self->is_current(exchange) && self->response_ == Response::kNone) {
      self->applying_inline_ = true;
      self->queue_response(std::move(r));
      self->applying_inline_ = false;
    }
  };
  // A caller already on this loop's thread (a coroutine of the connection's executor, e.g. the
  // gateway's forwarding) has the response written at once, which saves an event-loop round
  // on its latency. Inside the handler call itself (dispatch()) it is posted, as from any
  // other thread, so a handler that answers at once never re-enters the connection.
  // The check is the loop's own (a thread-local lookup); asio::dispatch would reach the same
  // answer through the type-erased executor, wrapping and allocating the call on the way.
  if (loop_ != nullptr && loop_->running_in_this_thread() &&
      !in_handler_.load(std::memory_order_relaxed)) {
    apply();
  } else {
    asio::post(executor_, std::move(apply));
  }
}

void HttpConnection::post_stream_start(const Exchange* exchange, int status, HttpHeaders headers) {
  enqueue({.kind = SinkOp::Kind::kStart,
           .exchange = exchange,
           .status = status,
           .headers = std::move(headers),
           .data = {}});
}

void HttpConnection::post_stream_chunk(const Exchange* exchange, std::string chunk) {
  enqueue({.kind = SinkOp::Kind::kChunk,
           .exchange = exchange,
           .status = 0,
           .headers = {},
           .data = std::move(chunk)});
}

void HttpConnection::post_stream_end(const Exchange* exchange) {
  enqueue(
      {.kind = SinkOp::Kind::kEnd, .exchange = exchange, .status = 0, .headers = {}, .data = {}});
}

void HttpConnection::post_abandoned(const Exchange* exchange) {
  enqueue({.kind = SinkOp::Kind::kAbandoned,
           .exchange = exchange,
           .status = 0,
           .headers = {},
           .data = {}});
}

void HttpConnection::post_abort(const Exchange* exchange, std::string_view reason) {
  enqueue({.kind = SinkOp::Kind::kAbort,
           .exchange = exchange,
           .status = 0,
           .headers = {},
           .data = std::string(reason)});
}

void HttpConnection::enqueue(SinkOp op) {
  bool post = false;
  {
    std::lock_guard lock(ops_mu_);
    ops_.push_back(std::move(op));
    post = !std::exchange(ops_posted_, true);
  }
  if (post) asio::post(executor_, [self = shared_from_this()] { self->apply_ops(); });
}

void HttpConnection::apply_ops() {
  {
    std::lock_guard lock(ops_mu_);
    ops_applying_.swap(ops_);
    ops_posted_ = false;
  }
  // Ops queued while these are applied (from any thread) go to ops_ and post the next
  // apply_ops(), which runs after this one.
  for (SinkOp& op : ops_applying_) {
    switch (op.kind) {
      case SinkOp::Kind::kStart:
        on_stream_start(op.exchange, op.status, op.headers);
        break;
      case SinkOp::Kind::kChunk:
        on_stream_chunk(op.exchange, op.data);
        break;
      case SinkOp::Kind::kEnd:
        on_stream_end(op.exchange);
        break;
      case SinkOp::Kind::kAbandoned:
        on_abandoned(op.exchange);
        break;
      case SinkOp::Kind::kAbort:
        if (is_current(op.exchange)) close(op.data);
        break;
    }
  }
  ops_applying_.clear();
}

// ---------------------------------------------------------------------------------------------
// Reading requests

void HttpConnection::read_header() {
  reset_request_parser(parser_, read_state_, ctx_->options);
  read_goal_ = ReadGoal::kHead;
  read_in_flight_ = true;
  parse_buffered();
}

void HttpConnection::parse_buffered() {
  const error_code ec =
      parse_buffered_request(*parser_, buffer_, read_goal_, read_state_, ctx_->options);
  if (ec != http::error::need_more) {
    finish_read(ec);
    return;
  }
  socket_.async_read_some(
      buffer_.prepare(beast::read_size(buffer_, kMaxParseReadBytes)),
      [self = shared_from_this()](error_code e, std::size_t n) { self->on_parse_read(e, n); });
}

void HttpConnection::on_parse_read(error_code ec, std::size_t n) {
  buffer_.commit(n);
  if (!ec && !closed_ && !closing_) {
    parse_buffered();
    return;
  }
  if (ec == asio::error::eof) ec = parse_request_eof(*parser_);
  finish_read(ec);
}

void HttpConnection::finish_read(error_code ec) {
  if (read_goal_ == ReadGoal::kHead) {
    on_header(ec);
  } else {
    on_body(ec);
  }
}

void HttpConnection::on_header(error_code ec) {
  read_in_flight_ = false;
  if (closed_) return;
  if (closing_) {
    start_raw_read();  // Keep discarding input until the linger limits.
    return;
  }
  if (ec) {
    on_read_error(ec);
    return;
  }
  cancel_read_timer();
  request_id_ = request_id_for(parser_->request().headers.get("X-Request-Id").value_or(""));
  begin_request();
  keep_alive_ = parser_->keep_alive();
  http10_ = parser_->version() == 10;
  head_request_ = parser_->is_head_method();

  if (auto reply = check_request_head(*parser_, ctx_->options)) {
    error_and_close(reply->status, reply->message);
    return;
  }
  if (parser_->is_done()) {
    dispatch();
    return;
  }
  if (expects_continue(*parser_)) {
    pending_ += kContinue;
    pump();
  }
  arm_read_timer(TimerKind::kBody, ctx_->options.body_timeout);
  read_goal_ = ReadGoal::kMessage;
  read_in_flight_ = true;
  parse_buffered();
}

void HttpConnection::on_body(error_code ec) {
  read_in_flight_ = false;
  if (closed_) return;
  if (closing_) {
    start_raw_read();
    return;
  }
  cancel_read_timer();
  if (ec) {
    on_read_error(ec);
    return;
  }
  dispatch();
}

void HttpConnection::on_read_error(error_code ec) {
  const auto data = buffer_.cdata();
  const std::string_view buffered(static_cast<const char*>(data.data()), data.size());
  if (auto reply = classify_read_error(ec, *parser_, buffered, ctx_->options)) {
    error_and_close(reply->status, reply->message);
  } else {
    close(ec.message());  // The peer closed or reset the connection, possibly midway.
  }
}

void HttpConnection::dispatch() {
  HttpRequest request = parser_->release();  // The parser is kept: the next request reuses it.
  request.remote_address = remote_;
  request.request_id = request_id_;
  if (ctx_->draining.load()) keep_alive_ = false;

  Router::Match match = ctx_->router.match(request.method, request.path);
  if (auto reply = route_error(match, request)) {
    send_error(reply->status, reply->message, reply->allow);
    return;
  }
  request.path_params = std::move(match.params);
  exchange_ = std::make_shared<Exchange>(weak_from_this(), ctx_->gate,
                                         ctx_->options.max_pending_write_bytes);
  in_handler_.store(true, std::memory_order_relaxed);
  try {
    (*match.handler)(std::move(request), ResponseWriter(exchange_));
  } catch (const std::exception& e) {
    // The writer the handler held is gone by now; if it did not respond, the abandon path
    // answers 500.
    log_error("http handler threw", {kv("request_id", request_id_), kv("error", e.what())});
  } catch (...) {
    log_error("http handler threw", {kv("request_id", request_id_)});
  }
  in_handler_.store(false, std::memory_order_relaxed);
  // Detects a peer that leaves while the handler works. Started after the handler's own
  // synchronous part (a proxy's upstream send, say), which its first read attempt would
  // otherwise delay.
  start_raw_read();
}

void HttpConnection::start_raw_read() {
  if (read_in_flight_ || closed_) return;
  if (!closing_ && buffer_.size() >= ctx_->options.max_header_bytes) return;  // Read-ahead cap.
  read_in_flight_ = true;
  socket_.async_read_some(
      buffer_.prepare(kRawReadBytes),
      [self = shared_from_this()](error_code ec, std::size_t n) { self->on_raw_read(ec, n); });
}

void HttpConnection::on_raw_read(error_code ec, std::size_t n) {
  read_in_flight_ = false;
  if (closed_) return;
  if (!ec) buffer_.commit(n);
  if (closing_) {
    linger_bytes_ += n;
    buffer_.consume(buffer_.size());
    if (ec || linger_bytes_ >= ctx_->options.linger_max_bytes) {
      close("linger done");
    } else {
      start_raw_read();
    }
    return;
  }
  if (ec && ec != asio::error::operation_aborted) {
    if (request_active_ && end_queued_) {
      // A half-close after the request; the complete response is on its way.
      close_after_response_ = true;
      return;
    }
    close(request_active_ ? "peer closed during the response" : "peer closed");
    return;
  }
  if (request_active_) {
    if (!ec) start_raw_read();
    return;
  }
  if (ec && !restart_after_cancel_) return;
  // The next request is arriving (or is already buffered).
  restart_after_cancel_ = false;
  arm_read_timer(TimerKind::kHeader, ctx_->options.header_timeout);
  read_header();
}

void HttpConnection::next_request() {
  if (read_in_flight_) {  // The raw read that watched the response.
    if (buffer_.size() > 0) {
      restart_after_cancel_ = true;
      error_code ec;
      socket_.cancel(ec);  // No write is in flight here, only that read.
    } else {
      arm_read_timer(TimerKind::kIdle, ctx_->options.idle_timeout);
    }
    return;
  }
  if (buffer_.size() > 0) {
    arm_read_timer(TimerKind::kHeader, ctx_->options.header_timeout);
    if (applying_inline_) {
      // Parsing now could run the next request's handler inside the caller of post_response.
      asio::post(executor_, [self = shared_from_this()] {
        if (!self->closed_ && !self->closing_ && !self->read_in_flight_) self->read_header();
      });
      return;
    }
    read_header();
  } else {
    arm_read_timer(TimerKind::kIdle, ctx_->options.idle_timeout);
    start_raw_read();
  }
}

// ---------------------------------------------------------------------------------------------
// Timers

void HttpConnection::arm_read_timer(TimerKind kind, std::chrono::milliseconds timeout) {
  timer_kind_ = kind;
  read_deadline_ = std::chrono::steady_clock::now() + timeout;
  if (read_wait_until_ > read_deadline_) wait_read_timer();
}

void HttpConnection::cancel_read_timer() {
  read_deadline_ = SteadyTime::max();  // The pending wait, if any, finds nothing to do.
}

void HttpConnection::wait_read_timer() {
  const std::uint64_t gen = ++read_timer_gen_;
  read_wait_until_ = read_deadline_;
  read_timer_.expires_at(read_deadline_);  // Cancels an earlier wait (its gen is stale).
  read_timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
    if (gen != self->read_timer_gen_) return;
    self->read_wait_until_ = SteadyTime::max();
    if (ec || self->closed_ || self->read_deadline_ == SteadyTime::max()) return;
    if (std::chrono::steady_clock::now() < self->read_deadline_) {
      self->wait_read_timer();  // Moved later since this wait began.
      return;
    }
    self->read_deadline_ = SteadyTime::max();
    self->on_read_timer();
  });
}

void HttpConnection::arm_write_timer() {
  write_deadline_ = std::chrono::steady_clock::now() + ctx_->options.write_timeout;
  if (write_wait_until_ > write_deadline_) wait_write_timer();
}

void HttpConnection::wait_write_timer() {
  const std::uint64_t gen = ++write_timer_gen_;
  write_wait_until_ = write_deadline_;
  write_timer_.expires_at(write_deadline_);
  write_timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
    if (gen != self->write_timer_gen_) return;
    self->write_wait_until_ = SteadyTime::max();
    if (ec || self->closed_ || self->write_deadline_ == SteadyTime::max()) return;
    if (std::chrono::steady_clock::now() < self->write_deadline_) {
      self->wait_write_timer();
      return;
    }
    self->close("write timeout");
  });
}

void HttpConnection::on_read_timer() {
  switch (timer_kind_) {
    case TimerKind::kHeader:
      if (buffer_.size() > 0) {
        error_and_close(408, "request headers not received within header_timeout");
      } else {
        close("header timeout");
      }
      return;
    case TimerKind::kBody:
      error_and_close(408, "request body not received within body_timeout");
      return;
    case TimerKind::kIdle:
      close("idle timeout");
      return;
    case TimerKind::kLinger:
      close("linger timeout");
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Responses

void HttpConnection::begin_request() {
  if (request_active_) return;
  request_active_ = true;
  request_start_ = SteadyClock::instance().now();
  response_status_ = 0;
  response_ = Response::kNone;
  end_queued_ = false;
  if (request_id_.empty()) request_id_ = new_request_id();
  ctx_->request_started();
}

void HttpConnection::end_request() {
  if (!request_active_) return;
  request_active_ = false;
  if (ctx_->metrics) {
    ctx_->metrics->request_finished(response_status_,
                                    to_seconds(SteadyClock::instance().now() - request_start_));
  }
  request_id_.clear();
  ctx_->request_ended();
}

void HttpConnection::send_error(int status, std::string_view message, std::string_view allow) {
  HttpResponse response = ctx_->error_response(status, message);
  if (!allow.empty()) response.headers.set("Allow", std::string(allow));
  // The renderer is the server owner's code, not checked by an exchange: what queue_head
  // writes must be valid.
  HttpHeaders valid;
  valid.reserve(response.headers.size());
  for (const auto& [name, value] : response.headers) {
    if (is_valid_header_name(name) && is_valid_header_value(value)) valid.add(name, value);
  }
  response.headers = std::move(valid);
  queue_response(std::move(response));
}

void HttpConnection::error_and_close(int status, std::string_view message) {
  if (closed_) return;
  if (response_ != Response::kNone || closing_) {
    close(message);  // A response is already under way; it cannot be replaced.
    return;
  }
  log_debug("http request rejected",
            {kv("status", status), kv("remote", remote_), kv("reason", message)});
  begin_request();
  close_after_response_ = true;
  send_error(status, message);
}

void HttpConnection::queue_head(int status, const HttpHeaders& headers, Framing framing,
                                std::size_t content_length) {
  response_status_ = status;
  framing_ = framing;
  append_status_line(pending_, status);
  // The names and values were checked already: a handler's by the exchange (respond, start),
  // the server's own answers are made valid. The framing fields are the connection's.
  for (const auto& [name, value] : headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
        iequals(name, "Connection")) {
      continue;
    }
    append_header(pending_, name, value);
  }
  if (!headers.contains("X-Request-Id") && !request_id_.empty()) {
    append_header(pending_, "X-Request-Id", request_id_);
  }
  if (!headers.contains("Date")) append_date_header(pending_, std::time(nullptr));
  switch (framing) {
    case Framing::kLength:
      append_number_header(pending_, "Content-Length", content_length);
      break;
    case Framing::kChunked:
      append_header(pending_, "Transfer-Encoding", "chunked");
      break;
    case Framing::kUntilClose:
      close_after_response_ = true;
      break;
    case Framing::kNoBody:
      break;
  }
  if (!keep_alive_ || ctx_->draining.load()) close_after_response_ = true;
  if (close_after_response_) {
    append_header(pending_, "Connection", "close");
  } else if (http10_) {
    append_header(pending_, "Connection", "keep-alive");
  }
  pending_ += "\r\n";
}

void HttpConnection::queue_response(HttpResponse response) {
  const bool has_body = !status_forbids_body(response.status);
  queue_head(response.status, response.headers, has_body ? Framing::kLength : Framing::kNoBody,
             response.body.size());
  if (has_body && !head_request_) pending_ += response.body;
  response_ = Response::kEnded;
  end_queued_ = true;
  pump();
}

void HttpConnection::on_stream_start(const Exchange* exchange, int status,
                                     const HttpHeaders& headers) {
  if (!is_current(exchange) || response_ != Response::kNone) return;
  Framing framing = Framing::kChunked;
  if (status_forbids_body(status)) {
    framing = Framing::kNoBody;
  } else if (http10_) {
    framing = Framing::kUntilClose;  // HTTP/1.0 has no chunked encoding.
  }
  queue_head(status, headers, framing, 0);
  response_ = Response::kStreaming;
  pump();
}

void HttpConnection::on_stream_chunk(const Exchange* exchange, std::string_view chunk) {
  if (!is_current(exchange) || response_ != Response::kStreaming) return;
  if (head_request_ || framing_ == Framing::kNoBody) {
    exchange_->bytes_written(chunk.size());
    return;
  }
  if (framing_ == Framing::kChunked) {
    append_chunk(pending_, chunk);
  } else {
    pending_ += chunk;
  }
  pending_payload_ += chunk.size();
  pump();
}

void HttpConnection::on_stream_end(const Exchange* exchange) {
  if (!is_current(exchange) || response_ != Response::kStreaming) return;
  if (framing_ == Framing::kChunked && !head_request_) pending_ += kLastChunk;
  response_ = Response::kEnded;
  end_queued_ = true;
  pump();
}

void HttpConnection::on_abandoned(const Exchange* exchange) {
  if (!is_current(exchange) || response_ != Response::kNone) return;
  log_warn("http handler dropped its writer without responding", {kv("request_id", request_id_)});
  send_error(500, "the handler completed without a response");
}

// ---------------------------------------------------------------------------------------------
// Writing and closing

void HttpConnection::pump() {
  if (closed_ || writing_) return;
  if (!pending_.empty()) {
    inflight_.swap(pending_);
    pending_.clear();
    inflight_payload_ = std::exchange(pending_payload_, 0);
    // The socket is non-blocking (start()): what it takes now is written here, without the
    // event-loop round an asynchronous write's completion costs (a whole small response, the
    // usual case); the rest goes asynchronously under the write timeout.
    error_code ec;
    const std::size_t written = socket_.write_some(asio::buffer(inflight_), ec);
    if (ec == asio::error::would_block) ec = {};
    if (ec || written == inflight_.size()) {
      on_write(ec);
      return;
    }
    writing_ = true;
    arm_write_timer();
    asio::async_write(
        socket_, asio::buffer(inflight_) + written,
        [self = shared_from_this()](error_code e, std::size_t) { self->on_write(e); });
    return;
  }
  if (end_queued_) complete_response();
}

void HttpConnection::on_write(error_code ec) {
  writing_ = false;
  write_deadline_ = SteadyTime::max();
  if (closed_) return;
  if (ec) {
    close(fmt::format("write failed: {}", ec.message()));
    return;
  }
  if (exchange_ && inflight_payload_ > 0) exchange_->bytes_written(inflight_payload_);
  inflight_payload_ = 0;
  inflight_.clear();
  pump();
}

void HttpConnection::complete_response() {
  end_queued_ = false;
  response_ = Response::kNone;
  if (exchange_) {
    exchange_->delivered();
    exchange_.reset();
  }
  end_request();
  if (close_after_response_ || !keep_alive_ || ctx_->draining.load()) {
    graceful_close();
    return;
  }
  next_request();
}

void HttpConnection::graceful_close() {
  if (closed_ || closing_) return;
  closing_ = true;
  error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) {
    close("shutdown failed");
    return;
  }
  linger_bytes_ = 0;
  arm_read_timer(TimerKind::kLinger, ctx_->options.linger_timeout);
  // A parser read may still be in flight (a 408 sent while headers trickled in); it owns
  // buffer_ until it completes, and its handler then continues the linger.
  if (read_in_flight_) return;
  buffer_.consume(buffer_.size());
  start_raw_read();
}

void HttpConnection::close(std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  log_debug("http connection closed", {kv("remote", remote_), kv("reason", reason)});
  ++read_timer_gen_;
  ++write_timer_gen_;
  read_deadline_ = write_deadline_ = SteadyTime::max();
  read_timer_.cancel();  // Now, so that the waits release this connection.
  write_timer_.cancel();
  error_code ec;
  socket_.close(ec);
  if (exchange_) {
    exchange_->closed();  // Fires the handler's on_close callbacks.
    exchange_.reset();
  }
  end_request();
}

}  // namespace spillway::net::internal
