// An HTTP/1.1 server (plain TCP; TLS is terminated in front of it) on a small fixed pool of
// event-loop threads. Generic: it knows routes, limits and connections, nothing about models or
// APIs.
//
// Concurrency model: `io_threads` threads, each running its own Asio io_context (event loop);
// accepted connections are dealt to the loops in turn and stay on theirs. Each connection's
// handlers run on its loop's one thread (the loop's executor serializes them, as a strand
// would), so its state needs no locks and idle keep-alive connections cost memory, not threads.
// Handlers (see router.h) run on I/O threads and must not block; they may complete their
// ResponseWriter from any thread, or continue asynchronously on the connection's own executor
// (io_executor.h), which costs no thread handoff. Requests on one connection are handled one at a
// time, in order (pipelined requests wait in a bounded buffer).
//
// Limits (see HttpServerOptions): connections (over the limit: closed at once), header,
// request-target and body sizes (431, 414, 413), header/body/idle/write timeouts, and the
// per-response write buffer. Responses the server makes itself (404, 405 with Allow, 400, 408,
// 413, 414, 431, 500, 505) get their bodies from the pluggable ErrorRenderer.
//
// Shutdown: stop_accepting() closes the listener and idle connections; drain() waits for the
// requests in progress (their responses carry Connection: close); stop() closes everything,
// fires pending writers' on_close, joins the threads and destroys the event loops, and with
// them whatever handlers left pending there (coroutines waiting on an upstream). Signals are
// the caller's business.
//
// Thread-safety: all public methods are safe for concurrent use, except that drain(), stop()
// and the destructor block and so must not be called from a handler or an on_close callback
// (an I/O thread); stop() called there logs an error and returns without stopping.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/status.h"

#include "net/http_server_options.h"
#include "net/router.h"

namespace spillway::net {

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, Router router);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Validates the options, binds and listens, and starts the I/O threads.
  // Errors: kInvalidArgument (options, host), kUnavailable (bind/listen failed, e.g. the port is
  // in use), kFailedPrecondition (already started or stopped).
  Status start();

  // The bound port (useful with port 0); 0 before start().
  [[nodiscard]] std::uint16_t port() const;

  // Stops accepting and closes idle connections; requests in progress continue. Idempotent.
  void stop_accepting();
  // stop_accepting(), then waits until no request is in progress or `timeout` passes. Returns
  // true if all finished. Does not stop the server; call stop() after.
  bool drain(std::chrono::milliseconds timeout);
  // Closes every connection now and joins the I/O threads. Idempotent.
  void stop();

  [[nodiscard]] int open_connections() const;
  [[nodiscard]] std::size_t active_requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spillway::net
