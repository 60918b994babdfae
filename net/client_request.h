// Internal to net/ (includes Beast; include only from net/*.cc): what the blocking HttpClient
// and the coroutine UpstreamClient share — checking their options and requests, and turning an
// HttpClientRequest into the Beast message they send.
#pragma once

#include <chrono>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "core/status.h"

#include "net/http_client.h"

namespace spillway::net::internal {

// A timeout option in [1 ms, 24 h]; `who` names the client in the message ("http client").
[[nodiscard]] Status check_client_timeout(std::string_view who, std::string_view field,
                                          std::chrono::milliseconds value);

// An origin-form target: starts with '/', no whitespace or control characters.
[[nodiscard]] bool is_valid_client_target(std::string_view target);

// Method, origin-form target and header names and values are valid (kInvalidArgument if not).
[[nodiscard]] Status check_client_request(std::string_view who, const HttpClientRequest& request);

// The HTTP/1.1 message for `request`: its headers but Content-Length and Transfer-Encoding
// (framing is set from the body), and Host: `host_port` unless the request has one.
// REQUIRES: check_client_request(request) passed.
[[nodiscard]] boost::beast::http::request<boost::beast::http::string_body> to_client_message(
    const HttpClientRequest& request, std::string_view host_port);

}  // namespace spillway::net::internal
