// Spillway's one error convention: functions that can fail on untrusted input or on the
// environment return `Status` (no value) or `Result<T>` (a value or an `Error`). Both are
// [[nodiscard]]. Assertions are reserved for programmer errors, never for bad input.
//
// Error codes are stable: their numbers and names appear in logs, metrics and HTTP bodies,
// so existing entries never change meaning; new ones are appended.
//
// Thread-safety: values, no shared state.
#pragma once

#include <fmt/core.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace spillway {

enum class ErrorCode : std::uint16_t {
  kOk = 0,
  kInvalidArgument = 1,      // The caller sent something malformed or out of range.
  kNotFound = 2,             // A named thing (model, file, route, key) does not exist.
  kOutOfRange = 3,           // A value is well-formed but beyond a limit (e.g. context length).
  kResourceExhausted = 4,    // A queue, quota or pool is full; retrying later may succeed.
  kUnavailable = 5,          // Not ready or shutting down; retrying elsewhere may succeed.
  kInternal = 6,             // A bug or broken invariant inside Spillway.
  kDataLoss = 7,             // A file or stream is corrupt or truncated.
  kUnauthenticated = 8,      // Missing or wrong credentials.
  kPermissionDenied = 9,     // Credentials valid but not allowed to do this.
  kDeadlineExceeded = 10,    // A deadline passed before the work finished.
  kCancelled = 11,           // The caller went away or asked to stop.
  kFailedPrecondition = 12,  // The system is not in a state where this can run.
  kUnimplemented = 13,       // Valid request for a feature Spillway does not have.
  kAlreadyExists = 14,       // Creating something whose name is taken.
  kPayloadTooLarge = 15,     // A request body or field exceeds its configured size limit.
};

// Stable lower-case name, e.g. "invalid_argument".
[[nodiscard]] std::string_view error_code_name(ErrorCode code);

// The HTTP status and OpenAI-style error `type` that the API layers use for a code.
struct HttpErrorMapping {
  int http_status;
  std::string_view openai_type;
};
[[nodiscard]] HttpErrorMapping http_error_mapping(ErrorCode code);

class [[nodiscard]] Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  [[nodiscard]] ErrorCode code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>", for adding where an error
  // happened (a file name, a config key) as it travels up.
  [[nodiscard]] Error with_context(std::string_view context) const;

  // "<code name>: <message>", for logs.
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const Error&, const Error&) = default;

 private:
  ErrorCode code_;
  std::string message_;
};

template <typename... Args>
[[nodiscard]] Error make_error(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  return Error(code, fmt::format(format, std::forward<Args>(args)...));
}

// Success, or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;                                            // OK.
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design.

  [[nodiscard]] static Status ok_status() { return Status(); }
  [[nodiscard]] bool ok() const { return ok_; }
  // REQUIRES: !ok().
  [[nodiscard]] const Error& error() const& { return error_; }
  [[nodiscard]] Error&& error() && { return std::move(error_); }
  [[nodiscard]] ErrorCode code() const { return ok_ ? ErrorCode::kOk : error_.code(); }

 private:
  Error error_{ErrorCode::kOk, {}};
  bool ok_ = true;
};

// A value of type T, or an Error. Like std::expected<T, Error> (C++23), which GCC 12 lacks.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : storage_(std::in_place_index<0>, std::move(value)) {}      // NOLINT
  Result(Error error) : storage_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  [[nodiscard]] bool ok() const { return storage_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok().
  [[nodiscard]] T& value() & { return std::get<0>(storage_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(storage_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(storage_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !ok().
  [[nodiscard]] const Error& error() const& { return std::get<1>(storage_); }
  [[nodiscard]] Error&& error() && { return std::get<1>(std::move(storage_)); }

  [[nodiscard]] Status status() const& { return ok() ? Status() : Status(error()); }

 private:
  std::variant<T, Error> storage_;
};

namespace internal {
inline Error take_error(Status&& s) {
  return std::move(s).error();
}
template <typename T>
Error take_error(Result<T>&& r) {
  return std::move(r).error();
}
}  // namespace internal

}  // namespace spillway

#define SPW_CONCAT_INNER(a, b) a##b
#define SPW_CONCAT(a, b) SPW_CONCAT_INNER(a, b)

// Evaluates `expr` (a Status or Result); on failure returns its Error from this function.
#define SPW_TRY(expr)                                                                             \
  do {                                                                                            \
    auto&& spw_try_result = (expr);                                                               \
    if (!spw_try_result.ok()) return ::spillway::internal::take_error(std::move(spw_try_result)); \
  } while (false)

// `SPW_ASSIGN_OR_RETURN(auto x, ParseThing(...));` declares/assigns `x` from a Result's value,
// or returns its Error from this function.
#define SPW_ASSIGN_OR_RETURN(lhs, expr) \
  SPW_ASSIGN_OR_RETURN_IMPL(SPW_CONCAT(spw_result_, __LINE__), lhs, expr)
#define SPW_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                         \
  auto tmp = (expr);                                                      \
  if (!tmp.ok()) return ::spillway::internal::take_error(std::move(tmp)); \
  lhs = std::move(tmp).value()
