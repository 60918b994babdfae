#include "core/status.h"

namespace spillway {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kOutOfRange:
      return "out_of_range";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kDataLoss:
      return "data_loss";
    case ErrorCode::kUnauthenticated:
      return "unauthenticated";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
    case ErrorCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kFailedPrecondition:
      return "failed_precondition";
    case ErrorCode::kUnimplemented:
      return "unimplemented";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kPayloadTooLarge:
      return "payload_too_large";
  }
  return "unknown";
}

HttpErrorMapping http_error_mapping(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return {200, ""};
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kOutOfRange:
    case ErrorCode::kFailedPrecondition:
      return {400, "invalid_request_error"};
    case ErrorCode::kUnauthenticated:
      return {401, "authentication_error"};
    case ErrorCode::kPermissionDenied:
      return {403, "permission_error"};
    case ErrorCode::kNotFound:
      return {404, "not_found_error"};
    case ErrorCode::kAlreadyExists:
      return {409, "conflict_error"};
    case ErrorCode::kPayloadTooLarge:
      return {413, "invalid_request_error"};
    case ErrorCode::kResourceExhausted:
      return {429, "rate_limit_error"};
    case ErrorCode::kCancelled:
      return {499, "cancelled_error"};
    case ErrorCode::kUnimplemented:
      return {501, "not_implemented_error"};
    case ErrorCode::kUnavailable:
      return {503, "service_unavailable_error"};
    case ErrorCode::kDeadlineExceeded:
      return {504, "timeout_error"};
    case ErrorCode::kInternal:
    case ErrorCode::kDataLoss:
      return {500, "server_error"};
  }
  return {500, "server_error"};
}

Error Error::with_context(std::string_view context) const {
  return Error(code_, fmt::format("{}: {}", context, message_));
}

std::string Error::to_string() const {
  return fmt::format("{}: {}", error_code_name(code_), message_);
}

}  // namespace spillway
