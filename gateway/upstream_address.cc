#include "gateway/upstream_address.h"

#include <charconv>

namespace spillway::gateway {
namespace {

bool is_ipv4_literal(std::string_view host) {
  int parts = 0;
  std::size_t pos = 0;
  while (pos <= host.size()) {
    const std::size_t dot = std::min(host.find('.', pos), host.size());
    const std::string_view part = host.substr(pos, dot - pos);
    int value = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || part.size() > 3 || ec != std::errc() || end != part.data() + part.size() ||
        value > 255) {
      return false;
    }
    ++parts;
    pos = dot + 1;
  }
  return parts == 4;
}

bool is_ipv6_literal(std::string_view host) {
  if (host.empty()) return false;
  for (char c : host) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex && c != ':' && c != '.') return false;
  }
  return host.find(':') != std::string_view::npos;
}

}  // namespace

Result<UpstreamAddress> parse_upstream_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    return make_error(ErrorCode::kInvalidArgument, "upstream URL '{}' must start with http://",
                      url.substr(0, 256));
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "upstream URL '{}' must be http://HOST[:PORT] (no path, query or user info)",
                      url.substr(0, 256));
  }
  UpstreamAddress out;
  std::string_view port_text;
  if (rest.starts_with('[')) {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return make_error(ErrorCode::kInvalidArgument, "upstream URL '{}': unclosed '['",
                        url.substr(0, 256));
    }
    out.host = std::string(rest.substr(1, close - 1));
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      return make_error(ErrorCode::kInvalidArgument, "upstream URL '{}': junk after ']'",
                        url.substr(0, 256));
    }
    if (!after.empty()) port_text = after.substr(1);
    if (!is_ipv6_literal(out.host)) {
      return make_error(ErrorCode::kInvalidArgument, "upstream URL '{}': bad IPv6 address",
                        url.substr(0, 256));
    }
  } else {
    const std::size_t colon = rest.find(':');
    out.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
    if (out.host != "localhost" && !is_ipv4_literal(out.host)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "upstream URL '{}': the host must be an IP address or localhost",
                        url.substr(0, 256));
    }
  }
  if (!port_text.empty() || rest.ends_with(':')) {
    int port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port < 1 || port > 65535) {
      return make_error(ErrorCode::kInvalidArgument,
                        "upstream URL '{}': the port must be in 1..65535", url.substr(0, 256));
    }
    out.port = port;
  }
  return out;
}

}  // namespace spillway::gateway
