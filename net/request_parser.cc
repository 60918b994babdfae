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

void RequestParser::reset() {
  head_.fields.clear();
  chunks_.reset();
  request_ = HttpRequest();
  body_left_ = 0;
  head_method_ = false;
  header_done_ = false;
  done_ = false;
  got_some_ = false;
  error_text_.clear();
}

error_code RequestParser::malformed(const Error& error) {
  error_text_ = error.message();
  return http::error::bad_value;
}

error_code RequestParser::take_head(std::string_view head, const HttpServerOptions& options) {
  const Status parsed = http1::parse_request_head(head, head_);
  if (!parsed.ok()) return malformed(parsed.error());
  request_.method.assign(head_.method);
  request_.target.assign(head_.target);
  request_.version_major = head_.version / 10;
  request_.version_minor = head_.version % 10;
  request_.headers.reserve(head_.fields.size());
  for (const http1::Field& f : head_.fields) {
    request_.headers.add(std::string(f.name), std::string(f.value));
  }
  head_method_ = head_.method == "HEAD";
  header_done_ = true;
  switch (head_.framing) {
    case http1::BodyFraming::kLength:
      if (head_.content_length > options.max_body_bytes) return http::error::body_limit;
      body_left_ = head_.content_length;
      request_.body.reserve(static_cast<std::size_t>(body_left_));
      done_ = body_left_ == 0;
      break;
    case http1::BodyFraming::kChunked:
      // A chunk-size line or the trailer section is held whole before it is parsed: bound it
      // as a head is.
      chunks_.emplace(options.max_header_bytes);
      break;
    case http1::BodyFraming::kNone:
    case http1::BodyFraming::kUntilClose:  // Never for a request.
      done_ = true;
      break;
  }
  return {};
}

error_code RequestParser::take_body(std::string_view bytes, std::size_t& used,
                                    const HttpServerOptions& options) {
  if (!chunks_) {
    const auto n = static_cast<std::size_t>(
        std::min<std::uint64_t>(body_left_, static_cast<std::uint64_t>(bytes.size())));
    request_.body.append(bytes.data(), n);
    used += n;
    body_left_ -= n;
    done_ = body_left_ == 0;
    return done_ ? error_code() : http::error::need_more;
  }
  for (;;) {
    const Result<http1::ChunkedDecoder::Step> step = chunks_->step(bytes.substr(used));
    if (!step.ok()) {
      if (step.error().code() == ErrorCode::kPayloadTooLarge) return http::error::buffer_overflow;
      return malformed(step.error());
    }
    if (request_.body.size() + step->data.size() > options.max_body_bytes) {
      return http::error::body_limit;
    }
    request_.body.append(step->data);
    used += step->consumed;
    if (chunks_->done()) {
      done_ = true;
      return {};
    }
    if (step->consumed == 0) return http::error::need_more;
  }
}

HttpRequest RequestParser::release() {
  const TargetParts parts = split_target(request_.target);
  request_.path.assign(parts.path);
  request_.query.assign(parts.query);
  return std::move(request_);
}

void reset_request_parser(std::optional<RequestParser>& parser, RequestReadState& state,
                          const HttpServerOptions&) {
  state = RequestReadState{};
  if (parser) {
    parser->reset();
  } else {
    parser.emplace();
  }
}

error_code parse_buffered_request(RequestParser& parser, boost::beast::flat_buffer& buffer,
                                  ReadGoal goal, RequestReadState& state,
                                  const HttpServerOptions& options) {
  const auto data = buffer.cdata();
  const std::string_view bytes(static_cast<const char*>(data.data()), data.size());
  parser.got_some_ = parser.got_some_ || !bytes.empty();
  if (!parser.header_done_) {
    const std::size_t size = http1::head_size(bytes, state.head_scanned);
    state.head_scanned = bytes.size();
    // The whole head counts, however the reads split it.
    if (size > options.max_header_bytes ||
        (size == 0 && bytes.size() >= options.max_header_bytes)) {
      return http::error::header_limit;
    }
    if (size == 0) return http::error::need_more;
    const error_code ec = parser.take_head(bytes.substr(0, size), options);
    if (ec) return ec;
    buffer.consume(size);
    if (goal == ReadGoal::kHead || parser.done_) return {};
    return parse_buffered_request(parser, buffer, goal, state, options);
  }
  if (parser.done_) return {};
  std::size_t used = 0;
  const error_code ec = parser.take_body(bytes, used, options);
  buffer.consume(used);
  return ec;
}

error_code parse_request_eof(RequestParser& parser) {
  if (!parser.got_some()) return http::error::end_of_stream;
  // A request body never runs until the close: whatever is missing is missing.
  return parser.is_done() ? error_code() : http::error::partial_message;
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
    // A head past the limit is never parsed: its request line is at the front of the buffer,
    // cut off somewhere or whole.
    const bool target_too_long = request_target_exceeds(buffered, options.max_url_bytes);
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
    const std::string& why = parser.error_text();
    return ErrorReply{
        400, fmt::format("malformed request: {}", why.empty() ? ec.message() : why), {}};
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
