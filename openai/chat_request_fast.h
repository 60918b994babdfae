// Internal to openai/ (and its tests, fuzzer and bench/request_bench): the one-pass reading
// of a chat completion request in its common shape, which parse_chat_completion_request tries
// before the document reading.
//
// The common shape: one JSON object whose members are among model, messages, max_tokens,
// max_completion_tokens, n, stream, stream_options (include_usage only), temperature, top_p,
// seed and user, none repeated or null, each of the type and in the range the document reading
// accepts; messages an array of objects with role, content (a string) and optionally name,
// nothing else. The body is read once by a SAX handler: no document, no lookups.
//
// Contract: when the fast reading returns a request, parse_chat_completion_request's document
// reading of the same body and limits succeeds with an equal request. Anything else (another
// member, content parts, a null, a duplicate, a value the document reading would refuse or
// read differently, malformed JSON) returns nullopt, and the caller falls back to the document
// reading, which gives the answer, or the error with its message. The openai tests and the
// openai fuzzer check the contract on every body they try.
//
// Thread-safety: a pure function.
#pragma once

#include <optional>
#include <string_view>

#include "openai/api_limits.h"
#include "openai/chat_request.h"

namespace spillway::openai::internal {

[[nodiscard]] std::optional<ChatCompletionRequest> read_common_chat_request(
    std::string_view body, const ApiLimits& limits);

// The document reading alone (what parse_chat_completion_request does when the fast reading
// declines), for checking the contract.
[[nodiscard]] Result<ChatCompletionRequest> read_chat_request_document(std::string_view body,
                                                                       const ApiLimits& limits);

}  // namespace spillway::openai::internal
