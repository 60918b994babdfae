#include "net/client_request.h"

#include <algorithm>

namespace spillway::net::internal {

namespace http = boost::beast::http;

namespace {

constexpr std::int64_t kMaxTimeoutMs = 24LL * 3600 * 1000;

}  // namespace

bool is_valid_client_target(std::string_view target) {
  return !target.empty() && target.front() == '/' &&
         std::none_of(target.begin(), target.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

Status check_client_timeout(std::string_view who, std::string_view field,
                            std::chrono::milliseconds value) {
  if (value.count() < 1 || value.count() > kMaxTimeoutMs) {
    return make_error(ErrorCode::kInvalidArgument, "{} option {} = {} ms: must be in [1, {}]", who,
                      field, value.count(), kMaxTimeoutMs);
  }
  return Status::ok_status();
}

Status check_client_request(std::string_view who, const HttpClientRequest& request) {
  if (!is_valid_header_name(request.method)) {
    return make_error(ErrorCode::kInvalidArgument, "{} request method '{}' is invalid", who,
                      request.method);
  }
  if (!is_valid_client_target(request.target)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{} request target must start with '/' and contain no whitespace or "
                      "control characters",
                      who);
  }
  for (const auto& [name, value] : request.headers) {
    if (!is_valid_header_name(name) || !is_valid_header_value(value)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{} request header '{}' has an invalid name or value", who, name);
    }
  }
  return Status::ok_status();
}

http::request<http::string_body> to_client_message(const HttpClientRequest& request,
                                                   std::string_view host_port) {
  http::request<http::string_body> msg;
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) {
    msg.method_string(request.method);
  } else {
    msg.method(verb);
  }
  msg.target(request.target);
  msg.version(11);
  for (const auto& [name, value] : request.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) continue;
    msg.insert(name, value);
  }
  if (!request.headers.contains("Host")) msg.set(http::field::host, host_port);
  msg.body() = request.body;
  msg.prepare_payload();
  return msg;
}

}  // namespace spillway::net::internal
