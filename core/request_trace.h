// LLM request traces: when each request arrives and how many tokens it reads and writes.
//
// Two CSV formats from ../shared/traces are understood, recognized by their header line:
//  - the Azure LLM inference traces (Patel et al., "Splitwise: Efficient generative LLM
//    inference using phase splitting", ISCA 2024):
//      TIMESTAMP,ContextTokens,GeneratedTokens
//      2023-11-16 18:17:03.9799600,4808,10
//    Arrival times are taken relative to the first row.
//  - length distributions without times (Vidur's ShareGPT/arXiv/BWB statistics):
//      num_prefill_tokens,num_decode_tokens,...
//    Rows get no arrival time (has_times = false); the caller spaces them, e.g. as a Poisson
//    process.
// CRLF or LF line endings, with or without a trailing newline.
//
// Errors name the file and line ("trace.csv:7: ContextTokens: expected an integer").
// Limits: at most `max_rows` rows and `max_bytes` bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace spillway {

struct TraceRequest {
  double arrival_s = 0;  // Seconds after the first request (0 when the trace has no times).
  std::int32_t context_tokens = 0;
  std::int32_t generated_tokens = 0;
};

struct RequestTrace {
  bool has_times = false;
  std::vector<TraceRequest> requests;  // In arrival order when has_times.
};

struct TraceLimits {
  std::size_t max_rows = 10'000'000;
  std::size_t max_bytes = std::size_t{1} << 30;
};

// `name` is used in error messages only.
[[nodiscard]] Result<RequestTrace> parse_request_trace(std::string_view text, std::string_view name,
                                                       const TraceLimits& limits = {});
[[nodiscard]] Result<RequestTrace> load_request_trace(const std::string& path,
                                                      const TraceLimits& limits = {});

}  // namespace spillway
