#include "net/error_renderer.h"

#include <fmt/core.h>

namespace spillway::net {
HttpResponse render_default_error(int status, std::string_view message) {
  return HttpResponse::json(
      status, fmt::format(R"({{"error":{{"code":{},"status":"{}","message":"{}"}}}})", status,
                          json_escape(reason_phrase(status)), json_escape(message)));
}

}  // namespace spillway::net
