// libFuzzer target for the HTTP server's request reading: the input is what a client sends on
// one connection, replayed through net/request_parser.h, the same parser limits, head checks,
// read-error handling, conversion into HttpRequest and router match that HttpConnection runs,
// without sockets. Every request that reaches a handler must respect the server's limits and
// carry only fields the server could forward; every error the server answers with must have a
// status it documents and a body that is valid JSON; the connection must never hold a head's
// worth of unparsed bytes; and how the bytes are split into reads must not change what the
// server makes of them (only whether a peer that leaves mid-request gets an error response).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "net/error_renderer.h"
#include "net/http_headers.h"
#include "net/http_request.h"
#include "net/http_server_options.h"
#include "net/request_parser.h"
#include "net/router.h"

namespace {

using namespace spillway::net;
using internal::ErrorReply;
using internal::ReplayedRequest;

constexpr std::size_t kMaxRequests = 256;
constexpr std::size_t kServerReadSize = 65536;  // What one socket read gives at most.

void require(bool condition) {
  if (!condition) __builtin_trap();
}

const Router& fuzz_router() {
  static const Router router = [] {
    Router r;
    const HttpHandler noop = [](HttpRequest, ResponseWriter) {};
    require(r.add("GET", "/v1/models", noop).ok());
    require(r.add("GET", "/v1/models/{model}", noop).ok());
    require(r.add("DELETE", "/v1/models/{model}", noop).ok());
    require(r.add("POST", "/v1/chat/completions", noop).ok());
    require(r.add("POST", "/v1/completions", noop).ok());
    require(r.add("POST", "/v1/fleet/pools/{name}/drain", noop).ok());
    require(r.add("GET", "/healthz", noop).ok());
    require(r.add_prefix("GET", "/static/", noop).ok());
    return r;
  }();
  return router;
}

HttpServerOptions small_options() {
  HttpServerOptions o;
  o.max_header_bytes = 1024;  // The smallest validate() allows.
  o.max_url_bytes = 64;
  o.max_body_bytes = 64;
  require(o.validate().ok());
  return o;
}

// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= text.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// The body of the server's default error response must be JSON: UTF-8, and the message a
// well-formed string literal.
void check_error_body(int status, std::string_view message) {
  const HttpResponse response = render_default_error(status, message);
  require(response.status == status);
  const std::string& body = response.body;
  require(is_utf8(body));
  const std::string_view open = R"("message":")";
  const std::size_t start = body.find(open);
  require(start != std::string::npos);
  std::size_t i = start + open.size();
  while (i < body.size() && body[i] != '"') {
    const auto c = static_cast<unsigned char>(body[i]);
    require(c >= 0x20);
    if (c == '\\') {
      require(i + 1 < body.size());
      const char e = body[i + 1];
      if (e == 'u') {
        require(i + 5 < body.size());
        for (std::size_t k = i + 2; k < i + 6; ++k) {
          require(std::string_view("0123456789abcdefABCDEF").find(body[k]) !=
                  std::string_view::npos);
        }
        i += 6;
      } else {
        require(std::string_view("\"\\/bfnrt").find(e) != std::string_view::npos);
        i += 2;
      }
    } else {
      ++i;
    }
  }
  require(body.substr(i) == "\"}}");
}

void check_reply(const ErrorReply& reply, bool rejected) {
  if (rejected) {
    require(reply.status == 400 || reply.status == 413 || reply.status == 414 ||
            reply.status == 431 || reply.status == 505);
  } else {
    require(reply.status == 400 || reply.status == 404 || reply.status == 405);
  }
  require(!reply.message.empty());
  require(reply.allow.empty() == (reply.status != 405));
  if (!reply.allow.empty()) require(is_valid_header_value(reply.allow));
  check_error_body(reply.status, reply.message);
}

