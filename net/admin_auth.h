// Who may call an operator route (drain and undrain a pool, the gateway's /v1/gateway/*):
// the holder of the admin key, or — where no admin key is configured, and for read-only
// routes always — a client on the loopback interface (the operator's own machine).
//
//   admin key configured   mutating route   "Authorization: Bearer <admin key>", else 401
//                          read-only route  the key, or a loopback peer; else 401
//   no admin key           any route        a loopback peer; else 403
//
// The key itself is checked by a caller-supplied function, so this generic layer holds no
// secret and no hashing scheme: the fleet passes a salted-hash comparison in constant time
// (fleet::verify_api_key). "Loopback" is the TCP peer address (127.0.0.0/8, ::1, or
// ::ffff:127.x.x.x); a reverse proxy on the same machine makes every client look local, so
// configure an admin key behind one.
//
// Thread-safety: AdminAuth is immutable after construction; check_admin is safe for
// concurrent use when `verify` is.
#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include "core/status.h"

#include "net/http_request.h"

namespace spillway::net {

struct AdminAuth {
  // True when the presented bearer token is the admin key. Empty: no admin key configured.
  std::function<bool(std::string_view token)> verify;

  [[nodiscard]] bool has_key() const { return static_cast<bool>(verify); }
};

enum class AdminAccess { kRead, kWrite };

// True for a peer address as HttpRequest::remote_address holds it ("ip:port", IPv6 written
// without brackets, or "[ip]:port") on the loopback interface. Anything else (e.g. "unknown",
// an address without a port) is not loopback.
[[nodiscard]] bool is_loopback_address(std::string_view remote_address);

// The token of an "Authorization: Bearer <token>" header (scheme case-insensitive), if any.
[[nodiscard]] std::optional<std::string_view> bearer_token(const HttpRequest& request);

// OK when the request may use a route of kind `access` (table above); otherwise
// kUnauthenticated (401: missing or wrong key) or kPermissionDenied (403: no key configured
// and the peer is not local). Messages never repeat the presented token.
[[nodiscard]] Status check_admin(const HttpRequest& request, const AdminAuth& auth,
                                 AdminAccess access);

}  // namespace spillway::net
