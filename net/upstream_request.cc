#include "net/upstream_request.h"

#include <charconv>
#include <iterator>

#include "net/client_request.h"

namespace spillway::net {
namespace {

// Checks and writes one field (see UpstreamRequest::add).
Status append_field(std::string& text, bool& has_host, std::string_view name,
                    std::string_view value) {
  if (!is_valid_header_name(name) || !is_valid_header_value(value)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream request header '{}' has an invalid name or value", name);
  }
  if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) {
    return Status::ok_status();
  }
  if (iequals(name, "Host")) has_host = true;
  text.append(name).append(": ").append(value).append("\r\n");
  return Status::ok_status();
}

}  // namespace

Status UpstreamRequest::Fields::add(std::string_view name, std::string_view value) {
  return append_field(text_, has_host_, name, value);
}

Result<UpstreamRequest> UpstreamRequest::make(std::string_view method, std::string_view target) {
  if (!is_valid_header_name(method)) {
    return make_error(ErrorCode::kInvalidArgument, "upstream request method '{}' is invalid",
                      method);
  }
  if (!internal::is_valid_client_target(target)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream request target must start with '/' and contain no whitespace "
                      "or control characters");
  }
  UpstreamRequest r;
  r.text_.reserve(512);
  r.text_.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  r.line_ = r.text_.size();
  r.carries_body_ = method == "POST" || method == "PUT" || method == "OPTIONS";
  r.head_ = method == "HEAD";
  return r;
}

Result<UpstreamRequest> UpstreamRequest::from(const HttpClientRequest& request) {
  SPW_ASSIGN_OR_RETURN(UpstreamRequest r, make(request.method, request.target));
  for (const auto& [name, value] : request.headers) {
    SPW_TRY(r.add(name, value));
  }
  r.finish(request.body);
  return r;
}

UpstreamRequest UpstreamRequest::copy_with_room(std::size_t more_bytes) const {
  UpstreamRequest r;
  r.text_.reserve(text_.size() + more_bytes);
  r.text_.append(text_);
  r.line_ = line_;
  r.carries_body_ = carries_body_;
  r.has_host_ = has_host_;
  r.head_ = head_;
  return r;
}

Status UpstreamRequest::add(std::string_view name, std::string_view value) {
  return append_field(text_, has_host_, name, value);
}

void UpstreamRequest::add(const Fields& fields) {
  text_.append(fields.text_);
  has_host_ = has_host_ || fields.has_host_;
}

void UpstreamRequest::finish(std::string_view body) {
  text_.reserve(text_.size() + 48 + body.size());  // One growth for a large body, to its size.
  if (!body.empty() || carries_body_) {
    char digits[24];
    const auto end = std::to_chars(std::begin(digits), std::end(digits), body.size()).ptr;
    text_.append("Content-Length: ").append(digits, end).append("\r\n");
  }
  text_.append("\r\n").append(body);
}

}  // namespace spillway::net
