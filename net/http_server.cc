#include "net/http_server.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "core/log.h"

#include "net/http_connection.h"
#include "net/poll_window.h"

namespace spillway::net {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

// Runs `ioc` until it stops (handlers do not throw: connection code catches handler
// exceptions). With busy_poll > 0, a loop out of ready work polls before it blocks in the
// kernel, for as long as its PollWindow says (at most busy_poll). A gap that ends in a sleep is
// measured up to the end of the first handler run after it (io_context cannot wait without
// running one, and handlers take microseconds), which errs towards shorter windows.
void run_loop(asio::io_context& ioc, std::chrono::microseconds busy_poll) {
  if (busy_poll.count() == 0) {
    ioc.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  PollWindow window(busy_poll);
  while (!ioc.stopped()) {
    if (ioc.poll() > 0) continue;
    const Clock::time_point idle = Clock::now();
    const Clock::time_point until = idle + window.window();
    bool ready = false;
    while (!ready && !ioc.stopped() && Clock::now() < until)
      ready = ioc.poll_one() > 0;
    if (ready) {
      window.caught();
      continue;
    }
    ioc.run_one();
    window.slept(Clock::now() - idle);
  }
}

// After a failed accept (e.g. out of file descriptors), wait this long before the next one so
// the listener does not spin.
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};
// stop() waits this long for closed connections to release their objects before it stops the
// event loop regardless.
constexpr std::chrono::milliseconds kStopGrace{2000};

// The server whose I/O thread is running on this thread, if any.
thread_local const void* tls_io_server = nullptr;

}  // namespace

struct HttpServer::Impl {
  enum class State { kNew, kRunning, kStopped };

  Impl(HttpServerOptions options, Router router)
      : ctx(std::make_shared<internal::ServerContext>(std::move(options), std::move(router))) {}
  ~Impl() { stop(); }

  Status start();
  void do_accept();
  void on_accept(error_code ec, tcp::socket socket);
  void stop_accepting();
  void stop();

  const std::shared_ptr<internal::ServerContext> ctx;
  // One event loop per I/O thread, each run by its thread alone; a connection stays on the
  // loop it was accepted onto. Declared before the objects bound to them; stop() destroys them
  // (and with them every handler and coroutine still pending on them) after the threads end.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;           // On loop 0's strand only, once running.
  std::optional<asio::steady_timer> accept_retry;  // Same strand.
  std::vector<std::thread> threads;
  std::atomic<std::uint16_t> port{0};
  std::uint64_t next_connection_id = 0;  // Acceptor strand only.
  std::size_t next_loop = 0;             // Acceptor strand only.

  std::mutex lifecycle_mu;
  State state = State::kNew;  // Guarded by lifecycle_mu.
};

Status HttpServer::Impl::start() {
  std::lock_guard lock(lifecycle_mu);
  if (state != State::kNew) {
    return make_error(ErrorCode::kFailedPrecondition, "http server already started or stopped");
  }
  const HttpServerOptions& o = ctx->options;
  SPW_TRY(o.validate());
  accept_retry.reset();  // From an earlier start() that failed.
  acceptor.reset();
  loops.clear();
  for (int i = 0; i < o.io_threads; ++i)
    loops.push_back(std::make_unique<asio::io_context>(1));
  acceptor.emplace(asio::make_strand(*loops.front()));
  accept_retry.emplace(acceptor->get_executor());
  error_code ec;
  const asio::ip::address address = o.host == "localhost"
                                        ? asio::ip::address(asio::ip::address_v4::loopback())
                                        : asio::ip::make_address(o.host, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "http server option host '{}': not an IP address or 'localhost'", o.host);
  }
  const tcp::endpoint endpoint(address, static_cast<std::uint16_t>(o.port));
  auto fail = [&](std::string_view step) {
    error_code ignored;
    acceptor->close(ignored);
    return make_error(ErrorCode::kUnavailable, "http server {} {}:{}: {}", step, o.host, o.port,
                      ec.message());
  };
  if (acceptor->open(endpoint.protocol(), ec)) return fail("open");
  if (acceptor->set_option(tcp::acceptor::reuse_address(true), ec)) return fail("configure");
  if (acceptor->bind(endpoint, ec)) return fail("bind");
  if (acceptor->listen(o.listen_backlog, ec)) return fail("listen");
  port = acceptor->local_endpoint(ec).port();

  threads.reserve(loops.size());
  for (const auto& loop : loops) {
    work.push_back(asio::make_work_guard(*loop));
    threads.emplace_back([this, &ioc = *loop, busy_poll = o.busy_poll] {
      tls_io_server = this;
      run_loop(ioc, busy_poll);
      tls_io_server = nullptr;
    });
  }
  asio::post(acceptor->get_executor(), [this] { do_accept(); });
  state = State::kRunning;
  // Debug only: each command logs its own one "ready" line (spillway serve: "ready url=...").
  log_debug("http server listening", {kv("host", o.host), kv("port", port.load())});
  return Status::ok_status();
}

