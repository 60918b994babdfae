// Structured, leveled logging. Each record is one line on stderr (or a test sink):
//   text:  2026-11-22T19:40:03.123Z info  server ready port=8000 request_id=req-00a1
//   json:  {"ts":"2026-11-22T19:40:03.123Z","level":"info","msg":"server ready","port":"8000"}
// Fields are key=value pairs; values are quoted/escaped when needed so a line always parses.
//
// Thread-safety: every function here is safe for concurrent use; lines from different
// threads never interleave.
#pragma once

#include <fmt/core.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/status.h"

namespace spillway {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };
enum class LogFormat { kText, kJson };

struct LogField {
  std::string_view key;
  std::string value;
};

// A field from any value fmt can format: kv("port", 8000).
template <typename T>
[[nodiscard]] LogField kv(std::string_view key, const T& value) {
  return LogField{key, fmt::format("{}", value)};
}

// Parses "debug", "info", "warn", "error", "off".
[[nodiscard]] Result<LogLevel> parse_log_level(std::string_view name);

// Process-wide logger settings.
void set_log_level(LogLevel level);
[[nodiscard]] LogLevel log_level();
void set_log_format(LogFormat format);
// Replaces the output (stderr by default) with `sink`, which receives whole lines without the
// trailing newline. Passing an empty function restores stderr. For tests.
void set_log_sink(std::function<void(std::string_view)> sink);

[[nodiscard]] inline bool log_enabled(LogLevel level) {
  return level >= log_level();
}

void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});
inline void log_debug(std::string_view m, std::initializer_list<LogField> f = {}) {
  if (log_enabled(LogLevel::kDebug)) log(LogLevel::kDebug, m, f);
}
inline void log_info(std::string_view m, std::initializer_list<LogField> f = {}) {
  log(LogLevel::kInfo, m, f);
}
inline void log_warn(std::string_view m, std::initializer_list<LogField> f = {}) {
  log(LogLevel::kWarn, m, f);
}
inline void log_error(std::string_view m, std::initializer_list<LogField> f = {}) {
  log(LogLevel::kError, m, f);
}

// A process-unique request id such as "req-0000019a3c5e-000001": a start-time prefix keeps ids
// distinct across restarts, a counter keeps them distinct within a process.
[[nodiscard]] std::string new_request_id();

// Renders one record; exposed for tests and for components that write their own logs.
[[nodiscard]] std::string format_log_line(LogFormat format, std::int64_t unix_millis,
                                          LogLevel level, std::string_view message,
                                          std::initializer_list<LogField> fields);

}  // namespace spillway
