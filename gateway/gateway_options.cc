#include "gateway/gateway_options.h"

#include "net/http_headers.h"

namespace spillway::gateway {
namespace {

Error out_of_range(std::string_view field, std::string_view range) {
  return make_error(ErrorCode::kInvalidArgument, "gateway option {} must be {}", field, range);
}

}  // namespace

Status GatewayOptions::validate() const {
  SPW_TRY(routing.validate());
  SPW_TRY(openai::validate_api_limits(limits));
  if (max_attempts < 1 || max_attempts > 16) return out_of_range("max_attempts", "in [1, 16]");
  if (max_inflight < 1 || max_inflight > 4096) return out_of_range("max_inflight", "in [1, 4096]");
  if (max_queued < 1 || max_queued > 1'000'000) {
    return out_of_range("max_queued", "in [1, 1000000]");
  }
  if (max_queue_wait.count() <= 0) return out_of_range("max_queue_wait", "> 0");
  if (connect_timeout.count() <= 0) return out_of_range("connect_timeout", "> 0");
  if (io_timeout.count() <= 0) return out_of_range("io_timeout", "> 0");
  if (request_timeout.count() <= 0) return out_of_range("request_timeout", "> 0");
  if (max_response_bytes == 0) return out_of_range("max_response_bytes", "> 0");
  if (max_event_bytes == 0) return out_of_range("max_event_bytes", "> 0");
  if (max_client_buffer_bytes == 0) return out_of_range("max_client_buffer_bytes", "> 0");
  if (message_overhead_tokens < 0 || message_overhead_tokens > 1'000'000) {
    return out_of_range("message_overhead_tokens", "in [0, 1000000]");
  }
  if (request_overhead_tokens < 0 || request_overhead_tokens > 1'000'000) {
    return out_of_range("request_overhead_tokens", "in [0, 1000000]");
  }
  if (decisions_kept < 1 || decisions_kept > 100'000) {
    return out_of_range("decisions_kept", "in [1, 100000]");
  }
  if (retry_after_s < 1 || retry_after_s > 3600)
    return out_of_range("retry_after_s", "in [1, 3600]");
  if (!internal_api_key.empty() && (!net::is_valid_header_value(internal_api_key) ||
                                    internal_api_key.find_first_of(" \t") != std::string::npos)) {
    return out_of_range("internal_api_key", "printable, without spaces or control characters");
  }
  return Status();
}

}  // namespace spillway::gateway