void HttpServer::Impl::do_accept() {
  if (!acceptor->is_open()) return;
  asio::io_context& loop = *loops[next_loop++ % loops.size()];
  // The connection's executor is its loop's own: one thread runs each loop, so the loop already
  // serializes the connection's handlers and a strand would only add its queue and locking.
  acceptor->async_accept(loop.get_executor(), [this](error_code ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void HttpServer::Impl::on_accept(error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
  if (ec) {
    log_warn("http accept failed", {kv("error", ec.message())});
    accept_retry->expires_after(kAcceptRetryDelay);
    accept_retry->async_wait([this](error_code e) {
      if (!e) do_accept();
    });
    return;
  }
  if (ctx->draining.load()) {
    socket.close(ec);
  } else if (ctx->open_connections.load() >= ctx->options.max_connections) {
    socket.close(ec);
    if (ctx->metrics) ctx->metrics->connection_rejected();
    log_debug("http connection rejected: max_connections open",
              {kv("max_connections", ctx->options.max_connections)});
  } else {
    std::make_shared<internal::HttpConnection>(ctx, std::move(socket), ++next_connection_id)
        ->start();
  }
  do_accept();
}

void HttpServer::Impl::stop_accepting() {
  if (ctx->draining.exchange(true)) return;
  asio::post(acceptor->get_executor(), [this] {
    error_code ec;
    acceptor->close(ec);
    accept_retry->cancel();
  });
  ctx->for_each_connection([](internal::HttpConnection& c) { c.drain(); });
}

void HttpServer::Impl::stop() {
  if (tls_io_server == this) {
    log_error("HttpServer::stop called on one of its own I/O threads; not stopping");
    return;
  }
  {
    std::lock_guard lock(lifecycle_mu);
    if (state != State::kRunning) {
      state = State::kStopped;
      return;
    }
    state = State::kStopped;
  }
  // From here on, ResponseWriter calls are no-ops: nothing new reaches the event loop from
  // outside it.
  {
    std::unique_lock gate_lock(ctx->gate->mu);
    ctx->gate->open = false;
  }
  stop_accepting();
  ctx->for_each_connection([](internal::HttpConnection& c) { c.shutdown(); });
  work.clear();
  if (!ctx->wait_connections_gone(kStopGrace)) {
    log_warn("http server stop: connections still open after the grace period",
             {kv("open", ctx->open_connections.load())});
  }
  for (const auto& loop : loops)
    loop->stop();
  for (std::thread& t : threads)
    t.join();
  threads.clear();
  // Whatever is still pending (a handler's coroutine waiting on an upstream, say) is destroyed
  // now, while what it refers to still exists, rather than whenever the server object goes.
  accept_retry.reset();
  acceptor.reset();
  loops.clear();
  log_debug("http server stopped", {kv("port", port.load())});
}

HttpServer::HttpServer(HttpServerOptions options, Router router)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(router))) {}

HttpServer::~HttpServer() = default;  // Impl's destructor stops.

Status HttpServer::start() {
  return impl_->start();
}

std::uint16_t HttpServer::port() const {
  return impl_->port.load();
}

void HttpServer::stop_accepting() {
  std::lock_guard lock(impl_->lifecycle_mu);
  if (impl_->state != Impl::State::kRunning) return;
  impl_->stop_accepting();
}

bool HttpServer::drain(std::chrono::milliseconds timeout) {
  stop_accepting();
  return impl_->ctx->wait_requests_done(timeout);
}

void HttpServer::stop() {
  impl_->stop();
}

int HttpServer::open_connections() const {
  return impl_->ctx->open_connections.load();
}

std::size_t HttpServer::active_requests() const {
  return impl_->ctx->active_requests();
}

}  // namespace spillway::net
