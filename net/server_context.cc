#include "net/server_context.h"

#include <exception>
#include <utility>

#include "core/log.h"

namespace spillway::net::internal {

ServerContext::ServerContext(HttpServerOptions opts, Router r)
    : options(std::move(opts)),
      router(std::move(r)),
      render_error(options.error_renderer ? options.error_renderer : render_default_error),
      metrics(options.metrics != nullptr
                  ? std::make_unique<ServerMetrics>(*options.metrics, options.metrics_labels)
                  : nullptr),
      gate(std::make_shared<SinkGate>()) {}

HttpResponse ServerContext::error_response(int status, std::string_view message) const {
  try {
    HttpResponse response = render_error(status, message);
    response.status = status;
    return response;
  } catch (const std::exception& e) {
    log_error("http error renderer threw", {kv("error", e.what())});
  } catch (...) {
    log_error("http error renderer threw");
  }
  return render_default_error(status, message);
}

void ServerContext::add_connection(std::uint64_t id, std::weak_ptr<HttpConnection> connection) {
  std::lock_guard lock(mu_);
  connections_.emplace(id, std::move(connection));
}

void ServerContext::remove_connection(std::uint64_t id) {
  {
    std::lock_guard lock(mu_);
    connections_.erase(id);
  }
  cv_.notify_all();
}

void ServerContext::request_started() {
  std::lock_guard lock(mu_);
  ++active_requests_;
}

void ServerContext::request_ended() {
  {
    std::lock_guard lock(mu_);
    --active_requests_;
  }
  cv_.notify_all();
}

bool ServerContext::wait_requests_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return active_requests_ == 0; });
}

bool ServerContext::wait_connections_gone(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return open_connections.load() == 0; });
}

std::size_t ServerContext::active_requests() const {
  std::lock_guard lock(mu_);
  return active_requests_;
}

}  // namespace spillway::net::internal
