// Internal to net/: what an HttpServer shares with its connections: the immutable settings and
// router, the metrics, the writer gate, and the registry of live connections and requests in
// progress that drain and stop wait on.
//
// Thread-safety: used from every I/O thread and from the server's owner. Settings are
// immutable, counters atomic, and the registry is guarded by one mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "net/exchange.h"
#include "net/http_server_options.h"
#include "net/router.h"
#include "net/server_metrics.h"

namespace spillway::net::internal {

class HttpConnection;

struct ServerContext {
  ServerContext(HttpServerOptions opts, Router r);

  const HttpServerOptions options;
  const Router router;
  const ErrorRenderer render_error;              // Never empty.
  const std::unique_ptr<ServerMetrics> metrics;  // Null when options.metrics is null.
  const std::shared_ptr<SinkGate> gate;
  std::atomic<bool> draining{false};
  std::atomic<int> open_connections{0};

  // An error response body from render_error, falling back to the default renderer if the
  // pluggable one throws.
  [[nodiscard]] HttpResponse error_response(int status, std::string_view message) const;

  void add_connection(std::uint64_t id, std::weak_ptr<HttpConnection> connection);
  void remove_connection(std::uint64_t id);
  void request_started();
  void request_ended();
  // Calls fn(connection) for each live connection. Do not call back into the context from fn.
  template <typename Fn>
  void for_each_connection(Fn&& fn);
  // Waits until no request is in progress or `timeout` passes; true if none is.
  bool wait_requests_done(std::chrono::milliseconds timeout);
  // Waits until every connection object is gone or `timeout` passes; true if all are.
  bool wait_connections_gone(std::chrono::milliseconds timeout);
  [[nodiscard]] std::size_t active_requests() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::uint64_t, std::weak_ptr<HttpConnection>> connections_;  // Guarded.
  std::size_t active_requests_ = 0;                                               // Guarded.
};

template <typename Fn>
void ServerContext::for_each_connection(Fn&& fn) {
  std::unordered_map<std::uint64_t, std::weak_ptr<HttpConnection>> snapshot;
  {
    std::lock_guard lock(mu_);
    snapshot = connections_;
  }
  for (auto& [id, weak] : snapshot) {
    if (auto connection = weak.lock()) fn(*connection);
  }
}

}  // namespace spillway::net::internal
