// The few places where the gateway reads or edits OpenAI JSON on its way through: asking the
// replica for usage on a stream, reading usage back, and hiding the usage the client did not
// ask for.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

#include "openai/response_types.h"

namespace spillway::gateway {

// `body` (a request object already validated by the openai parsers) with
// "stream_options":{"include_usage":true}, so the replica reports usage at the end of a
// stream: appended as the object's last member when it has no stream_options member, else
// set in the parsed object. kInvalidArgument if the body is not a JSON object within
// `max_depth` (not checked when it is appended: the body was validated).
[[nodiscard]] Result<std::string> with_stream_usage(std::string_view body, std::size_t max_depth);

// The "usage" object of a response body or stream chunk (prompt_tokens, completion_tokens);
// nullopt when absent, null or malformed.
[[nodiscard]] std::optional<openai::Usage> read_usage(std::string_view json);

struct ChunkUsage {
  std::optional<openai::Usage> usage;  // Set on the chunk that carries the request's usage.
  bool usage_only = false;             // That chunk has no choices (OpenAI's usage chunk).
};
// Looks at one stream payload; cheap (no JSON parse) for the chunks that carry no usage.
[[nodiscard]] ChunkUsage inspect_chunk(std::string_view payload);

// The chunk without its trailing "usage":null member (sent when include_usage is on), so a
// client that did not ask for usage sees OpenAI's chunks without it. Other payloads unchanged.
[[nodiscard]] std::string_view without_null_usage(std::string_view payload, std::string& scratch);

}  // namespace spillway::gateway
