// Internal to net/ (includes Beast; include only from net/*.cc, tests/net and fuzz targets): how
// a server connection turns request bytes into an HttpRequest and a route, one step per
// function, so that HttpConnection (reading a socket) and replay_requests (reading bytes in
// memory, for tests and the fuzzer) run the same code.
//
// The steps, in the order a connection runs them for each request on a keep-alive connection:
//   reset_request_parser      a fresh parser with the server's header and body limits;
//   parse_buffered_request    with ReadGoal::kHead, after each read (parse_request_eof when
//                             the peer closed), until the head is complete;
//   on the head               request_id_for, then check_request_head (414, 505);
//   parse_buffered_request    with ReadGoal::kMessage, after expects_continue told whether to
//                             send 100 Continue, until the body is complete;
//   on a failed read          classify_read_error (431/414, 413, 400, or close silently);
//   on a complete message     RequestParser::release, Router::match, route_error (404, 405,
//                             400).
//
// Beast (1.81) alone does not bound a request: its header limit applies afresh to the bytes
// left after the request line and after each complete field, which it consumes, so a head
// arriving in small reads could grow without end; and a chunk-size line or a trailer section
// waits in the buffer unbounded. parse_buffered_request bounds the whole head, and what it
// buffers of a chunked body, by options.max_header_bytes.
//
// Thread-safety: each call touches only its arguments (request_id_for also the process-wide,
// thread-safe new_request_id counter).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/system/error_code.hpp>

#include "net/http_request.h"
#include "net/http_server_options.h"
#include "net/router.h"

namespace spillway::net::internal {

// Beast's request parser (it checks the syntax and applies the header and body limits) filing
// what it reads straight into an HttpRequest: the request line, the head's fields in order and
// the body, with no field list or message in between. Trailer fields of a chunked body are
// dropped (RFC 9110 section 6.5.1: they are not merged into the header section).
class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  RequestParser() = default;

  // What was read so far: method, target and version once the request line is complete,
  // headers once is_header_done(), the body once is_done(). path and query are left empty.
  [[nodiscard]] const HttpRequest& request() const { return request_; }
  [[nodiscard]] boost::beast::http::verb method() const { return method_; }
  // HTTP version as major * 10 + minor (11 for HTTP/1.1), once the request line is complete.
  [[nodiscard]] int version() const { return version_; }
  // Moves the request out, with path and query split from the target.
  [[nodiscard]] HttpRequest release();

 private:
  using error_code = boost::system::error_code;
  using string_view = boost::core::string_view;

  void on_request_impl(boost::beast::http::verb method, string_view method_text, string_view target,
                       int version, error_code& ec) override;
  void on_response_impl(int, string_view, int, error_code&) override {}  // Never called.
  void on_field_impl(boost::beast::http::field, string_view name, string_view value,
                     error_code& ec) override;
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         error_code& ec) override;
  std::size_t on_body_impl(string_view body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override;
  void on_finish_impl(error_code&) override {}
  // Body bytes, plain or from a chunk: all of them are taken (the parser enforces the limit).
  std::size_t append_body(string_view body);

  HttpRequest request_;
  boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
  int version_ = 0;
};

// An error response the connection sends itself instead of calling a handler.
struct ErrorReply {
  int status = 0;
  std::string message;  // One line, for the error body (see ErrorRenderer).
  std::string allow;    // 405 only: the value of the Allow header.
};

// What the parser does not keep about the request being read.
struct RequestReadState {
  std::size_t head_bytes = 0;  // Bytes of the head parsed (consumed) so far.
};

// Replaces `parser` with a fresh one for the next request, limited to
// options.max_header_bytes of head and options.max_body_bytes of body, and clears `state`.
void reset_request_parser(std::optional<RequestParser>& parser, RequestReadState& state,
                          const HttpServerOptions& options);

enum class ReadGoal {
  kHead,     // Parse up to the end of the head.
  kMessage,  // Parse up to the end of the message. REQUIRES: the head is complete.
};

