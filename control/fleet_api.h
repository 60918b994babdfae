// The fleet API on any net::Router (the control plane's own server, or the gateway's, so the
// fleet API is reachable on the gateway's port too):
//   GET  /v1/fleet                       providers → regions → pools (GPUs total/used/free,
//                                        capacity kind, cost, drained), models (desired,
//                                        actual and ready replicas), total cost per hour
//   GET  /v1/fleet/replicas              {"object":"list","data":[{id, model, provider, region,
//                                        pool, url, state, pid, running, waiting, kv_usage,
//                                        ttft_p50_s, restarts, gpus, capacity,
//                                        cost_per_gpu_hour, rtt_ms}]}
//   POST /v1/fleet/pools/{name}/drain    → {"pool":name,"drained":true}; 404 for an unknown pool
//   POST /v1/fleet/pools/{name}/undrain  → {"pool":name,"drained":false}
// Errors use the OpenAI shape {"error":{"message","type","param","code"}}.
//
// The GETs are open (they carry the fleet layout, no keys). Drain and undrain are operator
// actions: they pass net::check_admin(kWrite) with `admin` first (the admin key when one is
// configured, else loopback clients only; 401/403 in the same error shape).
//
// Thread-safety: handlers only read snapshots of, or call thread-safe methods on, the control
// plane. Lifetime: `control` must outlive the router and any server holding it.
#pragma once

#include <string>

#include "core/status.h"

#include "net/admin_auth.h"
#include "net/router.h"

#include "control/control_plane.h"

namespace spillway::control {

// Adds the four routes. Errors: those of Router::add (e.g. kAlreadyExists when added twice).
[[nodiscard]] Status add_fleet_routes(net::Router& router, ControlPlane& control,
                                      net::AdminAuth admin = {});

// The bodies, exposed for tests and for other hosts (e.g. a status page).
[[nodiscard]] std::string render_fleet_json(const ControlPlane& control);
[[nodiscard]] std::string render_replicas_json(const ControlPlane& control);

}  // namespace spillway::control
