// Where in a template something is, and errors that say so: "3:14: unexpected 'endfor'".
//
// Error codes of the Jinja interpreter (a caller can tell the cases apart by code alone):
//   kInvalidArgument     the template does not parse (create), or it called
//                        raise_exception(message) (render; the message is exactly the
//                        template's, without position, so it can be shown to a client);
//   kFailedPrecondition  any other failure while rendering (a type error, an undefined value
//                        used in arithmetic, ...), with the position;
//   kOutOfRange          a JinjaLimits bound was exceeded.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace spillway::serve::jinja {

// 1-based line and column; columns count characters (code points), not bytes.
struct SourcePos {
  std::uint32_t line = 1;
  std::uint32_t column = 1;
};

[[nodiscard]] inline Error syntax_error(SourcePos pos, std::string_view message) {
  return make_error(ErrorCode::kInvalidArgument, "{}:{}: {}", pos.line, pos.column, message);
}

// `error` with the position prefixed to its message.
[[nodiscard]] inline Error locate(SourcePos pos, const Error& error) {
  return make_error(error.code(), "{}:{}: {}", pos.line, pos.column, error.message());
}

}  // namespace spillway::serve::jinja