// Parses the bytes `buffer` holds into `parser`, consuming what it parsed, until `goal` is
// reached. Returns {} when it is; http::error::need_more when the caller must read more bytes
// into `buffer` and call again; http::error::header_limit when the head is longer than
// options.max_header_bytes; http::error::buffer_overflow when an unfinished chunk-size line or
// trailer section reaches that length; otherwise the parse error (body_limit, bad_method, ...).
[[nodiscard]] boost::system::error_code parse_buffered_request(RequestParser& parser,
                                                               boost::beast::flat_buffer& buffer,
                                                               ReadGoal goal,
                                                               RequestReadState& state,
                                                               const HttpServerOptions& options);

// The peer closed its side while parse_buffered_request needed more: end_of_stream when no
// byte of the request arrived, partial_message when it is incomplete, {} when the message is
// complete without more bytes.
[[nodiscard]] boost::system::error_code parse_request_eof(RequestParser& parser);

// The request id to use: the client's X-Request-Id when valid (1 to 128 bytes of printable
// ASCII without spaces), otherwise new_request_id().
[[nodiscard]] std::string request_id_for(std::string_view client_id);

// Checks a completely parsed request head: 414 when its target is longer than
// options.max_url_bytes, 505 for a version other than HTTP/1.0 and HTTP/1.1. Either ends the
// connection after the error response.
[[nodiscard]] std::optional<ErrorReply> check_request_head(const RequestParser& head,
                                                           const HttpServerOptions& options);

// True when the client waits for "100 Continue" before it sends the body (HTTP/1.1 with
// "Expect: 100-continue" as its first Expect field).
[[nodiscard]] bool expects_continue(const RequestParser& head);

// What a failed head or body read means: the error response that ends the connection (414 or
// 431 past the header limit, 431 for a chunk-size line or trailer section that long, 413 past
// the body limit, 400 for malformed HTTP), or nullopt when the peer closed or reset the
// connection (close without a response). `buffered` holds the bytes still in the connection's
// read buffer (the unparsed front of the request).
[[nodiscard]] std::optional<ErrorReply> classify_read_error(boost::system::error_code ec,
                                                            const RequestParser& parser,
                                                            std::string_view buffered,
                                                            const HttpServerOptions& options);

// The error response for a request no route accepts: 404, 405 with the Allow list, or 400 for
// a path parameter that does not decode; nullopt when `match` found a route.
[[nodiscard]] std::optional<ErrorReply> route_error(const Router::Match& match,
                                                    const HttpRequest& request);

// One request read off a replayed connection, and what the connection does with it.
struct ReplayedRequest {
  enum class Kind {
    kRouted,      // A route matched: the connection calls its handler with `request`.
    kRouteError,  // No route accepts it: `error` (404, 405, 400); the connection stays open.
    kRejected,    // Refused before routing: `error` (400, 413, 414, 431, 505), then close.
    kClosed,      // The bytes ended, cleanly or midway through a request: close silently.
  };
  Kind kind = Kind::kClosed;
  HttpRequest request;         // kRouted, kRouteError; path_params only for kRouted.
  ErrorReply error;            // kRouteError, kRejected.
  bool sent_continue = false;  // A "100 Continue" went out before the body was read.
  bool keep_alive = false;     // kRouted, kRouteError: the connection reads the next request.
  // The most unparsed bytes the connection held while it waited for more of this request.
  std::size_t peak_buffered = 0;
};

// Reads `bytes` as a client's side of one connection, as HttpConnection would with `options`
// and `router`, with every handler answering at once: requests are parsed one after another
// (pipelined bytes stay buffered for the next) until the connection would close or
// `max_requests` are read. The bytes arrive in reads of at most `read_size` bytes (0 counts as
// 1), then the peer closes. No handler is called; request_id is set as the connection sets it,
// remote_address is left empty. Unless max_requests stopped it, the last entry is the reason
// the connection closed: kRejected, kClosed, or a request without keep_alive.
[[nodiscard]] std::vector<ReplayedRequest> replay_requests(std::string_view bytes,
                                                           const HttpServerOptions& options,
                                                           const Router& router,
                                                           std::size_t read_size,
                                                           std::size_t max_requests);

}  // namespace spillway::net::internal
