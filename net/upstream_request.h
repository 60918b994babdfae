// A request for UpstreamClient (upstream_client.h), written as HTTP/1.1 text while it is built:
// the request line, each field as it is added, then the framing and the body. The gateway
// builds one per forwarded call and every attempt sends it as is, adding only the Host field
// of the upstream it goes to: no field list, no serializer, no second pass to validate.
//
// Framing is the client's: Content-Length and Transfer-Encoding fields given to add() are
// ignored, and finish() sets Content-Length from the body (for a body, or for a method that
// carries one: POST, PUT, OPTIONS), as HttpClient does.
//
// Thread-safety: a value; const methods may be used from several threads at once.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

#include "net/http_client.h"

namespace spillway::net {

class UpstreamRequest {
 public:
  // Fields checked once and sent with many requests (those of every request a gateway
  // forwards), as UpstreamRequest::add checks and writes them.
  class Fields {
   public:
    // kInvalidArgument (nothing appended) for an invalid name or value.
    Status add(std::string_view name, std::string_view value);

    // Bytes they take on the wire.
    [[nodiscard]] std::size_t size() const { return text_.size(); }

   private:
    friend class UpstreamRequest;
    std::string text_;
    bool has_host_ = false;
  };

  // kInvalidArgument for a method that is not a token or a target that is not origin-form
  // (starts with '/', no whitespace or control characters).
  [[nodiscard]] static Result<UpstreamRequest> make(std::string_view method,
                                                    std::string_view target);
  // The same request as `request`, checked as HttpClient checks it.
  [[nodiscard]] static Result<UpstreamRequest> from(const HttpClientRequest& request);

  // A copy of this request, which must not be finished yet, with room for `more_bytes` more
  // without reallocating: a request line and fields checked once, shared by many requests
  // (the gateway's per-endpoint start), each of which then adds its own and finishes.
  [[nodiscard]] UpstreamRequest copy_with_room(std::size_t more_bytes) const;

  // Appends a field. kInvalidArgument (nothing appended) for an invalid name or value.
  // REQUIRES: finish() not called yet.
  Status add(std::string_view name, std::string_view value);
  // Appends fields checked before. REQUIRES: finish() not called yet.
  void add(const Fields& fields);
  // Ends the head with the framing and appends `body`. REQUIRES: called once.
  void finish(std::string_view body);

  // The request line ("POST /v1/x HTTP/1.1\r\n").
  [[nodiscard]] std::string_view line() const { return std::string_view(text_).substr(0, line_); }
  // The fields, the blank line and the body. REQUIRES: finish() called.
  [[nodiscard]] std::string_view rest() const { return std::string_view(text_).substr(line_); }
  // A Host field was added (the client then adds none).
  [[nodiscard]] bool has_host() const { return has_host_; }
  // HEAD: the answer has no body whatever its framing says.
  [[nodiscard]] bool is_head() const { return head_; }

 private:
  UpstreamRequest() = default;

  std::string text_;
  std::size_t line_ = 0;
  bool carries_body_ = false;  // POST, PUT, OPTIONS: Content-Length even when empty.
  bool has_host_ = false;
  bool head_ = false;
};

}  // namespace spillway::net
