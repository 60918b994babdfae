#include "sim/sim_request.h"

namespace spillway::sim {

Status validate_sim_request(const SimRequest& request) {
  if (request.arrival < Nanos{0}) {
    return make_error(ErrorCode::kInvalidArgument, "request {}: arrival: negative", request.id);
  }
  if (request.prompt_tokens < 1) {
    return make_error(ErrorCode::kInvalidArgument, "request {}: prompt_tokens: {} < 1", request.id,
                      request.prompt_tokens);
  }
  if (request.output_tokens < 1) {
    return make_error(ErrorCode::kInvalidArgument, "request {}: output_tokens: {} < 1", request.id,
                      request.output_tokens);
  }
  if (request.prefix_tokens < 0 || request.prefix_tokens > request.prompt_tokens) {
    return make_error(ErrorCode::kInvalidArgument,
                      "request {}: prefix_tokens: {} outside [0, prompt_tokens = {}]", request.id,
                      request.prefix_tokens, request.prompt_tokens);
  }
  if (request.prefix_id == 0 && request.prefix_tokens != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "request {}: prefix_tokens: {} without a prefix_id", request.id,
                      request.prefix_tokens);
  }
  return Status();
}

}  // namespace spillway::sim
