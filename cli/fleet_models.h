// A fleet's models against the local pools that may run them, checked before anything starts:
// a setting a model cannot take would otherwise show only as its replicas' start-up error,
// repeated at every restart.
//
// Thread-safety: a plain function of its arguments.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "core/status.h"

#include "fleet/fleet_spec.h"

namespace spillway::cli {

// For every inference-capable local pool whose kv_type is not f16, checks that every model can
// keep its KV cache in that type (engine::check_kv_type), reading only the model file's GGUF
// header. `model_paths` overrides a model's path (ControlOptions::model_paths). A file that does
// not open as GGUF is skipped: its replicas report that themselves.
// Errors: kInvalidArgument naming the pool, the model and the reason.
[[nodiscard]] Status check_local_pool_models(
    const fleet::FleetSpec& spec,
    const std::map<std::string, std::string, std::less<>>& model_paths);

}  // namespace spillway::cli
