#include "net/http_client.h"

#include <algorithm>
#include <array>
#include <exception>
#include <optional>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "net/client_request.h"
#include "net/url.h"

namespace spillway::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

constexpr std::size_t kStreamPieceBytes = 16 * 1024;

bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE";
}

Status check_timeout(std::string_view field, std::chrono::milliseconds value) {
  return internal::check_client_timeout("http client", field, value);
}

// Why one call attempt failed, and whether retrying it on a fresh connection is safe.
struct Failure {
  Error error;
  bool before_response = false;  // Nothing of the response arrived.
};

}  // namespace

Status HttpClientOptions::validate() const {
  if (host.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "http client option host: must not be empty");
  }
  if (port < 1 || port > 65535) {
    return make_error(ErrorCode::kInvalidArgument,
                      "http client option port = {}: must be in [1, 65535]", port);
  }
  SPW_TRY(check_timeout("connect_timeout", connect_timeout));
  SPW_TRY(check_timeout("io_timeout", io_timeout));
  SPW_TRY(check_timeout("request_timeout", request_timeout));
  if (abort_poll_interval.count() < 1 || abort_poll_interval.count() > 60'000) {
    return make_error(ErrorCode::kInvalidArgument,
                      "http client option abort_poll_interval = {} ms: must be in [1, 60000]",
                      abort_poll_interval.count());
  }
  if (max_header_bytes < 1024 || max_header_bytes > (1u << 20)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "http client option max_header_bytes = {}: must be in [1024, 1048576]",
                      max_header_bytes);
  }
  return Status::ok_status();
}

struct HttpClient::Impl {
  explicit Impl(HttpClientOptions o) : options(std::move(o)) {}

