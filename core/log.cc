#include "core/log.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "core/json_escape.h"

namespace spillway {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kText};

struct Sink {
  std::mutex mu;
  std::function<void(std::string_view)> fn;  // Guarded by mu; empty means stderr.
};
Sink& sink() {
  static Sink s;
  return s;
}

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "info";
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void append_timestamp(std::string& out, std::int64_t unix_millis) {
  const std::time_t secs = unix_millis / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  out += fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, unix_millis % 1000);
}

}  // namespace

Result<LogLevel> parse_log_level(std::string_view name) {
  for (LogLevel l :
       {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError, LogLevel::kOff}) {
    if (name == level_name(l)) return l;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown log level '{}' (expected debug, info, warn, error or off)", name);
}

void set_log_level(LogLevel level) {
  g_level.store(level, std::memory_order_relaxed);
}
LogLevel log_level() {
  return g_level.load(std::memory_order_relaxed);
}
void set_log_format(LogFormat format) {
  g_format.store(format, std::memory_order_relaxed);
}

void set_log_sink(std::function<void(std::string_view)> fn) {
  std::lock_guard lock(sink().mu);
  sink().fn = std::move(fn);
}

std::string format_log_line(LogFormat format, std::int64_t unix_millis, LogLevel level,
                            std::string_view message, std::initializer_list<LogField> fields) {
  std::string out;
  out.reserve(128);
  if (format == LogFormat::kJson) {
    out += "{\"ts\":\"";
    append_timestamp(out, unix_millis);
    out += "\",\"level\":\"";
    out += level_name(level);
    out += "\",\"msg\":\"";
    append_json_escaped(out, message);
    out += '"';
    for (const LogField& f : fields) {
      out += ",\"";
      append_json_escaped(out, f.key);
      out += "\":\"";
      append_json_escaped(out, f.value);
      out += '"';
    }
    out += '}';
    return out;
  }
  append_timestamp(out, unix_millis);
  out += fmt::format(" {:<5} ", level_name(level));
  append_json_escaped(out, message);
  for (const LogField& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    if (needs_quotes(f.value)) {
      out += '"';
      append_json_escaped(out, f.value);
      out += '"';
    } else {
      out += f.value;
    }
  }
  return out;
}

void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (!log_enabled(level) || level == LogLevel::kOff) return;
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::string line =
      format_log_line(g_format.load(std::memory_order_relaxed), millis, level, message, fields);
  std::lock_guard lock(sink().mu);
  if (sink().fn) {
    sink().fn(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

std::string new_request_id() {
  // "req-{:012x}-{:06x}": the process's start time, then a counter. The first part is the same
  // for every id, so it is written once; each id writes only its counter's digits (one per
  // request on the gateway's path: no formatting call, no loop over the prefix).
  static const std::string prefix = [] {
    const auto start_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::string p = "req-000000000000-";
    for (std::size_t i = 0, v = start_ms; i < 12; ++i, v >>= 4)
      p[15 - i] = "0123456789abcdef"[v & 0xf];
    if ((start_ms >> 48) != 0) p.insert(4, fmt::format("{:x}", start_ms >> 48));
    return p;
  }();
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t value = counter.fetch_add(1, std::memory_order_relaxed) + 1;
  char digits[16];
  std::size_t n = 0;
  do {
    digits[sizeof digits - 1 - n++] = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value != 0);
  while (n < 6)
    digits[sizeof digits - 1 - n++] = '0';
  std::string id;
  id.reserve(prefix.size() + n);
  id.append(prefix).append(digits + sizeof digits - n, n);
  return id;
}

}  // namespace spillway
