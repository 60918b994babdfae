// The admin key of a fleet's operator routes (drain/undrain, the gateway's /v1/gateway/*),
// kept only as a salted hash in memory (fleet/api_key.h: the form tenant keys are stored in)
// and compared in constant time. The access rules are net::check_admin's (net/admin_auth.h).
//
// Thread-safety: the returned AdminAuth is immutable and safe for concurrent use.
#pragma once

#include <string_view>

#include "core/random.h"

#include "net/admin_auth.h"

namespace spillway::control {

// An AdminAuth accepting exactly `key`; an empty `key` gives one with no key configured
// (loopback clients only). The plaintext is not retained. `random` draws the salt: pass a
// fleet::SecureRandom outside tests.
[[nodiscard]] net::AdminAuth make_admin_auth(std::string_view key, Random& random);

}  // namespace spillway::control
