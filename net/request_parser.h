// Internal to net/ (includes Beast; include only from net/*.cc, tests/net and fuzz targets): how
// a server connection turns request bytes into an HttpRequest and a route, one step per
// function, so that HttpConnection (reading a socket) and replay_requests (reading bytes in
// memory, for tests and the fuzzer) run the same code.
//
// The steps, in the order a connection runs them for each request on a keep-alive connection:
//   reset_request_parser      a fresh parser (or the last one, reset);
//   parse_buffered_request    with ReadGoal::kHead, after each read (parse_request_eof when
//                             the peer closed), until the head is complete;
//   on the head               request_id_for, then check_request_head (414, 505);
//   parse_buffered_request    with ReadGoal::kMessage, after expects_continue told whether to
//                             send 100 Continue, until the body is complete;
//   on a failed read          classify_read_error (431/414, 413, 400, or close silently);
//   on a complete message     RequestParser::release, Router::match, route_error (404, 405,
//                             400).
//
// Bounds: the whole head, wherever the reads split it, by options.max_header_bytes (431, or 414
// when the request line's target is what is too long); a chunk-size line and the trailer section
// by the same length (431); the body by options.max_body_bytes (413), a Content-Length past it
// as soon as the head is read. The syntax is net/http1_parse.h's (strict CRLF, no obs-fold, one
// framing per request).
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
#include <boost/system/error_code.hpp>

#include "net/http1_parse.h"
#include "net/http_request.h"
#include "net/http_server_options.h"
#include "net/router.h"

namespace spillway::net::internal {

// What the parser does not keep about the request being read.
struct RequestReadState {
  std::size_t head_scanned = 0;  // Buffered bytes already searched for the end of the head.
};

enum class ReadGoal {
  kHead,     // Parse up to the end of the head.
  kMessage,  // Parse up to the end of the message. REQUIRES: the head is complete.
};

// One request being read: its head once complete (net/http1_parse.h), filed into an HttpRequest
// with the body as it arrives. Trailer fields of a chunked body are checked and dropped (RFC 9110
// section 6.5.1: they are not merged into the header section). Errors come as Beast's HTTP error
// codes (need_more, header_limit, body_limit, buffer_overflow, bad_value for malformed bytes,
// whose reason error_text() gives), which the connection's read handling speaks.
class RequestParser {
 public:
  RequestParser() = default;

  // What was read so far: method, target, version and headers once is_header_done(), the body
  // once is_done(). path and query are left empty.
  [[nodiscard]] const HttpRequest& request() const { return request_; }
  [[nodiscard]] bool is_head_method() const { return head_method_; }
  // HTTP version as major * 10 + minor (10 or 11), once the head is complete.
  [[nodiscard]] int version() const { return head_.version; }
  // The connection may read another request after this one (version and Connection field).
  [[nodiscard]] bool keep_alive() const { return head_.keep_alive; }
  [[nodiscard]] bool is_header_done() const { return header_done_; }
  [[nodiscard]] bool is_done() const { return done_; }
  // A byte of this request arrived.
  [[nodiscard]] bool got_some() const { return got_some_; }
  // Why the bytes were malformed, after a bad_value error.
  [[nodiscard]] const std::string& error_text() const { return error_text_; }
  // Moves the request out, with path and query split from the target.
  [[nodiscard]] HttpRequest release();

 private:
  friend boost::system::error_code parse_buffered_request(RequestParser&,
                                                          boost::beast::flat_buffer&, ReadGoal,
                                                          RequestReadState&,
                                                          const HttpServerOptions&);
  friend void reset_request_parser(std::optional<RequestParser>&, RequestReadState&,
                                   const HttpServerOptions&);
  // Starts over for the next request, keeping the capacity of the field list.
  void reset();
  // The head in `head`: filed into request_, the body's framing checked against the limit.
  boost::system::error_code take_head(std::string_view head, const HttpServerOptions& options);
  // Body bytes from the front of `bytes`; adds to `used` what it took.
  boost::system::error_code take_body(std::string_view bytes, std::size_t& used,
                                      const HttpServerOptions& options);
  boost::system::error_code malformed(const Error& error);

  http1::RequestHead head_;
  std::optional<http1::ChunkedDecoder> chunks_;
  HttpRequest request_;
  std::uint64_t body_left_ = 0;  // BodyFraming::kLength.
  bool head_method_ = false;
  bool header_done_ = false;
  bool done_ = false;
  bool got_some_ = false;
  std::string error_text_;
};

// An error response the connection sends itself instead of calling a handler.
struct ErrorReply {
  int status = 0;
  std::string message;  // One line, for the error body (see ErrorRenderer).
  std::string allow;    // 405 only: the value of the Allow header.
};

// Readies `parser` for the next request (a fresh one, or the last one reset), and clears
// `state`.
void reset_request_parser(std::optional<RequestParser>& parser, RequestReadState& state,
                          const HttpServerOptions& options);

// Parses the bytes `buffer` holds into `parser`, consuming what it parsed, until `goal` is
// reached. Returns {} when it is; http::error::need_more when the caller must read more bytes
// into `buffer` and call again; http::error::header_limit when the head is longer than
// options.max_header_bytes; http::error::buffer_overflow when a chunk-size line or the trailer
// section reaches that length; http::error::body_limit when the body would be longer than
// options.max_body_bytes; http::error::bad_value for malformed bytes (parser.error_text()).
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
