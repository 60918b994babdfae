// Settings of an HttpServer. Every limit is explicit; `validate()` checks each against its
// allowed range and names the field in the error.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"

#include "net/error_renderer.h"

namespace spillway::net {

struct HttpServerOptions {
  // An IP address literal, or "localhost" (127.0.0.1). "0.0.0.0" / "::" listen everywhere.
  std::string host = "127.0.0.1";
  int port = 0;        // 0: the OS picks an ephemeral port; HttpServer::port() tells which.
  int io_threads = 2;  // Event-loop threads; connections cost no thread of their own.
  // The most an event loop that runs out of ready work polls (without blocking) before it
  // sleeps in the kernel; 0, the default, sleeps at once. On a VM a sleeping thread's wake-up
  // costs tens of microseconds, paid twice per proxied request (client, then upstream): polling
  // saves it when the next event comes within the window. Each loop adapts its window to the
  // gaps it sees (PollWindow, net/poll_window.h) and shuts where events come further apart
  // than busy_poll; still, polling takes CPU from whatever shares the cores, so not beside
  // replicas on the same cores. At most kMaxBusyPoll.
  std::chrono::microseconds busy_poll{0};
  static constexpr std::chrono::microseconds kMaxBusyPoll{1'000};
  // Connections open at once. One more is accepted and closed at once without a response (no
  // bytes are read or written), so the kernel backlog does not fill up.
  int max_connections = 4096;
  int listen_backlog = 1024;

  std::size_t max_header_bytes = 16 * 1024;  // Request line + fields; beyond it: 431.
  std::size_t max_url_bytes = 8 * 1024;      // Request-target; beyond it: 414.
  // Request body. Checked against Content-Length before the body is read and while a chunked
  // body arrives; beyond it: 413.
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  // Unwritten body bytes of one streaming response; beyond it the connection is closed (see
  // ResponseWriter).
  std::size_t max_pending_write_bytes = 1024 * 1024;

  // From the connection's first byte expected (accept, or the first byte after an idle
  // keep-alive wait) to the end of the headers; beyond it: 408 if part of a request arrived,
  // then close.
  std::chrono::milliseconds header_timeout{10'000};
  // From the end of the headers to the end of the body; beyond it: 408, then close.
  std::chrono::milliseconds body_timeout{30'000};
  // A keep-alive connection with no request in progress is closed after this long.
  std::chrono::milliseconds idle_timeout{60'000};
  // One socket write (a slow reader not draining the response); beyond it: close, on_close.
  std::chrono::milliseconds write_timeout{30'000};
  // After an error response that ends the connection (413, 431, ...), unread request bytes are
  // read and discarded for up to this long / this many bytes, so the client can read the
  // response before the close (closing with unread data would reset the connection).
  std::chrono::milliseconds linger_timeout{1'000};
  std::size_t linger_max_bytes = 1024 * 1024;

  // Bodies of the server's own error responses; empty: render_default_error.
  ErrorRenderer error_renderer;
  // Optional; not owned, must outlive the server. Records spillway_http_* metrics (see
  // net/server_metrics.h) with `metrics_labels` added to each series.
  MetricsRegistry* metrics = nullptr;
  MetricLabels metrics_labels;

  [[nodiscard]] Status validate() const;
};

// Reads the keys of an [http] style table: host, port, io_threads, busy_poll_us, max_connections,
// listen_backlog, max_header_bytes, max_url_bytes, max_body_bytes, max_pending_write_bytes,
// header_timeout_ms, body_timeout_ms, idle_timeout_ms, write_timeout_ms, linger_timeout_ms,
// linger_max_bytes. Absent keys keep the value in `defaults`; unknown keys are errors.
[[nodiscard]] Result<HttpServerOptions> http_server_options_from_config(
    const ConfigTable& table, HttpServerOptions defaults = {});

}  // namespace spillway::net