  // Runs one asynchronous operation to completion on the private event loop. Every operation
  // started here has a stream expiry, so run() returns. With an abort check, the loop runs in
  // slices of abort_poll_interval and cancels the operation (operation_aborted) when the check
  // asks for it.
  template <typename Start>
  error_code run(Start&& start) {
    error_code result = asio::error::would_block;
    start([&result](error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    if (!should_abort) {
      ioc.run();
      return result;
    }
    while (result == asio::error::would_block && !ioc.stopped()) {
      ioc.run_for(options.abort_poll_interval);
      if (result != asio::error::would_block || ioc.stopped()) break;
      if (!aborted && should_abort()) {
        aborted = true;
        if (stream) stream->cancel();
      }
    }
    return result;
  }

  void expire_within(std::chrono::milliseconds step) {
    stream->expires_at(std::min(deadline, std::chrono::steady_clock::now() + step));
  }

  void drop_connection() {
    if (stream) {
      error_code ec;
      stream->socket().shutdown(tcp::socket::shutdown_both, ec);
      stream->close();
      stream.reset();
    }
    buffer.clear();
    reusable = false;
  }

  Error timeout_error(std::string_view step) const {
    if (std::chrono::steady_clock::now() >= deadline) {
      return make_error(ErrorCode::kDeadlineExceeded, "{} {}: request_timeout of {} ms exceeded",
                        step, where(), options.request_timeout.count());
    }
    return make_error(
        ErrorCode::kDeadlineExceeded, "{} {}: no progress for {} ms", step, where(),
        step == "connect" ? options.connect_timeout.count() : options.io_timeout.count());
  }

  std::string where() const { return fmt::format("{}:{}", options.host, options.port); }

  Result<tcp::endpoint> endpoint() const {
    if (options.host == "localhost") {
      return tcp::endpoint(asio::ip::address_v4::loopback(),
                           static_cast<std::uint16_t>(options.port));
    }
    error_code ec;
    const auto address = asio::ip::make_address(options.host, ec);
    if (ec) {
      return make_error(ErrorCode::kInvalidArgument,
                        "http client option host '{}': not an IP address or 'localhost'",
                        options.host);
    }
    return tcp::endpoint(address, static_cast<std::uint16_t>(options.port));
  }

  Status connect() {
    SPW_ASSIGN_OR_RETURN(const tcp::endpoint ep, endpoint());
    drop_connection();
    stream.emplace(ioc);
    expire_within(options.connect_timeout);
    const error_code ec = run([&](auto handler) { stream->async_connect(ep, handler); });
    if (!ec) {
      error_code ignored;  // Requests are written whole; do not hold back small ones.
      stream->socket().set_option(tcp::no_delay(true), ignored);
      return Status::ok_status();
    }
    drop_connection();
    if (aborted) return aborted_error();
    if (ec == beast::error::timeout) return timeout_error("connect");
    return make_error(ErrorCode::kUnavailable, "connect {}: {}", where(), ec.message());
  }

  // Writes the request on the open connection.
  std::optional<Failure> send(const HttpClientRequest& request) {
    http::request<http::string_body> msg = internal::to_client_message(request, where());
    if (!options.keep_alive) msg.keep_alive(false);
    expire_within(options.io_timeout);
    const error_code ec = run([&](auto handler) { http::async_write(*stream, msg, handler); });
    if (!ec) return std::nullopt;
    if (aborted) return Failure{aborted_error(), false};
    if (ec == beast::error::timeout) return Failure{timeout_error("send to"), false};
    return Failure{make_error(ErrorCode::kUnavailable, "send to {}: {}", where(), ec.message()),
                   true};
  }

  // One read step of `parser`, bounded by io_timeout and the deadline.
  template <typename Parser>
  std::optional<Failure> read_some(Parser& parser) {
    expire_within(options.io_timeout);
    error_code ec =
        run([&](auto handler) { http::async_read_some(*stream, buffer, parser, handler); });
    if (ec == http::error::need_buffer) ec = {};
    if (!ec) return std::nullopt;
    if (aborted) return Failure{aborted_error(), false};
    const bool nothing_yet = !parser.got_some() && buffer.size() == 0;
    if (ec == beast::error::timeout) return Failure{timeout_error("read from"), false};
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      return Failure{
          make_error(ErrorCode::kPayloadTooLarge,
                     "response from {}: {} (limits: {} "
                     "header bytes, {} body bytes)",
                     where(), ec.message(), options.max_header_bytes, options.max_body_bytes),
          false};
    }
    if (nothing_yet) {
      return Failure{make_error(ErrorCode::kUnavailable, "read from {}: {} before any response",
                                where(), ec.message()),
                     true};
    }
    return Failure{make_error(ErrorCode::kDataLoss, "response from {}: {}", where(), ec.message()),
                   false};
  }

  template <typename Parser>
  void prepare_parser(Parser& parser, const HttpClientRequest& request) {
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    if (request.method == "HEAD") parser.skip(true);
  }

  template <typename Fields>
  static HttpHeaders to_headers(const Fields& fields) {
    HttpHeaders headers;
    for (const auto& field : fields) {
      headers.add(std::string(field.name_string()), std::string(field.value()));
    }
    return headers;
  }

  // One attempt of request(): send, then read the whole response.
  Result<HttpClientResponse> attempt_buffered(const HttpClientRequest& request, Failure* failure) {
    std::optional<Failure> write_failure = send(request);
    if (write_failure && !write_failure->before_response) {
      return fail(failure, std::move(*write_failure));
    }
    http::response_parser<http::string_body> parser;
    prepare_parser(parser, request);
    parser.body_limit(options.max_body_bytes);
    while (!parser.is_done()) {
      if (auto f = read_some(parser)) {
        return fail(failure, std::move(write_failure ? *write_failure : *f));
      }
    }
    auto& msg = parser.get();
    reusable = !write_failure && options.keep_alive && msg.keep_alive();
    HttpClientResponse response;
    response.status = static_cast<int>(msg.result_int());
    response.headers = to_headers(msg);
    response.body = std::move(msg.body());
    return response;
  }

  // One attempt of stream().
  Result<HttpClientResponse> attempt_stream(const HttpClientRequest& request,
                                            const HeadCallback& on_head,
                                            const BodyCallback& on_body, Failure* failure) {
    std::optional<Failure> write_failure = send(request);
    if (write_failure && !write_failure->before_response) {
      return fail(failure, std::move(*write_failure));
    }
    http::response_parser<http::buffer_body> parser;
    prepare_parser(parser, request);
    parser.body_limit(boost::none);  // The caller consumes the body as it arrives.
    std::array<char, kStreamPieceBytes> piece{};
    while (!parser.is_header_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      if (auto f = read_some(parser)) {
        return fail(failure, std::move(write_failure ? *write_failure : *f));
      }
    }
    HttpClientResponse response;
    response.status = static_cast<int>(parser.get().result_int());
    response.headers = to_headers(parser.get());
    if (on_head && !on_head(response.status, response.headers)) return cancelled();
    while (!parser.is_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      auto f = read_some(parser);
      // Bytes parsed in this step reach the caller even when the step then failed (the
      // connection broke right after them): a truncated response keeps all it delivered.
      const std::size_t got = piece.size() - parser.get().body().size;
      if (got > 0 && on_body && !on_body(std::string_view(piece.data(), got))) {
        return cancelled();
      }
      if (f) return fail(failure, std::move(*f));
    }
    reusable = !write_failure && options.keep_alive && parser.get().keep_alive();
    return response;
  }

  Error cancelled() {
    drop_connection();
    return make_error(ErrorCode::kCancelled, "response from {}: aborted by the caller", where());
  }

  Error aborted_error() const {
    return make_error(ErrorCode::kCancelled, "call to {}: aborted by the caller", where());
  }

  Error fail(Failure* out, Failure f) {
    drop_connection();
    Error error = f.error;
    *out = std::move(f);
    return error;
  }

  // Runs attempt() with the retry rule for reused connections.
  template <typename Attempt>
  Result<HttpClientResponse> call(const HttpClientRequest& request, Attempt&& attempt) {
    SPW_TRY(options.validate());
    SPW_TRY(internal::check_client_request("http client", request));
    deadline = std::chrono::steady_clock::now() + options.request_timeout;
    aborted = false;
    try {
      for (int attempt_index = 0;; ++attempt_index) {
        const bool reused = stream.has_value() && reusable;
        if (!reused) SPW_TRY(connect());
        reusable = false;
        Failure failure{Error(ErrorCode::kOk, ""), false};
        Result<HttpClientResponse> result = attempt(failure);
        if (result.ok()) {
          if (!reusable) drop_connection();
          return result;
        }
        const bool retry = !aborted && reused && attempt_index == 0 && failure.before_response &&
                           is_idempotent(request.method) &&
                           std::chrono::steady_clock::now() < deadline;
        if (!retry) return result;
      }
    } catch (const std::exception& e) {
      drop_connection();
      return make_error(ErrorCode::kInternal, "http client {}: {}", where(), e.what());
    }
  }

  const HttpClientOptions options;
  AbortCheck should_abort;  // Set for the duration of one stream() call.
  bool aborted = false;     // should_abort said so during the current call.
  asio::io_context ioc{1};
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  bool reusable = false;
  SteadyTime deadline{};
};

HttpClient::HttpClient(HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

Result<HttpClientResponse> HttpClient::request(const HttpClientRequest& request) {
  return impl_->call(request,
                     [&](Failure& failure) { return impl_->attempt_buffered(request, &failure); });
}

Result<HttpClientResponse> HttpClient::stream(const HttpClientRequest& request,
                                              const HeadCallback& on_head,
                                              const BodyCallback& on_body,
                                              const AbortCheck& should_abort) {
  impl_->should_abort = should_abort;
  auto result = impl_->call(request, [&](Failure& failure) {
    return impl_->attempt_stream(request, on_head, on_body, &failure);
  });
  impl_->should_abort = nullptr;
  return result;
}

void HttpClient::close() {
  impl_->drop_connection();
}

}  // namespace spillway::net