void check_request(const HttpRequest& r, const HttpServerOptions& options) {
  require(!r.method.empty() && is_valid_header_name(r.method));
  require(!r.target.empty() && r.target.size() <= options.max_url_bytes);
  for (const char c : r.target)
    require(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  const bool has_query = r.target.find('?') != std::string::npos;
  require((has_query ? r.path + "?" + r.query : r.path) == r.target);
  require(r.version_major == 1 && (r.version_minor == 0 || r.version_minor == 1));
  std::size_t head_bytes = r.method.size() + r.target.size();
  for (const auto& [name, value] : r.headers) {
    require(is_valid_header_name(name));
    require(is_valid_header_value(value));
    head_bytes += name.size() + value.size();
  }
  require(head_bytes <= options.max_header_bytes);
  require(r.body.size() <= options.max_body_bytes);
  require(!r.request_id.empty() && r.request_id.size() <= 128);
  for (const char c : r.request_id)
    require(c > 0x20 && c < 0x7f);
  for (const auto& [name, value] : r.path_params) {
    require(!name.empty());
    require(value.find('\0') == std::string::npos);
  }
  (void)r.query_param("model");
}

void check_replay(const std::vector<ReplayedRequest>& replay, const HttpServerOptions& options) {
  require(!replay.empty() && replay.size() <= kMaxRequests);
  for (std::size_t i = 0; i < replay.size(); ++i) {
    const ReplayedRequest& entry = replay[i];
    const bool last = i + 1 == replay.size();
    switch (entry.kind) {
      case ReplayedRequest::Kind::kRouted:
        check_request(entry.request, options);
        break;
      case ReplayedRequest::Kind::kRouteError:
        check_request(entry.request, options);
        require(entry.request.path_params.empty());
        check_reply(entry.error, false);
        break;
      case ReplayedRequest::Kind::kRejected:
        require(last);
        check_reply(entry.error, true);
        break;
      case ReplayedRequest::Kind::kClosed:
        require(last);
        break;
    }
    // Whatever the client sends, the connection holds less than one head of unparsed bytes.
    require(entry.peak_buffered < options.max_header_bytes);
    if (!last) require(entry.keep_alive);
    if (entry.sent_continue) require(entry.request.version_minor == 1);
  }
}

bool same_outcome(const ReplayedRequest& a, const ReplayedRequest& b) {
  // Beast parses a request line as soon as its first read holds it, but after a short read it
  // waits for the end of the head: malformed bytes from a peer that then leaves may be answered
  // with an error, or not at all. Both end the connection.
  using Kind = ReplayedRequest::Kind;
  if ((a.kind == Kind::kRejected && b.kind == Kind::kClosed) ||
      (a.kind == Kind::kClosed && b.kind == Kind::kRejected)) {
    return true;
  }
  // A head that is both malformed and too long: the error found first depends on what was
  // buffered (400, or the limit's 414/431/413).
  if (a.kind == Kind::kRejected && b.kind == Kind::kRejected &&
      (a.error.status == 400 || b.error.status == 400)) {
    return true;
  }
  if (a.kind != b.kind || a.keep_alive != b.keep_alive || a.sent_continue != b.sent_continue ||
      a.error.status != b.error.status || a.error.allow != b.error.allow) {
    return false;
  }
  const HttpRequest& x = a.request;
  const HttpRequest& y = b.request;
  return x.method == y.method && x.target == y.target && x.version_minor == y.version_minor &&
         x.headers == y.headers && x.body == y.body && x.path_params == y.path_params;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const Router& router = fuzz_router();

  static const HttpServerOptions defaults;
  check_replay(internal::replay_requests(bytes, defaults, router, kServerReadSize, kMaxRequests),
               defaults);

  // Tight limits reach the limit checks with small inputs; a slow client's small reads must
  // not change the outcome.
  static const HttpServerOptions small = small_options();
  const auto whole = internal::replay_requests(bytes, small, router, kServerReadSize, kMaxRequests);
  check_replay(whole, small);
  const std::size_t read_size = 1 + size % 16;
  const auto pieces = internal::replay_requests(bytes, small, router, read_size, kMaxRequests);
  check_replay(pieces, small);
  require(whole.size() == pieces.size());
  for (std::size_t i = 0; i < whole.size(); ++i)
    require(same_outcome(whole[i], pieces[i]));
  return 0;
}
