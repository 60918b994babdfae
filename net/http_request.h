// One HTTP request as the server hands it to a handler: the parsed request line, headers, the
// whole body (bounded by HttpServerOptions::max_body_bytes), who sent it, and the values of the
// route's {param} segments.
//
// Thread-safety: a value type; no shared state.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http_headers.h"

namespace spillway::net {

struct HttpRequest {
  std::string method;  // As sent, e.g. "GET" (methods are case-sensitive).
  std::string target;  // The raw request-target, e.g. "/v1/models?limit=2".
  std::string path;    // The target before '?', still percent-encoded.
  std::string query;   // The target after '?', without it; empty when absent.
  int version_major = 1;
  int version_minor = 1;
  HttpHeaders headers;
  std::string body;
  std::string remote_address;  // "ip:port" of the peer.
  // The client's X-Request-Id when it sent a valid one (printable ASCII, at most 128 bytes),
  // otherwise a fresh id from new_request_id(). The response echoes it in X-Request-Id.
  std::string request_id;
  // Values of the matched route's {name} segments, percent-decoded, in pattern order.
  std::vector<std::pair<std::string, std::string>> path_params;

  // The decoded value of route segment {name}, if the route has one.
  [[nodiscard]] std::optional<std::string_view> param(std::string_view name) const;
  // The decoded value of query parameter `name`, if present and decodable.
  [[nodiscard]] std::optional<std::string> query_param(std::string_view name) const;
};

}  // namespace spillway::net
