#include "net/admin_auth.h"

#include <optional>
#include <string>

#include <boost/asio/ip/address.hpp>

namespace spillway::net {

bool is_loopback_address(std::string_view remote_address) {
  // The server writes "ip:port" (IPv6 unbracketed: "::1:5000"); the port is what follows the
  // last colon. "[ip]:port" is accepted too.
  const std::size_t colon = remote_address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = remote_address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) return false;
  if (address.is_v4()) return address.to_v4().is_loopback();
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).is_loopback();
  }
  return v6.is_loopback();
}

std::optional<std::string_view> bearer_token(const HttpRequest& request) {
  const auto header = request.headers.get("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!header || header->size() <= kBearer.size() ||
      !iequals(header->substr(0, kBearer.size()), kBearer)) {
    return std::nullopt;
  }
  return header->substr(kBearer.size());
}

Status check_admin(const HttpRequest& request, const AdminAuth& auth, AdminAccess access) {
  const bool local = is_loopback_address(request.remote_address);
  if (!auth.has_key()) {
    if (local) return Status();
    return make_error(ErrorCode::kPermissionDenied,
                      "operator routes are served only to local clients when no admin key is "
                      "configured (--admin-key-file or SPILLWAY_ADMIN_KEY)");
  }
  if (access == AdminAccess::kRead && local) return Status();
  const auto token = bearer_token(request);
  if (!token) {
    return make_error(ErrorCode::kUnauthenticated,
                      "missing admin key: send the header 'Authorization: Bearer <admin key>'");
  }
  if (!auth.verify(*token)) return make_error(ErrorCode::kUnauthenticated, "invalid admin key");
  return Status();
}

}  // namespace spillway::net
