// Errors of the OpenAI API and their response body:
//   {"error":{"message":"temperature: must be in [0, 2], got 3","type":"invalid_request_error",
//             "param":"temperature","code":null}}
//
// Request validation returns ordinary `spillway::Error` values. An error about one request
// parameter carries the parameter's path (as OpenAI names it: "temperature",
// "messages[2].content[0].type", "prompt[1][7]") as the start of its message, in the form
// "<param>: <problem>"; `request_error` builds such errors and `error_param` reads the path
// back. Errors about the body as a whole ("invalid JSON at line 1, column 9: syntax error")
// have no param. HTTP status and `type` come from core's `http_error_mapping`.
//
// Thread-safety: pure functions over values.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace spillway::openai {

// An error about request parameter `param`: message "<param>: <problem>".
// REQUIRES: `param` is a parameter path (see `is_param_path`).
[[nodiscard]] Error request_error(ErrorCode code, std::string_view param, std::string_view problem);

// The same error about `param`: message "<param>: <message of error>". For errors from
// value-level checks, whose messages name no param. REQUIRES: `param` is a parameter path.
[[nodiscard]] Error with_param(const Error& error, std::string_view param);

// True for paths made of names ([A-Za-z_][A-Za-z0-9_]*) joined by '.' and followed by any
// number of "[index]" parts: "stop", "stream_options.include_usage", "messages[0].role".
[[nodiscard]] bool is_param_path(std::string_view text);

// The param an error names, if its message starts with "<param path>: ".
[[nodiscard]] std::optional<std::string> error_param(const Error& error);

// Everything an HTTP layer needs to answer with an OpenAI error.
struct ApiError {
  int http_status = 500;
  std::string type;                  // "invalid_request_error", "server_error", ...
  std::string message;               // One line, safe to show to the client.
  std::optional<std::string> param;  // Rendered as null when absent.
  std::optional<std::string> code;   // Rendered as null when absent.
};

// Status and type from the error code; param from the message (see above).
[[nodiscard]] ApiError to_api_error(const Error& error);
// The same with an explicit param (for errors raised outside request parsing, e.g. a prompt
// longer than the model's context: param "messages").
[[nodiscard]] ApiError to_api_error(const Error& error, std::optional<std::string> param);

// The JSON body {"error":{"message","type","param","code"}}. Also the payload of the SSE
// event to send when a stream fails after it started.
[[nodiscard]] std::string render_error_body(const ApiError& error);

}  // namespace spillway::openai
