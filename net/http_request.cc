#include "net/http_request.h"

#include "net/url.h"

namespace spillway::net {

std::optional<std::string_view> HttpRequest::param(std::string_view name) const {
  for (const auto& [key, value] : path_params) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  return net::query_param(query, name);
}

}  // namespace spillway::net
