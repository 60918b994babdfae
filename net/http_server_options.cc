#include "net/http_server_options.h"

#include <cstdint>

namespace spillway::net {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * 1024;
constexpr std::size_t kGiB = 1024 * 1024 * 1024;
constexpr std::int64_t kMaxTimeoutMs = 24LL * 3600 * 1000;

Status check_range(std::string_view field, std::int64_t value, std::int64_t min, std::int64_t max) {
  if (value < min || value > max) {
    return make_error(ErrorCode::kInvalidArgument,
                      "http server option {} = {}: must be in [{}, {}]", field, value, min, max);
  }
  return Status::ok_status();
}

Status check_bytes(std::string_view field, std::size_t value, std::size_t min, std::size_t max) {
  return check_range(field, static_cast<std::int64_t>(value), static_cast<std::int64_t>(min),
                     static_cast<std::int64_t>(max));
}

Status check_timeout(std::string_view field, std::chrono::milliseconds value) {
  return check_range(field, value.count(), 1, kMaxTimeoutMs);
}

}  // namespace

Status HttpServerOptions::validate() const {
  if (host.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "http server option host: must not be empty");
  }
  SPW_TRY(check_range("port", port, 0, 65535));
  SPW_TRY(check_range("io_threads", io_threads, 1, 256));
  SPW_TRY(check_range("busy_poll_us", busy_poll.count(), 0, kMaxBusyPoll.count()));
  SPW_TRY(check_range("max_connections", max_connections, 1, 1'000'000));
  SPW_TRY(check_range("listen_backlog", listen_backlog, 1, 65535));
  // Beast keeps the header limit in 32 bits; 1 MiB is far above any real client.
  SPW_TRY(check_bytes("max_header_bytes", max_header_bytes, kKiB, kMiB));
  SPW_TRY(check_bytes("max_url_bytes", max_url_bytes, 16, max_header_bytes));
  SPW_TRY(check_bytes("max_body_bytes", max_body_bytes, 0, kGiB));
  SPW_TRY(check_bytes("max_pending_write_bytes", max_pending_write_bytes, 1, kGiB));
  SPW_TRY(check_timeout("header_timeout", header_timeout));
  SPW_TRY(check_timeout("body_timeout", body_timeout));
  SPW_TRY(check_timeout("idle_timeout", idle_timeout));
  SPW_TRY(check_timeout("write_timeout", write_timeout));
  SPW_TRY(check_timeout("linger_timeout", linger_timeout));
  SPW_TRY(check_bytes("linger_max_bytes", linger_max_bytes, 0, kGiB));
  return Status::ok_status();
}

Result<HttpServerOptions> http_server_options_from_config(const ConfigTable& table,
                                                          HttpServerOptions defaults) {
  SPW_TRY(table.check_keys({"host", "port", "io_threads", "busy_poll_us", "max_connections",
                            "listen_backlog", "max_header_bytes", "max_url_bytes", "max_body_bytes",
                            "max_pending_write_bytes", "header_timeout_ms", "body_timeout_ms",
                            "idle_timeout_ms", "write_timeout_ms", "linger_timeout_ms",
                            "linger_max_bytes"}));
  HttpServerOptions o = std::move(defaults);
  SPW_ASSIGN_OR_RETURN(o.host, table.string_or("host", o.host));

  auto integer = [&](std::string_view key, std::int64_t fallback, std::int64_t min,
                     std::int64_t max) { return table.integer_or(key, fallback, min, max); };
  auto bytes = [&](std::string_view key, std::size_t fallback, std::size_t min,
                   std::size_t max) -> Result<std::size_t> {
    SPW_ASSIGN_OR_RETURN(std::int64_t v, table.integer_or(key, static_cast<std::int64_t>(fallback),
                                                          static_cast<std::int64_t>(min),
                                                          static_cast<std::int64_t>(max)));
    return static_cast<std::size_t>(v);
  };
  auto millis = [&](std::string_view key,
                    std::chrono::milliseconds fallback) -> Result<std::chrono::milliseconds> {
    SPW_ASSIGN_OR_RETURN(std::int64_t v, table.integer_or(key, fallback.count(), 1, kMaxTimeoutMs));
    return std::chrono::milliseconds(v);
  };

  SPW_ASSIGN_OR_RETURN(std::int64_t port, integer("port", o.port, 0, 65535));
  SPW_ASSIGN_OR_RETURN(std::int64_t threads, integer("io_threads", o.io_threads, 1, 256));
  SPW_ASSIGN_OR_RETURN(std::int64_t conns,
                       integer("max_connections", o.max_connections, 1, 1'000'000));
  SPW_ASSIGN_OR_RETURN(std::int64_t backlog, integer("listen_backlog", o.listen_backlog, 1, 65535));
  o.port = static_cast<int>(port);
  o.io_threads = static_cast<int>(threads);
  SPW_ASSIGN_OR_RETURN(std::int64_t busy_poll_us, integer("busy_poll_us", o.busy_poll.count(), 0,
                                                          HttpServerOptions::kMaxBusyPoll.count()));
  o.busy_poll = std::chrono::microseconds(busy_poll_us);
  o.max_connections = static_cast<int>(conns);
  o.listen_backlog = static_cast<int>(backlog);
  SPW_ASSIGN_OR_RETURN(o.max_header_bytes,
                       bytes("max_header_bytes", o.max_header_bytes, kKiB, kMiB));
  SPW_ASSIGN_OR_RETURN(o.max_url_bytes, bytes("max_url_bytes", o.max_url_bytes, 16, kMiB));
  SPW_ASSIGN_OR_RETURN(o.max_body_bytes, bytes("max_body_bytes", o.max_body_bytes, 0, kGiB));
  SPW_ASSIGN_OR_RETURN(o.max_pending_write_bytes,
                       bytes("max_pending_write_bytes", o.max_pending_write_bytes, 1, kGiB));
  SPW_ASSIGN_OR_RETURN(o.header_timeout, millis("header_timeout_ms", o.header_timeout));
  SPW_ASSIGN_OR_RETURN(o.body_timeout, millis("body_timeout_ms", o.body_timeout));
  SPW_ASSIGN_OR_RETURN(o.idle_timeout, millis("idle_timeout_ms", o.idle_timeout));
  SPW_ASSIGN_OR_RETURN(o.write_timeout, millis("write_timeout_ms", o.write_timeout));
  SPW_ASSIGN_OR_RETURN(o.linger_timeout, millis("linger_timeout_ms", o.linger_timeout));
  SPW_ASSIGN_OR_RETURN(o.linger_max_bytes, bytes("linger_max_bytes", o.linger_max_bytes, 0, kGiB));
  if (o.max_url_bytes > o.max_header_bytes) {
    return table.error_at("max_url_bytes", "must not exceed max_header_bytes");
  }
  SPW_TRY(o.validate());
  return o;
}

}  // namespace spillway::net
