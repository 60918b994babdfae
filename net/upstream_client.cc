#include "net/upstream_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include "net/client_request.h"

namespace spillway::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

constexpr std::size_t kPieceBytes = 16 * 1024;

Status check_timeout(std::string_view field, std::chrono::milliseconds value) {
  return internal::check_client_timeout("upstream client", field, value);
}

// One upstream connection with its watchdog timer. The watchdog is lazy: each step (connect,
// send, read) only records its deadline, and the one pending wait re-checks the deadline when it
// fires, so a step that ends in time costs no timer operation (a kept-alive connection's wait
// carries over from call to call). When a deadline passes, the step's operation is cancelled
// and timed_out() tells why.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(const asio::any_io_executor& executor) : socket(executor), timer_(executor) {}

  void arm(SteadyTime deadline) {
    deadline_ = deadline;
    timed_out_ = false;
    if (waiting_until_ > deadline_) wait();
  }
  void disarm() { deadline_ = SteadyTime::max(); }
  [[nodiscard]] bool timed_out() const { return timed_out_; }

  tcp::socket socket;
  // Reused by every call on this connection (not allocated per call).
  beast::flat_buffer buffer;
  std::array<char, kPieceBytes> piece{};

 private:
  void wait() {
    waiting_until_ = deadline_;
    timer_.expires_at(deadline_);  // Cancels the earlier wait, if any.
    timer_.async_wait([weak = weak_from_this(), until = deadline_](error_code ec) {
      const auto self = weak.lock();
      if (ec || self == nullptr || self->waiting_until_ != until) return;
      self->waiting_until_ = SteadyTime::max();
      if (self->deadline_ == SteadyTime::max()) return;  // Idle: wait again at the next step.
      if (std::chrono::steady_clock::now() < self->deadline_) {
        self->wait();
        return;
      }
      self->timed_out_ = true;
      error_code ignored;
      self->socket.cancel(ignored);
    });
  }

  asio::steady_timer timer_;
  SteadyTime deadline_ = SteadyTime::max();
  SteadyTime waiting_until_ = SteadyTime::max();
  bool timed_out_ = false;
};

// The idle kept-alive connections of one event loop, by upstream ("host:port"). A service of
// the loop's io_context: it is shut down (closing them) with the loop.
class IdleConnections final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;

  explicit IdleConnections(asio::execution_context& context)
      : asio::execution_context::service(context) {}

  std::shared_ptr<Connection> take(const std::string& upstream) {
    std::lock_guard lock(mu_);
    auto it = idle_.find(upstream);
    if (it == idle_.end() || it->second.empty()) return nullptr;
    std::shared_ptr<Connection> s = std::move(it->second.back());
    it->second.pop_back();
    return s;
  }

  void give(const std::string& upstream, std::shared_ptr<Connection> s, std::size_t max) {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    auto& list = idle_[upstream];
    if (list.size() >= max) list.erase(list.begin());  // The oldest is the likeliest stale.
    list.push_back(std::move(s));
  }

 private:
  void shutdown() override {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    idle_.clear();
  }

  std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Connection>>> idle_;
  bool shut_down_ = false;
};

// A response parser that collects the status and header fields straight into HttpHeaders (no
// Beast field list in between: no per-field element to allocate and free, no second copy) and
// stores body bytes into the caller's buffer as http::buffer_body does: as many as fit, then
// error::need_buffer. Framing, limits and keep-alive are basic_parser's own.
class ResponseParser final : public http::basic_parser<false> {
 public:
  // `keep`: the fields to store (UpstreamClientOptions::response_fields; empty: all).
  explicit ResponseParser(const std::vector<std::string>& keep) : keep_(keep) {
    headers_.reserve(keep.empty() ? 8 : keep.size());
  }

