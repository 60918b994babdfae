// The host and port of a replica's base URL ("http://127.0.0.1:9001"), as net::HttpClient
// needs them.
//
// Thread-safety: pure functions over values.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace spillway::gateway {

struct UpstreamAddress {
  std::string host;  // An IP literal or "localhost" (HttpClient does no DNS lookups).
  int port = 80;
};

// Accepts "http://HOST[:PORT][/]" with HOST an IPv4 literal, a bracketed IPv6 literal or
// "localhost"; the port defaults to 80. kInvalidArgument naming the problem otherwise (https,
// a path, user info, a host name that needs DNS, a port outside 1..65535).
[[nodiscard]] Result<UpstreamAddress> parse_upstream_url(std::string_view url);

}  // namespace spillway::gateway
