// An asynchronous HTTP/1.1 client for forwarding requests to upstream servers (the gateway's
// replicas), as C++20 coroutines that run on the caller's executor. The gateway calls it on the
// I/O thread serving the client's connection (io_executor.h), so a forwarded request costs no
// thread handoff: the client's bytes, the upstream's bytes and the relay all stay on one event
// loop, as in an event-driven reverse proxy. Plain HTTP only (replicas are reached over the
// private network). For blocking calls from ordinary threads use HttpClient (http_client.h).
//
// Connections are kept alive and reused per event loop and upstream: a service of the loop's
// io_context keeps the idle ones (at most max_idle_per_upstream per upstream), so they never
// outlive their loop. A call that fails on a reused connection before any byte of the response
// arrived (the upstream had closed it while idle) is sent once more on a fresh connection;
// the upstream saw at most a request it never answered.
//
// Bounds, as HttpClient: connecting (connect_timeout), each wait for a socket read or write
// (io_timeout: the longest silence, e.g. between two streamed tokens), the whole call
// (request_timeout), response header bytes (max_header_bytes). Body bytes are handed to the
// caller as they arrive, never buffered here.
//
// Responses are read with net/http1_parse.h (strict HTTP/1.1: see there); interim 1xx answers
// are skipped (at most 8), a 101 protocol switch is an error.
//
// Errors: kInvalidArgument (bad options, request or host), kUnavailable (could not connect, or
// the connection failed before any response byte: safe to retry elsewhere), kDeadlineExceeded
// (a timeout), kPayloadTooLarge (response head over max_header_bytes), kDataLoss (malformed or
// truncated response), kCancelled (on_head/on_body said stop, or UpstreamCancel::cancel()).
//
// Thread-safety: one UpstreamClient serves any number of concurrent calls on any loops.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "core/status.h"

#include "net/http_client.h"
#include "net/http_headers.h"
#include "net/upstream_request.h"

namespace spillway::net {

struct UpstreamClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds io_timeout{30'000};
  std::chrono::milliseconds request_timeout{60'000};
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_idle_per_upstream = 64;  // Idle kept-alive connections per loop and upstream.
  // The response header fields kept for on_head and the result, by name (case-insensitive);
  // empty keeps them all. The others are still parsed (framing, keep-alive) but not stored.
  std::vector<std::string> response_fields;

  [[nodiscard]] Status validate() const;
};

// Lets another thread stop a call in progress (the client of the gateway went away).
class UpstreamCancel : public std::enable_shared_from_this<UpstreamCancel> {
 public:
  // `executor`: the one the call runs on (cancellation is carried out there).
  explicit UpstreamCancel(boost::asio::any_io_executor executor);

  // Any thread; idempotent. The call in progress, and any later one with this object, fails
  // with kCancelled; its connection is closed, which tells the upstream to stop.
  void cancel();
  [[nodiscard]] bool cancelled() const { return cancelled_.load(); }

 private:
  friend class UpstreamClient;
  const boost::asio::any_io_executor executor_;
  std::atomic<bool> cancelled_{false};
  // The connection in use, to cancel its operations; touched on executor_ only.
  std::function<void()> interrupt_;
};

namespace internal {
class UpstreamConnection;
class IdleConnections;
struct UpstreamTarget;
}  // namespace internal

// A request UpstreamClient::send_now() began to write (whole or in part) on a connection it
// took: stream() goes on from there. Empty when send_now() took no connection.
class UpstreamSent {
 public:
  UpstreamSent() = default;
  [[nodiscard]] explicit operator bool() const { return connection_ != nullptr; }

 private:
  friend class UpstreamClient;
  std::shared_ptr<internal::UpstreamConnection> connection_;
  std::size_t written_ = 0;
  // What send_now() looked up, so stream() need not again.
  std::shared_ptr<const internal::UpstreamTarget> target_;
  internal::IdleConnections* idle_ = nullptr;  // The loop's; lives as long as its io_context.
};

class UpstreamClient {
 public:
  using Sent = UpstreamSent;

  // Return false to stop the call (it then fails with kCancelled and the connection closes).
  using HeadCallback = std::function<bool(int status, const HttpHeaders& headers)>;
  // What on_body says of a piece: go on; stop (the call fails with kCancelled and the
  // connection closes); or wait: on_wait is awaited before the call reads on (e.g. until the
  // caller's own client has read what it was sent), and its false stops the call.
  enum class Body : std::uint8_t { kContinue, kStop, kWait };
  // Called for each piece of body as it arrives (pieces follow the network, not the
  // upstream's chunks). Not a coroutine: a piece costs no coroutine frame unless it waits.
  using BodyCallback = std::function<Body(std::string_view piece)>;
  using WaitCallback = std::function<boost::asio::awaitable<bool>()>;

  explicit UpstreamClient(UpstreamClientOptions options);

  // Writes `request` to host:port now, on the calling thread, when this loop holds an idle
  // kept-alive connection to it: what the socket takes at once (the whole request, usually).
  // stream() then goes on from there, so a caller that has work to do before it can await
  // stream() (setting up its coroutine) need not hold the request back for it. Empty when it
  // took no connection: none idle, bad options or host, or a failed write (the connection is
  // dropped, and stream() starts over); a socket that took nothing yet (would block) still
  // counts, and stream() writes the rest. REQUIRES: called on the thread running
  // `executor`, the executor stream() will be awaited on, and stream() awaited with the same
  // host, port and request.
  [[nodiscard]] Sent send_now(const std::string& host, int port, const UpstreamRequest& request,
                              const boost::asio::any_io_executor& executor);

  // Sends `request` to host:port (an IP address literal or "localhost"), with a Host field
  // for it unless the request has one, and relays the response: on_head once the head arrives,
  // then on_body per piece; returns the status and headers when the body is complete. Body
  // bytes that arrived always reach on_body, even when the connection then fails (the error
  // follows them). `sent`: what send_now() wrote of this request (a failure before any answer
  // on that connection is retried on a fresh one, as on any reused connection). Must be
  // awaited on the executor given to `cancel` (when there is one); the references must stay
  // valid until it completes.
  [[nodiscard]] boost::asio::awaitable<Result<HttpClientResponse>> stream(
      std::string host, int port, const UpstreamRequest& request, const HeadCallback& on_head,
      const BodyCallback& on_body, const WaitCallback& on_wait,
      std::shared_ptr<UpstreamCancel> cancel, Sent sent = Sent());
  // The same for an HttpClientRequest (UpstreamRequest::from: kInvalidArgument if invalid).
  [[nodiscard]] boost::asio::awaitable<Result<HttpClientResponse>> stream(
      std::string host, int port, const HttpClientRequest& request, const HeadCallback& on_head,
      const BodyCallback& on_body, const WaitCallback& on_wait,
      std::shared_ptr<UpstreamCancel> cancel);

  [[nodiscard]] const UpstreamClientOptions& options() const { return options_; }

 private:
  const UpstreamClientOptions options_;
  const Status options_status_;  // options_.validate(), checked once; each call reports it.
};

}  // namespace spillway::net
