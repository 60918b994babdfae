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
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "net/client_request.h"
#include "net/http1_parse.h"

namespace spillway::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

// One read of a response: body pieces handed to the caller are at most this plus what an
// earlier read left unparsed (a partial chunk-size line).
constexpr std::size_t kReadBytes = 16 * 1024;
// Interim (1xx) answers skipped before the final one; more is an upstream gone wrong.
constexpr int kMaxInterimAnswers = 8;

Status check_timeout(std::string_view field, std::chrono::milliseconds value) {
  return internal::check_client_timeout("upstream client", field, value);
}

}  // namespace

// One upstream connection with its watchdog timer. The watchdog is lazy: each step (connect,
// send, read) only records its deadline, and the one pending wait re-checks the deadline when it
// fires, so a step that ends in time costs no timer operation (a kept-alive connection's wait
// carries over from call to call). When a deadline passes, the step's operation is cancelled
// and timed_out() tells why.
class internal::UpstreamConnection
    : public std::enable_shared_from_this<internal::UpstreamConnection> {
 public:
  explicit UpstreamConnection(const asio::any_io_executor& executor)
      : socket(executor), timer_(executor) {}

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
  http1::ResponseHead head;
  std::string decoded;  // A read's bytes of a chunked body, without the framing.

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
class internal::IdleConnections final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;

  explicit IdleConnections(asio::execution_context& context)
      : asio::execution_context::service(context) {}

  std::shared_ptr<UpstreamConnection> take(const std::string& upstream) {
    std::lock_guard lock(mu_);
    auto it = idle_.find(upstream);
    if (it == idle_.end() || it->second.empty()) return nullptr;
    std::shared_ptr<UpstreamConnection> s = std::move(it->second.back());
    it->second.pop_back();
    return s;
  }

  void give(const std::string& upstream, std::shared_ptr<UpstreamConnection> s, std::size_t max) {
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
  std::unordered_map<std::string, std::vector<std::shared_ptr<UpstreamConnection>>> idle_;
  bool shut_down_ = false;
};

namespace {

using Connection = internal::UpstreamConnection;
using IdleConnections = internal::IdleConnections;

// The fields of `head` named in `keep` (all of them when it is empty), into `out`.
void keep_fields(const http1::ResponseHead& head, const std::vector<std::string>& keep,
                 HttpHeaders& out) {
  out.reserve(keep.empty() ? head.fields.size() : keep.size());
  for (const http1::Field& f : head.fields) {
    if (!keep.empty() && std::none_of(keep.begin(), keep.end(),
                                      [&](const std::string& k) { return iequals(k, f.name); })) {
      continue;
    }
    out.add(std::string(f.name), std::string(f.value));
  }
}

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

// A request's bytes in the order they go out.
struct RequestWire {
  std::string_view line;  // The request line.
  std::string_view host;  // The Host field line, or empty.
  std::string_view rest;  // The other fields, the empty line and the body.
};

// Writes what the socket takes of `wire` now, after its first `written` bytes, without
// waiting (the socket is non-blocking: see Connection); returns how many bytes are written in
// all. `ec`: would_block when the socket took less than all, or the failure.
std::size_t write_now(Connection& c, const RequestWire& wire, std::size_t written, error_code& ec) {
  const std::array<asio::const_buffer, 3> parts{asio::buffer(wire.line), asio::buffer(wire.host),
                                                asio::buffer(wire.rest)};
  beast::buffers_suffix<std::array<asio::const_buffer, 3>> unsent(parts);
  unsent.consume(written);
  while (beast::buffer_bytes(unsent) > 0 && !ec) {
    const std::size_t n = c.socket.write_some(unsent, ec);
    unsent.consume(n);
    written += n;
  }
  return written;
}

// Sends what is left of `wire` after its first `written` bytes and reads the response.
asio::awaitable<AttemptResult> attempt(Connection& c, const RequestWire& wire, std::size_t written,
                                       bool head_request,
                                       const UpstreamClient::HeadCallback& on_head,
                                       const UpstreamClient::BodyCallback& on_body,
                                       const UpstreamClient::WaitCallback& on_wait,
                                       const CallContext& call) {
  AttemptResult out;
  error_code ec;
  call.expire_within(c, call.options.io_timeout);
  // A request the socket takes whole, the usual case, is written here, without the event-loop
  // round an asynchronous write's completion costs; the rest of one it does not take goes
  // asynchronously.
  const std::array<asio::const_buffer, 3> parts{asio::buffer(wire.line), asio::buffer(wire.host),
                                                asio::buffer(wire.rest)};
  beast::buffers_suffix<std::array<asio::const_buffer, 3>> unsent(parts);
  unsent.consume(write_now(c, wire, written, ec));
  if (ec == asio::error::would_block) {
    ec = {};
    co_await asio::async_write(c.socket, unsent, asio::redirect_error(asio::use_awaitable, ec));
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
  const auto buffered = [&buffer] {
    const auto data = buffer.cdata();
    return std::string_view(static_cast<const char*>(data.data()), data.size());
  };
  const std::size_t max_head = call.options.max_header_bytes;
  http1::ResponseHead& response = c.head;
  http1::ChunkedDecoder chunks(max_head);
  enum class Phase { kHead, kBody, kDone };
  Phase phase = Phase::kHead;
  std::size_t head_scanned = 0;  // Bytes head_size() searched without finding the end.
  std::uint64_t body_left = 0;   // BodyFraming::kLength.
  bool got_some = false;         // A byte of the response arrived.
  int interim = 0;               // 1xx answers skipped so far.

  // Each round parses what is buffered, hands the body bytes among it to on_body, then reads
  // once more unless the response is complete. A read's bytes are parsed in the round after it,
  // in the same step: no event-loop round between reading and relaying.
  for (;;) {
    if (phase == Phase::kHead) {
      const std::string_view bytes = buffered();
      const std::size_t size = http1::head_size(bytes, head_scanned);
      head_scanned = bytes.size();
      if (size > max_head || (size == 0 && bytes.size() >= max_head)) {
        out.error = make_error(ErrorCode::kPayloadTooLarge,
                               "response from {}: the head exceeds the limit of {} bytes",
                               call.upstream, max_head);
        co_return out;
      }
      if (size > 0) {
        const Status parsed =
            http1::parse_response_head(bytes.substr(0, size), head_request, response);
        if (!parsed.ok()) {
          out.error = make_error(ErrorCode::kDataLoss, "response from {}: malformed: {}",
                                 call.upstream, parsed.error().message());
          co_return out;
        }
        buffer.consume(size);
        head_scanned = 0;
        if (response.status / 100 == 1) {
          if (response.status == 101) {
            out.error = make_error(ErrorCode::kDataLoss,
                                   "response from {}: a protocol switch (101) nobody asked for",
                                   call.upstream);
            co_return out;
          }
          if (++interim > kMaxInterimAnswers) {
            out.error = make_error(ErrorCode::kDataLoss,
                                   "response from {}: more than {} interim (1xx) answers",
                                   call.upstream, kMaxInterimAnswers);
            co_return out;
          }
          continue;  // An interim answer (100 Continue, 103 Early Hints); the final one follows.
        }
        out.response.status = response.status;
        keep_fields(response, call.options.response_fields, out.response.headers);
        if (on_head && !on_head(out.response.status, out.response.headers)) {
          out.error = call.cancelled_error();
          co_return out;
        }
        body_left = response.content_length;
        const bool empty = response.framing == http1::BodyFraming::kNone ||
                           (response.framing == http1::BodyFraming::kLength && body_left == 0);
        phase = empty ? Phase::kDone : Phase::kBody;
        continue;
      }
    } else if (phase == Phase::kBody) {
      const std::string_view bytes = buffered();
      std::string_view piece;
      std::size_t used = 0;
      switch (response.framing) {
        case http1::BodyFraming::kLength:
          used = static_cast<std::size_t>(
              std::min<std::uint64_t>(body_left, static_cast<std::uint64_t>(bytes.size())));
          piece = bytes.substr(0, used);
          body_left -= used;
          if (body_left == 0) phase = Phase::kDone;
          break;
        case http1::BodyFraming::kUntilClose:
          used = bytes.size();
          piece = bytes;
          break;
        case http1::BodyFraming::kChunked:
          c.decoded.clear();
          for (;;) {
            const Result<http1::ChunkedDecoder::Step> step = chunks.step(bytes.substr(used));
            if (!step.ok()) {
              out.error = make_error(ErrorCode::kDataLoss, "response from {}: bad chunked body: {}",
                                     call.upstream, step.error().message());
              co_return out;
            }
            c.decoded.append(step->data);
            used += step->consumed;
            if (chunks.done()) {
              phase = Phase::kDone;
              break;
            }
            if (step->consumed == 0) break;
          }
          piece = c.decoded;
          break;
        case http1::BodyFraming::kNone:
          break;
      }
      if (!piece.empty() && on_body) {
        const UpstreamClient::Body verdict = on_body(piece);
        bool stop = verdict == UpstreamClient::Body::kStop;
        if (verdict == UpstreamClient::Body::kWait && on_wait) {
          // A statement of its own: GCC 12 miscompiles co_await inside || and ?: operands.
          const bool go_on = co_await on_wait();
          stop = !go_on;
        }
        if (stop) {
          out.error = call.cancelled_error();
          co_return out;
        }
      }
      buffer.consume(used);
    }
    if (phase == Phase::kDone) break;

    call.expire_within(c, call.options.io_timeout);
    error_code rec;
    const std::size_t n = co_await c.socket.async_read_some(
        buffer.prepare(kReadBytes), asio::redirect_error(asio::use_awaitable, rec));
    buffer.commit(n);
    got_some = got_some || n > 0;
    if (!rec) continue;
    if (rec == asio::error::eof && phase == Phase::kBody &&
        response.framing == http1::BodyFraming::kUntilClose) {
      break;  // The close ends this body.
    }
    if (c.timed_out()) rec = beast::error::timeout;
    if (call.cancelled()) {
      out.error = call.cancelled_error();
    } else if (rec == beast::error::timeout) {
      out.error = call.timeout_error("read from", call.options.io_timeout);
    } else if (!got_some) {
      out.before_response = true;
      out.error = write_error
                      ? *write_error
                      : make_error(ErrorCode::kUnavailable, "read from {}: {} before any response",
                                   call.upstream, rec.message());
    } else {
      out.error = make_error(ErrorCode::kDataLoss, "response from {}: {} before its end",
                             call.upstream, rec == asio::error::eof ? "closed" : rec.message());
    }
    co_return out;
  }
  // The version and Connection field allow another message, the body did not end at the close,
  // and nothing followed the response.
  out.reusable = !write_failed && response.keep_alive && buffer.size() == 0;
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

// What calls need to know of one upstream: its address, "host:port" (for messages and as the
// key of idle connections) and its Host field line.
struct internal::UpstreamTarget {
  std::string host;
  int port = 0;
  tcp::endpoint endpoint;
  std::string name;
  std::string host_line;
};

namespace {

using UpstreamTarget = internal::UpstreamTarget;

// The target for host:port. `host` must be an IP literal or "localhost" (the IPv4 loopback).
// Kept per thread for the last 64 upstreams (a gateway's loop sends to the same few replicas),
// so the text is parsed and the strings made once; shared, so that a call suspended while
// others replace the entries keeps its own.
Result<std::shared_ptr<const UpstreamTarget>> upstream_target(const std::string& host, int port) {
  constexpr std::size_t kKept = 64;
  thread_local std::vector<std::shared_ptr<const UpstreamTarget>> kept;
  for (const auto& t : kept) {
    if (t->port == port && t->host == host) return t;
  }
  error_code ec;
  const asio::ip::address address = host == "localhost"
                                        ? asio::ip::address(asio::ip::address_v4::loopback())
                                        : asio::ip::make_address(host, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream host '{}': not an IP address or 'localhost'", host);
  }
  auto t = std::make_shared<UpstreamTarget>();
  t->host = host;
  t->port = port;
  t->endpoint = tcp::endpoint(address, static_cast<std::uint16_t>(port));
  t->name = fmt::format("{}:{}", host, port);
  t->host_line = fmt::format("Host: {}\r\n", t->name);
  if (kept.size() >= kKept) kept.erase(kept.begin());
  kept.push_back(t);
  return std::shared_ptr<const UpstreamTarget>(std::move(t));
}

}  // namespace

asio::awaitable<Result<HttpClientResponse>> UpstreamClient::stream(
    std::string host, int port, const HttpClientRequest& request, const HeadCallback& on_head,
    const BodyCallback& on_body, const WaitCallback& on_wait,
    std::shared_ptr<UpstreamCancel> cancel) {
  Result<UpstreamRequest> prepared = UpstreamRequest::from(request);
  if (!prepared.ok()) co_return prepared.error();
  co_return co_await stream(std::move(host), port, *prepared, on_head, on_body, on_wait,
                            std::move(cancel), Sent());
}

UpstreamClient::Sent UpstreamClient::send_now(const std::string& host, int port,
                                              const UpstreamRequest& request,
                                              const asio::any_io_executor& executor) {
  Sent sent;
  if (!options_status_.ok() || port < 1 || port > 65535) return sent;
  Result<std::shared_ptr<const UpstreamTarget>> target = upstream_target(host, port);
  if (!target.ok()) return sent;
  auto& idle = asio::use_service<IdleConnections>(asio::query(executor, asio::execution::context));
  std::shared_ptr<Connection> c = idle.take((*target)->name);
  if (!c) return sent;
  sent.target_ = *target;
  sent.idle_ = &idle;
  const RequestWire wire{request.line(),
                         request.has_host() ? std::string_view() : (*target)->host_line,
                         request.rest()};
  error_code ec;
  const std::size_t written = write_now(*c, wire, 0, ec);
  // A write that failed (the upstream closed the idle connection) drops the connection:
  // stream() starts over, on another one.
  if (ec && ec != asio::error::would_block) return Sent();
  sent.connection_ = std::move(c);
  sent.written_ = written;
  return sent;
}

asio::awaitable<Result<HttpClientResponse>> UpstreamClient::stream(
    std::string host, int port, const UpstreamRequest& request, const HeadCallback& on_head,
    const BodyCallback& on_body, const WaitCallback& on_wait,
    std::shared_ptr<UpstreamCancel> cancel, Sent sent) {
  if (!options_status_.ok()) co_return options_status_.error();
  if (port < 1 || port > 65535) {
    co_return make_error(ErrorCode::kInvalidArgument, "upstream port {}: must be in [1, 65535]",
                         port);
  }
  // What send_now() looked up, or the lookups themselves.
  std::shared_ptr<const UpstreamTarget> target = sent.target_;
  if (!target) {
    Result<std::shared_ptr<const UpstreamTarget>> found = upstream_target(host, port);
    if (!found.ok()) co_return found.error();
    target = std::move(found).value();
  }
  const std::string& upstream = target->name;
  error_code ec;
  // The request as prepared, with this upstream's Host field after the request line: written
  // from its three parts, not copied into one.
  const RequestWire wire{
      request.line(), request.has_host() ? std::string_view() : target->host_line, request.rest()};

  const auto executor = co_await asio::this_coro::executor;
  IdleConnections& idle =
      sent.idle_ != nullptr
          ? *sent.idle_
          : asio::use_service<IdleConnections>(asio::query(executor, asio::execution::context));
  const CallContext call{options_, upstream,
                         std::chrono::steady_clock::now() + options_.request_timeout, cancel.get()};
  const tcp::endpoint& endpoint = target->endpoint;

  for (int attempt_index = 0;; ++attempt_index) {
    if (call.cancelled()) co_return call.cancelled_error();
    std::size_t written = 0;  // Of the request, on s (by send_now).
    std::shared_ptr<Connection> s;
    if (attempt_index == 0 && sent.connection_) {
      s = std::move(sent.connection_);
      written = sent.written_;
    } else if (attempt_index == 0) {
      s = idle.take(upstream);
    }
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
    AttemptResult r =
        co_await attempt(*s, wire, written, request.is_head(), on_head, on_body, on_wait, call);
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