  [[nodiscard]] int status() const { return status_; }
  [[nodiscard]] HttpHeaders& headers() { return headers_; }
  // Where the next body bytes go; body_space() is what is left of it after a parse step.
  void set_body_buffer(char* data, std::size_t size) {
    body_data_ = data;
    body_space_ = size;
  }
  [[nodiscard]] std::size_t body_space() const { return body_space_; }

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int,
                       error_code&) override {}  // Never called: this parses responses.
  void on_response_impl(int code, beast::string_view, int, error_code&) override { status_ = code; }
  void on_field_impl(http::field, beast::string_view name, beast::string_view value,
                     error_code&) override {
    const std::string_view n(name.data(), name.size());
    if (!keep_.empty() && std::none_of(keep_.begin(), keep_.end(),
                                       [&](const std::string& k) { return iequals(k, n); })) {
      return;
    }
    headers_.add(std::string(n), std::string(value.data(), value.size()));
  }
  // A body of known length is parsed in the step that completed the head, as far as it came
  // with it (eager parsing): a small answer is read and parsed in one step, and Beast's read
  // does not post its completion for a second step that would only parse bytes already
  // buffered (an event-loop round, with an epoll_wait, on the way to the client). Not for
  // chunked bodies: an eager parse that stops inside a chunk's framing asks Beast's read for
  // more bytes before it returns, which would hold back the events of a stream parsed so far.
  void on_header_impl(error_code&) override {
    if (content_length().has_value()) eager(true);
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(beast::string_view body, error_code& ec) override {
    return store(body, ec);
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code& ec) override {
    return store(body, ec);
  }
  void on_finish_impl(error_code&) override {}

  std::size_t store(beast::string_view body, error_code& ec) {
    if (body_data_ == nullptr) {
      ec = http::error::need_buffer;
      return 0;
    }
    const std::size_t n = std::min(body_space_, body.size());
    if (n > 0) std::memcpy(body_data_, body.data(), n);
    body_data_ += n;
    body_space_ -= n;
    if (n < body.size()) ec = http::error::need_buffer;
    return n;
  }

  const std::vector<std::string>& keep_;
  int status_ = 0;
  HttpHeaders headers_;
  char* body_data_ = nullptr;
  std::size_t body_space_ = 0;
};

// One call's fixed facts.
struct CallContext {
  const UpstreamClientOptions& options;
  const std::string& upstream;  // "host:port", for messages.
  SteadyTime deadline;
  UpstreamCancel* cancel;

  [[nodiscard]] bool cancelled() const { return cancel != nullptr && cancel->cancelled(); }
  void expire_within(Connection& c, std::chrono::milliseconds step) const {
    c.arm(std::min(deadline, std::chrono::steady_clock::now() + step));
  }
  [[nodiscard]] Error cancelled_error() const {
    return make_error(ErrorCode::kCancelled, "call to {}: cancelled by the caller", upstream);
  }
  [[nodiscard]] Error timeout_error(std::string_view step, std::chrono::milliseconds limit) const {
    if (std::chrono::steady_clock::now() >= deadline) {
      return make_error(ErrorCode::kDeadlineExceeded, "{} {}: request_timeout of {} ms exceeded",
                        step, upstream, options.request_timeout.count());
    }
    return make_error(ErrorCode::kDeadlineExceeded, "{} {}: no progress for {} ms", step, upstream,
                      limit.count());
  }
};

// How one attempt on one connection ended.
struct AttemptResult {
  std::optional<Error> error;    // Unset: the response is complete.
  bool before_response = false;  // Nothing of the response arrived (safe to send again).
  bool reusable = false;         // The connection may serve another call.
  HttpClientResponse response;
};

