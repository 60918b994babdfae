// A blocking HTTP/1.1 client for one server (host:port): the gateway forwards requests to
// replicas with it and relays their streamed responses; the control plane polls /ready and
// /metrics. Plain HTTP only: no TLS (replicas are reached over the private network).
//
// Every step is bounded, so a call never hangs: connecting (connect_timeout), each wait for a
// socket read or write (io_timeout: the longest silence tolerated, e.g. between two streamed
// tokens), and the whole call (request_timeout). Sizes are bounded too: response headers
// (max_header_bytes) and buffered bodies (max_body_bytes).
//
// A server may answer before it read the whole request (e.g. 413 for a body over its limit) and
// then close the connection, so that sending the rest fails: the client then still reads that
// early answer and returns it (the connection is not reused); only when there is none does the
// call fail with the sending error.
//
// The connection is kept alive between calls when the server allows it. A call that fails on a
// reused connection before any response byte arrived (the server closed it while idle) is
// retried once on a fresh connection if its method is idempotent (GET, HEAD, OPTIONS, PUT,
// DELETE); other methods get the error.
//
// Errors: kInvalidArgument (bad options or request), kUnavailable (could not connect, or the
// connection failed before any response byte; safe to retry elsewhere), kDeadlineExceeded (a
// timeout), kPayloadTooLarge (response over a size limit), kDataLoss (malformed or truncated
// response), kCancelled (a stream callback returned false, or the abort check said so).
//
// Thread-safety: one call at a time per HttpClient (it owns its socket and event loop); use one
// client per thread. Movable, not copyable.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

#include "net/http_headers.h"

namespace spillway::net {

struct HttpClientOptions {
  std::string host = "127.0.0.1";  // An IP address literal or "localhost"; no DNS lookups yet.
  int port = 80;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds io_timeout{30'000};
  std::chrono::milliseconds request_timeout{60'000};
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_body_bytes = 64 * 1024 * 1024;  // request() only; stream() hands bytes over.
  bool keep_alive = true;
  // How often stream() asks its abort check while it waits on the network, [1, 60'000] ms.
  std::chrono::milliseconds abort_poll_interval{20};

  [[nodiscard]] Status validate() const;
};

struct HttpClientRequest {
  std::string method = "GET";
  std::string target = "/";  // Origin form: "/path?query".
  HttpHeaders headers;       // Host is added when absent; Content-Length is set from body.
  std::string body;
};

struct HttpClientResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;  // Empty for stream().
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request and reads the whole response (body up to max_body_bytes).
  [[nodiscard]] Result<HttpClientResponse> request(const HttpClientRequest& request);

  // Return false to abort the call (it then fails with kCancelled and the connection closes).
  using HeadCallback = std::function<bool(int status, const HttpHeaders& headers)>;
  using BodyCallback = std::function<bool(std::string_view piece)>;
  // Return true to abort the call; asked every abort_poll_interval while the call waits on the
  // network (connecting, sending, waiting for the response), e.g. "has our own client left?".
  using AbortCheck = std::function<bool()>;
  // Sends the request, calls on_head once the response head arrives, then on_body for each
  // piece of body as it arrives (pieces follow the network, not the server's chunk
  // boundaries). Returns the status and headers when the body is complete. Body bytes that
  // arrived are always handed to on_body, even when the connection then fails (a truncated
  // response: the error follows them). When `should_abort` says so the call fails with
  // kCancelled at once and the connection closes (which tells the server to stop).
  [[nodiscard]] Result<HttpClientResponse> stream(const HttpClientRequest& request,
                                                  const HeadCallback& on_head,
                                                  const BodyCallback& on_body,
                                                  const AbortCheck& should_abort = {});

  // Drops the kept-alive connection, if any.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spillway::net
