#include "net/request_parser.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/error.hpp>

#include "core/log.h"

#include "net/url.h"
#include "net/wire_format.h"

namespace spillway::net::internal {

namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxRequestIdBytes = 128;

bool is_http_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

// What one socket read gives at most (as Beast's own read functions).
constexpr std::size_t kMaxReadBytes = 65536;

// A client's bytes in memory, handed out in reads of at most `read_size` bytes, then EOF.
class MemoryReader {
 public:
  MemoryReader(std::string_view bytes, std::size_t read_size)
      : rest_(bytes), read_size_(std::max<std::size_t>(read_size, 1)) {}

  // Appends the next read to `buffer`; false at EOF.
  bool read_into(boost::beast::flat_buffer& buffer) {
    if (rest_.empty()) return false;
    const std::size_t n =
        std::min({rest_.size(), read_size_, boost::beast::read_size(buffer, kMaxReadBytes)});
    boost::asio::buffer_copy(buffer.prepare(n), boost::asio::buffer(rest_.data(), n));
    buffer.commit(n);
    rest_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view rest_;
  std::size_t read_size_;
};

}  // namespace

void RequestParser::on_request_impl(http::verb method, string_view method_text, string_view target,
                                    int version, error_code&) {
  method_ = method;
  version_ = version;
  request_.method.assign(method_text.data(), method_text.size());
  request_.target.assign(target.data(), target.size());
  request_.version_major = version / 10;
  request_.version_minor = version % 10;
  request_.headers.reserve(8);
}

void RequestParser::on_field_impl(http::field, string_view name, string_view value, error_code&) {
  if (is_header_done()) return;  // A trailer field.
  request_.headers.add(std::string(name.data(), name.size()),
                       std::string(value.data(), value.size()));
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                      error_code&) {
  // The parser refused a Content-Length past the body limit before this.
  if (content_length) request_.body.reserve(static_cast<std::size_t>(*content_length));
}

std::size_t RequestParser::on_body_impl(string_view body, error_code&) {
  return append_body(body);
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, string_view body, error_code&) {
  return append_body(body);
}

std::size_t RequestParser::append_body(string_view body) {
  request_.body.append(body.data(), body.size());
  return body.size();
}

HttpRequest RequestParser::release() {
  const TargetParts parts = split_target(request_.target);
  request_.path.assign(parts.path);
  request_.query.assign(parts.query);
  return std::move(request_);
}

void reset_request_parser(std::optional<RequestParser>& parser, RequestReadState& state,
                          const HttpServerOptions& options) {
  state = RequestReadState{};
  parser.emplace();
  // validate() keeps max_header_bytes within 32 bits, as Beast needs.
  parser->header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
  parser->body_limit(options.max_body_bytes);
}

error_code parse_buffered_request(RequestParser& parser, boost::beast::flat_buffer& buffer,
                                  ReadGoal goal, RequestReadState& state,
                                  const HttpServerOptions& options) {
  parser.eager(goal == ReadGoal::kMessage);
  while (goal == ReadGoal::kHead ? !parser.is_header_done() : !parser.is_done()) {
    error_code ec;
    std::size_t used = 0;
    // After the head, Beast takes a chunk-size line or the trailer section only once all of it
    // is offered. Offering at most max_header_bytes at a time bounds them the same whether the
    // bytes came in one read or in many (where the buffered remainder hits the limit below).
    bool capped = false;
    if (buffer.size() > 0) {
      const bool in_head = !parser.is_header_done();
      boost::asio::const_buffer data = buffer.data();
      capped = !in_head && data.size() > options.max_header_bytes;
      if (capped) data = boost::asio::const_buffer(data.data(), options.max_header_bytes);
      used = parser.put(data, ec);
      buffer.consume(used);
      // Without eager parsing, put() stops where the head ends.
      if (in_head) {
        state.head_bytes += used;
        // Beast's limit applies to what follows the request line, so in one read a head can
        // end (or fail a check made at its end, such as the body limit) past the limit.
        if (state.head_bytes > options.max_header_bytes) return http::error::header_limit;
      }
    }
    if (!ec && used == 0) ec = http::error::need_more;
    if (ec != http::error::need_more || (capped && used > 0)) {
      if (ec && ec != http::error::need_more) return ec;
      continue;
    }
    // Everything still buffered belongs to the unfinished head, or to a chunk-size line or the
    // trailer section (string_body takes body bytes as they come).
    if (!parser.is_header_done()) {
      if (state.head_bytes + buffer.size() >= options.max_header_bytes) {
        return http::error::header_limit;
      }
    } else if (buffer.size() >= options.max_header_bytes) {
      return http::error::buffer_overflow;
    }
    return ec;
  }
  return {};
}

error_code parse_request_eof(RequestParser& parser) {
  if (!parser.got_some()) return http::error::end_of_stream;
  error_code ec;
  parser.put_eof(ec);
  return ec;
}

std::string request_id_for(std::string_view client_id) {
  const bool valid =
      !client_id.empty() && client_id.size() <= kMaxRequestIdBytes &&
      std::all_of(client_id.begin(), client_id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  return valid ? std::string(client_id) : new_request_id();
}

std::optional<ErrorReply> check_request_head(const RequestParser& head,
                                             const HttpServerOptions& options) {
  const std::size_t target_bytes = head.request().target.size();
  if (target_bytes > options.max_url_bytes) {
    return ErrorReply{414,
                      fmt::format("request target of {} bytes exceeds the limit of {}",
                                  target_bytes, options.max_url_bytes),
                      {}};
  }
  if (head.version() != 10 && head.version() != 11) {
    return ErrorReply{505, "only HTTP/1.0 and HTTP/1.1 are supported", {}};
  }
  return std::nullopt;
}

bool expects_continue(const RequestParser& head) {
  return head.version() == 11 &&
         header_list_contains(head.request().headers.get("Expect").value_or(""), "100-continue");
}

std::optional<ErrorReply> classify_read_error(error_code ec, const RequestParser& parser,
                                              std::string_view buffered,
                                              const HttpServerOptions& options) {
  if (ec == http::error::buffer_overflow) {
    return ErrorReply{431,
                      fmt::format("a chunk-size line or the trailer section exceeds the limit of "
                                  "{} bytes",
                                  options.max_header_bytes),
                      {}};
  }
  if (ec == http::error::header_limit) {
    // Beast consumes the request line once it is complete; then the parsed target tells.
    // Otherwise the line is still at the front of the buffer, cut off somewhere.
    const std::string_view parsed_target = parser.request().target;
    const bool target_too_long = parsed_target.empty()
                                     ? request_target_exceeds(buffered, options.max_url_bytes)
                                     : parsed_target.size() > options.max_url_bytes;
    if (target_too_long) {
      return ErrorReply{
          414,
          fmt::format("request target exceeds the limit of {} bytes", options.max_url_bytes),
          {}};
    }
    return ErrorReply{
        431,
        fmt::format("request header fields exceed the limit of {} bytes", options.max_header_bytes),
        {}};
  }
  if (ec == http::error::body_limit) {
    return ErrorReply{
        413, fmt::format("request body exceeds the limit of {} bytes", options.max_body_bytes), {}};
  }
  if (is_http_parse_error(ec) && ec != http::error::end_of_stream &&
      ec != http::error::partial_message) {
    return ErrorReply{400, fmt::format("malformed request: {}", ec.message()), {}};
  }
  return std::nullopt;  // The peer closed or reset the connection, possibly midway.
}

std::optional<ErrorReply> route_error(const Router::Match& match, const HttpRequest& request) {
  switch (match.kind) {
    case Router::Match::Kind::kNotFound:
      return ErrorReply{404, fmt::format("no route for {} {}", request.method, request.path), {}};
    case Router::Match::Kind::kMethodNotAllowed:
      return ErrorReply{405,
                        fmt::format("method {} not allowed for {}", request.method, request.path),
                        match.allow};
    case Router::Match::Kind::kBadRequest:
      return ErrorReply{400, match.message, {}};
    case Router::Match::Kind::kFound:
      break;
  }
  return std::nullopt;
}

std::vector<ReplayedRequest> replay_requests(std::string_view bytes,
                                             const HttpServerOptions& options, const Router& router,
                                             std::size_t read_size, std::size_t max_requests) {
  std::vector<ReplayedRequest> out;
  MemoryReader reader(bytes, read_size);
  boost::beast::flat_buffer buffer;  // Kept across requests: it holds pipelined bytes.
  std::optional<RequestParser> parser;
  RequestReadState state;
  while (out.size() < max_requests) {
    ReplayedRequest& entry = out.emplace_back();
    reset_request_parser(parser, state, options);
    const auto read_until = [&](ReadGoal goal) {
      while (true) {
        const error_code ec = parse_buffered_request(*parser, buffer, goal, state, options);
        if (ec != http::error::need_more) return ec;
        entry.peak_buffered = std::max(entry.peak_buffered, buffer.size());
        if (!reader.read_into(buffer)) return parse_request_eof(*parser);
      }
    };
    error_code ec = read_until(ReadGoal::kHead);
    if (!ec) {
      // As the connection does, decide these on the head alone.
      entry.keep_alive = parser->keep_alive();
      entry.request.request_id =
          request_id_for(parser->request().headers.get("X-Request-Id").value_or(""));
      if (auto reply = check_request_head(*parser, options)) {
        entry.kind = ReplayedRequest::Kind::kRejected;
        entry.error = std::move(*reply);
        entry.keep_alive = false;
        break;
      }
      if (!parser->is_done()) {
        entry.sent_continue = expects_continue(*parser);
        ec = read_until(ReadGoal::kMessage);
      }
    }
    if (ec) {
      const auto data = buffer.cdata();
      const std::string_view buffered(static_cast<const char*>(data.data()), data.size());
      if (auto reply = classify_read_error(ec, *parser, buffered, options)) {
        entry.kind = ReplayedRequest::Kind::kRejected;
        entry.error = std::move(*reply);
      } else {
        entry.kind = ReplayedRequest::Kind::kClosed;
      }
      entry.keep_alive = false;
      break;
    }
    std::string request_id = std::move(entry.request.request_id);
    entry.request = parser->release();
    entry.request.request_id = std::move(request_id);
    Router::Match match = router.match(entry.request.method, entry.request.path);
    if (auto reply = route_error(match, entry.request)) {
      entry.kind = ReplayedRequest::Kind::kRouteError;
      entry.error = std::move(*reply);
    } else {
      entry.kind = ReplayedRequest::Kind::kRouted;
      entry.request.path_params = std::move(match.params);
    }
    if (!entry.keep_alive) break;
  }
  return out;
}

}  // namespace spillway::net::internal