asio::awaitable<AttemptResult> attempt(Connection& c, std::string_view wire, bool head,
                                       const UpstreamClient::HeadCallback& on_head,
                                       const UpstreamClient::BodyCallback& on_body,
                                       const CallContext& call) {
  AttemptResult out;
  error_code ec;
  call.expire_within(c, call.options.io_timeout);
  // The socket is non-blocking (see Connection): a request the socket takes whole, the usual
  // case, is written here, without the event-loop round an asynchronous write's completion
  // costs; the rest of one it does not take goes asynchronously.
  std::size_t written = 0;
  while (written < wire.size() && !ec) {
    written += c.socket.write_some(asio::buffer(wire) + written, ec);
  }
  if (ec == asio::error::would_block) {
    ec = {};
    co_await asio::async_write(c.socket, asio::buffer(wire) + written,
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec && c.timed_out()) ec = beast::error::timeout;
  if (ec) {
    // The upstream may have answered early (e.g. 413) and closed: read that answer below.
    if (call.cancelled()) {
      out.error = call.cancelled_error();
      co_return out;
    }
    if (ec == beast::error::timeout) {
      out.error = call.timeout_error("send to", call.options.io_timeout);
      co_return out;
    }
  }
  const bool write_failed = static_cast<bool>(ec);
  const std::optional<Error> write_error =
      write_failed ? std::optional<Error>(make_error(ErrorCode::kUnavailable, "send to {}: {}",
                                                     call.upstream, ec.message()))
                   : std::nullopt;

  beast::flat_buffer& buffer = c.buffer;
  buffer.clear();
  ResponseParser parser(call.options.response_fields);
  parser.header_limit(static_cast<std::uint32_t>(call.options.max_header_bytes));
  parser.body_limit(boost::none);  // The caller consumes the body as it arrives.
  if (head) parser.skip(true);
  std::array<char, kPieceBytes>& piece = c.piece;

  // One read step; returns the failure, if any.
  const auto read_some = [&]() -> asio::awaitable<std::optional<AttemptResult>> {
    parser.set_body_buffer(piece.data(), piece.size());
    call.expire_within(c, call.options.io_timeout);
    error_code rec;
    co_await http::async_read_some(c.socket, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, rec));
    if (rec == http::error::need_buffer) rec = {};
    if (rec && c.timed_out()) rec = beast::error::timeout;
    if (!rec) co_return std::nullopt;
    AttemptResult failed;
    if (call.cancelled()) {
      failed.error = call.cancelled_error();
    } else if (rec == beast::error::timeout) {
      failed.error = call.timeout_error("read from", call.options.io_timeout);
    } else if (rec == http::error::header_limit) {
      failed.error =
          make_error(ErrorCode::kPayloadTooLarge, "response from {}: {} (limit: {} header bytes)",
                     call.upstream, rec.message(), call.options.max_header_bytes);
    } else if (!parser.got_some() && buffer.size() == 0) {
      failed.before_response = true;
      failed.error =
          write_error ? *write_error
                      : make_error(ErrorCode::kUnavailable, "read from {}: {} before any response",
                                   call.upstream, rec.message());
    } else {
      failed.error =
          make_error(ErrorCode::kDataLoss, "response from {}: {}", call.upstream, rec.message());
    }
    co_return failed;
  };

  std::optional<AttemptResult> failed;
  while (!parser.is_header_done()) {
    failed = co_await read_some();
    if (failed && !parser.is_header_done()) co_return std::move(*failed);
    if (failed) break;  // The head is complete; what followed it failed (reported below).
  }
  out.response.status = parser.status();
  out.response.headers = std::move(parser.headers());
  if (on_head && !on_head(out.response.status, out.response.headers)) {
    out.error = call.cancelled_error();
    co_return out;
  }
  // The body bytes parsed with the head, then each later step's. Bytes parsed in a step reach
  // the caller even when the step then failed.
  for (;;) {
    const std::size_t got = piece.size() - parser.body_space();
    if (got > 0 && on_body && !co_await on_body(std::string_view(piece.data(), got))) {
      out.error = call.cancelled_error();
      co_return out;
    }
    if (failed) co_return std::move(*failed);
    if (parser.is_done()) break;
    failed = co_await read_some();
  }
  // basic_parser's keep_alive: the version and Connection header, and not a body that ends
  // at the close.
  out.reusable = !write_failed && parser.keep_alive() && buffer.size() == 0;
  co_return out;
}

}  // namespace

Status UpstreamClientOptions::validate() const {
  SPW_TRY(check_timeout("connect_timeout", connect_timeout));
  SPW_TRY(check_timeout("io_timeout", io_timeout));
  SPW_TRY(check_timeout("request_timeout", request_timeout));
  if (max_header_bytes < 1024 || max_header_bytes > (1u << 20)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream client option max_header_bytes = {}: must be in [1024, 1048576]",
                      max_header_bytes);
  }
  if (response_fields.size() > 64) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream client option response_fields: {} names, at most 64",
                      response_fields.size());
  }
  for (const std::string& name : response_fields) {
    if (!is_valid_header_name(name)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "upstream client option response_fields: '{}' is not a field name", name);
    }
  }
  if (max_idle_per_upstream > 4096) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream client option max_idle_per_upstream = {}: must be at most 4096",
                      max_idle_per_upstream);
  }
  return Status::ok_status();
}

UpstreamCancel::UpstreamCancel(boost::asio::any_io_executor executor)
    : executor_(std::move(executor)) {}

void UpstreamCancel::cancel() {
  if (cancelled_.exchange(true)) return;
  asio::post(executor_, [self = shared_from_this()] {
    if (self->interrupt_) self->interrupt_();
  });
}

UpstreamClient::UpstreamClient(UpstreamClientOptions options)
    : options_(std::move(options)), options_status_(options_.validate()) {}

