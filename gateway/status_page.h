// The gateway's status page (GET /): one self-contained HTML document with inline CSS and
// JavaScript, no build step. In the browser it polls, every 2 s, GET /v1/fleet and
// GET /v1/fleet/replicas (the control plane's routes, when it serves them on the same port),
// GET /v1/gateway/replicas (the gateway's own view, used when there is no control plane) and
// GET /v1/gateway/decisions, and shows providers, pools, replicas with their load, and the
// recent routing decisions.
//
// Thread-safety: returns a view of a constant.
#pragma once

#include <string_view>

namespace spillway::gateway {

[[nodiscard]] std::string_view status_page_html();

}  // namespace spillway::gateway
