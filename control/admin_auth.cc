#include "control/admin_auth.h"

#include <string>

#include "fleet/api_key.h"

namespace spillway::control {

net::AdminAuth make_admin_auth(std::string_view key, Random& random) {
  net::AdminAuth auth;
  if (key.empty()) return auth;
  auth.verify = [stored = fleet::hash_api_key(key, random)](std::string_view token) {
    return fleet::verify_api_key(token, stored);
  };
  return auth;
}

}  // namespace spillway::control
