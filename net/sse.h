// Server-Sent Events (HTML Living Standard §9.2) framing for streaming responses:
//
//   writer.start(200, sse_response_headers());
//   writer.write(format_sse_event({.data = R"({"choices":[...]})"}));
//   writer.write(format_sse_event({.data = "[DONE]"}));
//   writer.finish();
//
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "net/http_headers.h"

namespace spillway::net {

struct SseEvent {
  std::string_view data;        // Split at CR, LF and CRLF into one "data:" line per line.
  std::string_view event;       // Optional "event:" line. CR/LF/NUL in it are dropped.
  std::string_view id;          // Optional "id:" line. CR/LF/NUL in it are dropped.
  std::optional<int> retry_ms;  // Optional "retry:" line (reconnection time), when >= 0.
};

// The event as it goes on the wire, ending with the blank line that dispatches it, e.g.
// "event: delta\ndata: line 1\ndata: line 2\n\n".
[[nodiscard]] std::string format_sse_event(const SseEvent& event);

// Shorthand for format_sse_event({.data = data}).
[[nodiscard]] std::string format_sse_data(std::string_view data);

// A comment line (": text\n\n"), ignored by clients; used as a keep-alive through proxies.
[[nodiscard]] std::string format_sse_comment(std::string_view text);

// Content-Type: text/event-stream, Cache-Control: no-cache, Connection: keep-alive,
// X-Accel-Buffering: no (so nginx-style proxies do not buffer the stream).
[[nodiscard]] HttpHeaders sse_response_headers();

}  // namespace spillway::net
