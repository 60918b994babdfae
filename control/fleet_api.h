// The fleet API on any net::Router (the control plane's own server, or the gateway's, so the
// fleet API is reachable on the gateway's port too):
//   GET  /v1/fleet                       providers → regions → pools (GPUs total/used/free,
//                                        capacity kind, cost, drained), models (desired,
//                                        actual and ready replicas), total cost per hour
//   GET  /v1/fleet/replicas              {"object":"list","data":[{id, model, provider, region,
//                                        pool, url, state, pid, running, waiting, kv_usage,
//                                        ttft_p50_s, restarts}]}
//   POST /v1/fleet/pools/{name}/drain    → {"pool":name,"drained":true}; 404 for an unknown pool
//   POST /v1/fleet/pools/{name}/undrain  → {"pool":name,"drained":false}
// Errors use the OpenAI shape {"error":{"message","type","param","code"}}.
//
// Authentication is the host server's business (the gateway puts its admin check in front).
//
// Thread-safety: handlers only read snapshots of, or call thread-safe methods on, the control
// plane. Lifetime: `control` must outlive the router and any server holding it.
#pragma once

#include <string>

#include "core/status.h"

#include "net/router.h"

#include "control/control_plane.h"

namespace spillway::control {

// Adds the four routes. Errors: those of Router::add (e.g. kAlreadyExists when added twice).
[[nodiscard]] Status add_fleet_routes(net::Router& router, ControlPlane& control);

// The bodies, exposed for tests and for other hosts (e.g. a status page).
[[nodiscard]] std::string render_fleet_json(const ControlPlane& control);
[[nodiscard]] std::string render_replicas_json(const ControlPlane& control);

}  // namespace spillway::control
