// A complete HTTP response as a handler produces it. The server adds the framing headers itself
// (Content-Length or Transfer-Encoding, Connection, X-Request-Id unless set), so handlers
// should not set the first three; if they do, the server's values replace them.
//
// Thread-safety: a value type; no shared state.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "net/http_headers.h"

namespace spillway::net {

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string body;

  // A response with `Content-Type: <content_type>`.
  [[nodiscard]] static HttpResponse with_body(int status, std::string body,
                                              std::string_view content_type);
  [[nodiscard]] static HttpResponse json(int status, std::string body) {
    return with_body(status, std::move(body), "application/json");
  }
  [[nodiscard]] static HttpResponse text(int status, std::string body) {
    return with_body(status, std::move(body), "text/plain; charset=utf-8");
  }
};

// The standard reason phrase of a status code ("Not Found"), or "Unknown".
[[nodiscard]] std::string_view reason_phrase(int status);

// True for a status code the server can send: 100..599.
[[nodiscard]] inline bool is_valid_status(int status) {
  return status >= 100 && status <= 599;
}

// True when a response with this status never carries a body (1xx, 204, 304).
[[nodiscard]] inline bool status_forbids_body(int status) {
  return status < 200 || status == 204 || status == 304;
}

}  // namespace spillway::net
