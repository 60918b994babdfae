// Bodies of the error responses the server produces itself (404, 405, 408, 413, 414, 431, 400,
// 500 for an abandoned or throwing handler). An API layer plugs in its own renderer, e.g. serve
// emits OpenAI-style `{"error":{...}}` bodies; the server always adds the framing headers and,
// for 405, the Allow header.
//
// A renderer is called on an I/O thread: it must be fast, must not block and must not throw.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/json_escape.h"

#include "net/http_response.h"

namespace spillway::net {

// `status` is the HTTP status to send; `message` says what went wrong in one line.
using ErrorRenderer = std::function<HttpResponse(int status, std::string_view message)>;

// {"error":{"code":404,"status":"Not Found","message":"no route for GET /x"}} as
// application/json.
[[nodiscard]] HttpResponse render_default_error(int status, std::string_view message);

// Messages are escaped with core/json_escape.h (untrusted bytes, such as a request path quoted
// in a message, still give valid JSON).
using spillway::json_escape;

}  // namespace spillway::net