namespace {

// `host` as an address: "localhost" is the IPv4 loopback, anything else must be an IP literal.
// The last answer is kept per thread (a gateway sends every call of a loop to the same few
// replicas), so the text is parsed only when the host changes.
Result<asio::ip::address> upstream_address(const std::string& host) {
  struct Last {
    std::string host;
    asio::ip::address address;
    bool valid = false;
  };
  thread_local Last last;
  if (last.valid && last.host == host) return last.address;
  error_code ec;
  const asio::ip::address address = host == "localhost"
                                        ? asio::ip::address(asio::ip::address_v4::loopback())
                                        : asio::ip::make_address(host, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream host '{}': not an IP address or 'localhost'", host);
  }
  last.host = host;
  last.address = address;
  last.valid = true;
  return address;
}

}  // namespace

asio::awaitable<Result<HttpClientResponse>> UpstreamClient::stream(
    std::string host, int port, const HttpClientRequest& request, const HeadCallback& on_head,
    const BodyCallback& on_body, std::shared_ptr<UpstreamCancel> cancel) {
  Result<UpstreamRequest> prepared = UpstreamRequest::from(request);
  if (!prepared.ok()) co_return prepared.error();
  co_return co_await stream(std::move(host), port, *prepared, on_head, on_body, std::move(cancel));
}

asio::awaitable<Result<HttpClientResponse>> UpstreamClient::stream(
    std::string host, int port, const UpstreamRequest& request, const HeadCallback& on_head,
    const BodyCallback& on_body, std::shared_ptr<UpstreamCancel> cancel) {
  if (!options_status_.ok()) co_return options_status_.error();
  if (port < 1 || port > 65535) {
    co_return make_error(ErrorCode::kInvalidArgument, "upstream port {}: must be in [1, 65535]",
                         port);
  }
  Result<asio::ip::address> address = upstream_address(host);
  if (!address.ok()) co_return address.error();
  error_code ec;
  std::string upstream;
  upstream.reserve(host.size() + 6);
  upstream.append(host).append(":").append(std::to_string(port));
  // The request as prepared, with this upstream's Host field after the request line.
  std::string wire;
  wire.reserve(request.line().size() + upstream.size() + 8 + request.rest().size());
  wire.append(request.line());
  if (!request.has_host()) wire.append("Host: ").append(upstream).append("\r\n");
  wire.append(request.rest());

  const auto executor = co_await asio::this_coro::executor;
  auto& idle = asio::use_service<IdleConnections>(asio::query(executor, asio::execution::context));
  const CallContext call{options_, upstream,
                         std::chrono::steady_clock::now() + options_.request_timeout, cancel.get()};
  const tcp::endpoint endpoint(*address, static_cast<std::uint16_t>(port));

  for (int attempt_index = 0;; ++attempt_index) {
    if (call.cancelled()) co_return call.cancelled_error();
    std::shared_ptr<Connection> s = attempt_index == 0 ? idle.take(upstream) : nullptr;
    const bool reused = s != nullptr;
    if (!s) s = std::make_shared<Connection>(executor);
    if (cancel) {
      cancel->interrupt_ = [weak = std::weak_ptr<Connection>(s)] {
        error_code ignored;
        if (auto c = weak.lock()) c->socket.cancel(ignored);
      };
    }
    if (!reused) {
      call.expire_within(*s, options_.connect_timeout);
      co_await s->socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
      s->disarm();
      if (ec && s->timed_out()) ec = beast::error::timeout;
      if (ec) {
        if (cancel) cancel->interrupt_ = nullptr;
        if (call.cancelled()) co_return call.cancelled_error();
        if (ec == beast::error::timeout) {
          co_return call.timeout_error("connect", options_.connect_timeout);
        }
        co_return make_error(ErrorCode::kUnavailable, "connect {}: {}", upstream, ec.message());
      }
      error_code ignored;  // Requests are written whole; do not hold back small ones.
      s->socket.set_option(tcp::no_delay(true), ignored);
      // Synchronous writes return would_block instead of blocking the event loop (attempt()).
      s->socket.non_blocking(true, ec);
      if (ec) {
        if (cancel) cancel->interrupt_ = nullptr;
        co_return make_error(ErrorCode::kUnavailable, "connect {}: {}", upstream, ec.message());
      }
    }
    AttemptResult r = co_await attempt(*s, wire, request.is_head(), on_head, on_body, call);
    s->disarm();
    if (cancel) cancel->interrupt_ = nullptr;
    if (!r.error) {
      if (r.reusable) idle.give(upstream, std::move(s), options_.max_idle_per_upstream);
      co_return std::move(r.response);
    }
    const bool retry = reused && attempt_index == 0 && r.before_response && !call.cancelled() &&
                       std::chrono::steady_clock::now() < call.deadline;
    if (!retry) co_return std::move(*r.error);
  }
}

}  // namespace spillway::net
